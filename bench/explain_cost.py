"""What explaining a cell costs beside assessing it: ResNet-18 (CIFAR form) -> ONNX.

The same trained ResNet-18 and its ONNX conversion, on the same 1000 CIFAR-10 test rows
(digits drawn as 32x32 RGB when CIFAR-10 is absent), timed as two commands in processes of
their own, alternated, three times each:

    assess:  convbench assess --model M --dataset cifar10 --to onnx --n 1000 --no-memory
    explain: convbench explain --original M --converted C --dataset cifar10 --n 1000 --samples 8

Target: explain's median wall time <= 1.5x assess's. Both pay their interpreter start and
imports; the conversion is made once beforehand and reused by both (convbench's cache).

    python bench/explain_cost.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    from convbench.data import DATASETS, get_dataset
    from convbench.store import Store
    from convbench.training import preset_config, train

    tmp = Path(tempfile.mkdtemp(prefix="explain-cost-"))
    env = {**os.environ, "CONVBENCH_CACHE": str(tmp / "cache")}
    os.environ.update(env)
    dataset = "cifar10"
    try:
        get_dataset("cifar10").arrays("test", 1)
    except Exception:
        dataset = "digits"
    assert dataset in DATASETS
    cfg = preset_config("smoke", "torch", "resnet18", dataset, epochs=1, n_train=512)
    model = train(cfg, tmp / "model").artifact.path
    store = str(tmp / "s.db")
    assess = ["convbench", "assess", "--model", model, "--dataset", dataset, "--to", "onnx",
              "--n", "1000", "--no-memory", "--store", store]
    timed(assess, env)  # converts once: both commands below reuse the conversion
    with Store(store) as s:
        converted = next(iter(s.cells())).artifacts["converted"].path
    explain = ["convbench", "explain", "--original", model, "--converted", converted,
               "--dataset", dataset, "--n", "1000", "--samples", "8"]
    runs = {"assess": [], "explain": []}
    for _ in range(3):
        runs["assess"].append(timed(assess, env))
        runs["explain"].append(timed(explain, env))
    a, e = (statistics.median(runs[k]) for k in ("assess", "explain"))
    print(f"ResNet-18 ({dataset}, 1000 rows) -> ONNX, medians of 3 alternated runs")
    print(f"  assess --no-memory: {a:.1f} s  {['%.1f' % v for v in runs['assess']]}")
    print(f"  explain, 8 samples: {e:.1f} s  {['%.1f' % v for v in runs['explain']]}")
    print(f"  explain / assess = {e / a:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
