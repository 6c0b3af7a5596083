"""RQ2 memory: peak resident memory of a runtime, measured in a child process of its own.

The child imports the runtime, notes its peak RSS, loads the model, runs one batch, and reports
both peaks as JSON on stdout. tracemalloc would miss native allocations.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from convbench.records import Artifact


def _maxrss_bytes() -> int:
    """Peak RSS of this process. On Linux from VmHWM: `ru_maxrss` would carry over the parent's
    peak across fork+exec and report the parent's memory, not the runtime's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024  # macOS reports bytes, Linux KiB


def peak_rss(artifact: Artifact, runtime: str, x: np.ndarray, threads: int | None = None,
             options: dict | None = None, timeout: float = 600) -> dict[str, float]:
    """`{peak_rss_bytes, import_rss_bytes, model_rss_bytes}` of `runtime` running `x`."""
    with tempfile.TemporaryDirectory() as tmp:
        spec, inp = Path(tmp) / "spec.json", Path(tmp) / "x.npy"
        np.save(inp, x)
        spec.write_text(json.dumps({"artifact": asdict(artifact), "runtime": runtime,
                                    "threads": threads, "options": options or {},
                                    "input": str(inp)}))
        proc = subprocess.run([sys.executable, "-m", "convbench.measures.memory", str(spec)],
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"memory probe of {runtime} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from convbench.runtimes import RUNNERS

    import importlib

    cls = RUNNERS.get(spec["runtime"])
    for name in cls.unneeded_modules:  # an import of it now fails fast, as if not installed
        sys.modules.setdefault(name, None)
    runner = cls(Artifact(**spec["artifact"]), threads=spec["threads"], **spec["options"])
    x = np.load(spec["input"])
    importlib.import_module(cls.module)  # the baseline includes the framework itself
    base = _maxrss_bytes()
    with runner:
        runner.infer(x)
    peak = _maxrss_bytes()
    print(json.dumps({"peak_rss_bytes": peak, "import_rss_bytes": base,
                      "model_rss_bytes": peak - base}))


if __name__ == "__main__":
    _child(sys.argv[1])
