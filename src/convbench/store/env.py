"""The environment recorded with every result: packages, CPU, platform, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

def _packages() -> tuple[str, ...]:
    from convbench.formats import packages

    base = ("convbench", "numpy", "torch", "tensorflow-cpu", "tensorflow", "keras",
            "scikit-learn", "adversarial-robustness-toolbox")
    return tuple(dict.fromkeys(base + packages()))


PACKAGES = _packages()


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


@lru_cache(maxsize=1)
def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"packages": versions, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu(), "cpu_count": os.cpu_count(),
            "git_commit": _git_commit()}
