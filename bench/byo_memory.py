"""Memory of `convbench assess` on a user's image folder does not grow with the folder.

Generates folders of 500 and of 5,000 224x224 JPEG images (3 classes), a small PyTorch CNN
for 3x224x224 inputs, and assesses the model on each folder to ONNX, each in a fresh process.
The peak RSS of the largest process of the assessment (the command, which prepares the data,
and the cell's process, which runs both models over every image) is read from
`getrusage(RUSAGE_CHILDREN)` of a wrapper. Target: peak with 5,000 within 1.2x of peak with
500 (held whole as float32, 5,000 such images are 3 GB).

    python bench/byo_memory.py [--sizes 500,5000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.2

FACTORY = '''
from torch import nn


def cnn224():
    return nn.Sequential(nn.Conv2d(3, 8, 7, stride=4, padding=3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 3))
'''

WRAPPER = '''
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
'''


def _folder(root: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    out = root / f"images{n}"
    if out.exists():
        return out
    rng = np.random.default_rng(n)
    base = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)  # one texture per class
    for i in range(n):
        c = i % 3
        d = out / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(-40, 40, (224, 224, 3))
        img = np.clip(base[c].astype(int) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i:05d}.jpg", quality=90)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="500,5000")
    ap.add_argument("--keep", help="a directory for the folders, kept between runs")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        (root / "bench_models.py").write_text(FACTORY)
        model = root / "cnn224.pt"
        import torch

        sys.path.insert(0, str(root))
        import bench_models

        torch.manual_seed(0)
        torch.save(bench_models.cnn224().state_dict(), model)
        peaks = {}
        for n in sizes:
            folder = _folder(root, n)
            cache = Path(tmp) / f"cache{n}"  # a fresh cache: the data is prepared each time
            cmd = [sys.executable, "-c", "from convbench.cli.main import main; "
                   "raise SystemExit(main())", "assess", "--model", str(model),
                   "--factory", f"{root / 'bench_models.py'}:cnn224", "--data", str(folder),
                   "--input-shape", "3,224,224", "--to", "onnx", "--batch-sizes", "1",
                   "--no-memory", "--store", str(Path(tmp) / f"s{n}.db")]
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True,
                                 text=True, env={**_env(), "CONVBENCH_CACHE": str(cache)})
            rc, kib = (int(v) for v in out.stdout.split())
            seconds = time.perf_counter() - t0
            if rc != 0:
                print(f"{n} images: assess exited {rc}", file=sys.stderr)
                return 1
            peaks[n] = kib * 1024
            print(f"{n:>6} images 224x224: peak RSS {peaks[n] / 2**20:7.0f} MiB, "
                  f"{seconds:5.0f} s (whole as float32: {n * 3 * 224 * 224 * 4 / 2**20:.0f} MiB)")
        if len(sizes) >= 2:
            ratio = peaks[sizes[-1]] / peaks[sizes[0]]
            print(f"ratio {sizes[-1]}/{sizes[0]}: {ratio:.2f} (target <= {TARGET})")
            print(json.dumps({"peaks_mib": {k: round(v / 2**20) for k, v in peaks.items()},
                              "ratio": round(ratio, 3)}))
            return 0 if ratio <= TARGET else 1
    return 0


def _env() -> dict:
    import os

    return dict(os.environ)


if __name__ == "__main__":
    raise SystemExit(main())
