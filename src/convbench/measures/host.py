"""A runtime in a process of its own, driven over a pipe: the instrument of the cost measures.

Each model's load time, memory and latency are taken in a fresh process that imports only its
runtime, so that no other framework's threads, allocations or caches bias them (ONNX Runtime's
worker threads spin after a run; TensorFlow keeps thread pools; coremltools imports
TensorFlow). The parent sends one JSON command per line on the child's stdin and reads one JSON
reply per line; the child's own output (and any library's chatter) goes to a log file.

    python -m convbench.measures.host SPEC.json    # the child; SPEC names artifact and input
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from convbench.measures.machine import thread_env
from convbench.records import Artifact


class HostError(RuntimeError):
    """The runtime's process failed; the message carries its error or its last output."""


def maxrss_bytes() -> int:
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


class RuntimeHost:
    """A child process holding one runtime and one model, and the inputs to time it on.

    `call(op, **args)` runs one command there: `load`, `memory`, `warm`, `block` (see
    `_Child`). Use as a context manager; the child ends on `close()`.
    """

    def __init__(self, artifact: Artifact, runtime: str, x: np.ndarray,
                 threads: int | None = None, options: dict | None = None,
                 log: str | os.PathLike | None = None, timeout: float = 600) -> None:
        self.runtime, self.timeout = runtime, timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="convbench-host-")
        spec, inp = Path(self._tmp.name) / "spec.json", Path(self._tmp.name) / "x.npy"
        np.save(inp, x)
        spec.write_text(json.dumps({"artifact": asdict(artifact), "runtime": runtime,
                                    "threads": threads, "options": options or {},
                                    "input": str(inp)}))
        self.log = Path(log) if log else Path(self._tmp.name) / "host.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "convbench.measures.host", str(spec)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                env={**os.environ, **thread_env(threads), "TF_CPP_MIN_LOG_LEVEL": "2"})
        self._ready = False  # the child imports its runtime meanwhile (hosts start in parallel)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> None:
        """Wait until the child has imported its runtime (or raise why it could not)."""
        if not self._ready:
            self._reply()
            self._ready = True

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.wait_ready()
        try:
            self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise HostError(self._why(f"{self.runtime}'s process ended")) from None
        return self._reply()

    def _reply(self) -> dict[str, Any]:
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            self.proc.kill()
            raise HostError(f"{self.runtime}'s process gave no answer in {self.timeout:g} s "
                            f"and was stopped")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=self.timeout)
            raise HostError(self._why(f"{self.runtime}'s process ended (exit code "
                                      f"{self.proc.returncode})"))
        out = json.loads(line)
        if "error" in out:
            raise HostError(f"{self.runtime}: {out['error']}")
        return out

    def _why(self, what: str) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return f"{what}: {lines[-1] if lines else '(no output)'}"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._tmp.cleanup()

    def __enter__(self) -> "RuntimeHost":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Child:
    """The child's side: one runner, the inputs, and the commands."""

    OPS = ("load", "memory", "warm", "block")

    def __init__(self, spec: dict) -> None:
        from convbench.runtimes import RUNNERS

        cls = RUNNERS.get(spec["runtime"])
        for name in cls.unneeded_modules:  # an import of it now fails fast, as if not installed
            sys.modules.setdefault(name, None)
        self.runner = cls(Artifact(**spec["artifact"]), threads=spec["threads"],
                          **spec["options"])
        self.x = np.load(spec["input"])
        cls.import_framework()  # the memory baseline includes the framework
        self.import_rss = maxrss_bytes()

    def _batch(self, batch: int) -> np.ndarray:
        from convbench.measures.latency import batch_of

        return batch_of(self.x, batch)

    def load(self) -> dict:
        ns = self.runner.load()
        return {"load_s": ns / 1e9, "threads": self.runner.threads,
                "runner": self.runner.describe()}

    def memory(self, batch: int) -> dict:
        """Peak resident memory after one batch of `batch` samples (run the largest first)."""
        self.runner.infer(self._batch(batch))
        return {"import_rss": self.import_rss, "peak_rss": maxrss_bytes()}

    def warm(self, batch: int, min_runs: int, settle: float, cap_s: float) -> dict:
        """Run until the time per batch settles (or `cap_s`); the warm-up times."""
        from convbench.measures.latency import settled

        xb, times = self._batch(batch), []
        start = time.perf_counter()
        while len(times) < min_runs or not settled(times, tol=settle):
            times.append(self.runner.infer_timed(xb)[1] / 1e9)
            if time.perf_counter() - start > cap_s:
                break
        return {"samples": times}

    def block(self, batch: int, n: int) -> dict:
        """`n` timed runs back to back, with this process's CPU time and the wall time."""
        xb = self._batch(batch)
        cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
        times = [self.runner.infer_timed(xb)[1] / 1e9 for _ in range(n)]
        return {"samples": times, "cpu_s": (time.process_time_ns() - cpu0) / 1e9,
                "wall_s": (time.perf_counter_ns() - wall0) / 1e9}


def _main(spec_path: str) -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to the log, never into the replies
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        replies.write(json.dumps(obj) + "\n")

    try:
        child = _Child(json.loads(Path(spec_path).read_text()))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which records it
        send({"error": f"{type(e).__name__}: {e}"})
        return
    send({"ok": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        if op == "quit":
            break
        if op not in _Child.OPS:
            send({"error": f"unknown command {op!r}"})
            continue
        try:
            send(getattr(child, op)(**cmd))
        except Exception as e:  # noqa: BLE001
            send({"error": f"{type(e).__name__}: {str(e)[:2000]}"})
    child.runner.close()


if __name__ == "__main__":
    from convbench.limits import die_with_parent

    die_with_parent()
    _main(sys.argv[1])
