"""The console of a running study: one progress line (cells done, what each running cell is
doing, elapsed time) on a terminal, one line per finished cell elsewhere (a log, CI). What the
frameworks print goes to each cell's log file, never here (`output_to`)."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import IO, Iterator

from convbench.records import CellResult, Status


def console_stream() -> IO[str]:
    """A stream to the terminal that stays there while a cell's output goes to its log (or
    `sys.stderr` itself when it is not a file, as under a test harness)."""
    sys.stderr.flush()
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    except (OSError, ValueError, AttributeError):
        return sys.stderr


@contextmanager
def output_to(log: str) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so native libraries'
    output too) to the file `log` while the block runs."""
    from pathlib import Path

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    streams = sys.stdout, sys.stderr
    for s in streams:
        s.flush()
    saved: list[int] = []
    try:
        saved = [os.dup(1), os.dup(2)]
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        finally:
            os.close(fd)
        # Python-level writers (progress bars, warnings) that are not already descriptors 1
        # and 2 (a test harness's capture) write there too, through streams that are never
        # closed: a logger keeping one finds it still open after the cell
        sys.stdout = streams[0] if _on_fd(streams[0], 1) else \
            open(1, "w", buffering=1, closefd=False, errors="replace")
        sys.stderr = streams[1] if _on_fd(streams[1], 2) else \
            open(2, "w", buffering=1, closefd=False, errors="replace")
        yield
    finally:
        for s in (sys.stdout, sys.stderr):
            s.flush()
        sys.stdout, sys.stderr = streams
        if saved:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _on_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (OSError, ValueError, AttributeError):
        return False


class StudyDisplay:
    """Progress of a study's cells on `stream`."""

    def __init__(self, total: int, study: str, stream: IO[str]) -> None:
        self.total, self.study, self.stream = total, study or "study", stream
        self.done, self.running = 0, {}
        self.t0 = time.monotonic()
        self.bar = None
        if total and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.study, unit="cell", file=stream,
                            bar_format="{desc}: {n}/{total} cells |{bar:12}| {elapsed} "
                                       "{postfix}", dynamic_ncols=True)

    def start(self, key) -> None:
        self.running[key.id] = (key.label, "starting")
        self._show()

    def step(self, key, text: str) -> None:
        if key.id in self.running:
            self.running[key.id] = (self.running[key.id][0], text)
            self._show()

    def stop(self, key) -> None:
        """The cell's work here is over without a new result (a re-timing)."""
        self.running.pop(key.id, None)
        self._show()

    def finish(self, result: CellResult) -> None:
        self.running.pop(result.key.id, None)
        self.done += 1
        if result.status is not Status.OK or self.bar is None:
            how = result.status.value + (f" ({result.category.value})"
                                         if result.status is not Status.OK else "")
            self.note(f"[{self.done}/{self.total}] {result.key.label}: {how} "
                      f"in {result.finished - result.started:.0f} s")
        if self.bar is not None:
            self.bar.update()
        self._show()

    def note(self, text: str) -> None:
        """A line above the progress line."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def _show(self) -> None:
        if self.bar is not None:
            now = "; ".join(f"{name}: {what}" for name, what in self.running.values())
            self.bar.set_postfix_str(now, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.total:
            self.note(f"{self.study}: {self.done} of {self.total} cells in "
                      f"{time.monotonic() - self.t0:.0f} s")
