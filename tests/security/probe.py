"""Run `convbench ARGS...` in this fresh process, as a user's shell would, and print one JSON
line last: exit code, wall seconds, this process's peak resident memory (VmHWM, MiB) and the
peak total memory of this process and its descendants (cells, runtime hosts), sampled every
20 ms as the sum of their proportional set sizes (PSS): a forked child's pages shared with its
parent count once, not twice as a sum of resident sizes would (a library running `uname -p`
at import forks a 900 MB process for a moment).

    python tests/security/probe.py assess --framework keras --model bomb.keras ...

(`ru_maxrss` would not do: it keeps the high-water mark of the process that forked this one.)
"""

import json
import os
import re
import sys
import threading
import time


def _status(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
        return int(m[1]) if m else 0
    except OSError:
        return 0


def _tree_rss(root: int) -> int:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {root}, True
    while grew:
        new = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= new
        grew = bool(new)
    return sum(_pss(p) for p in tree)


def _pss(pid: int) -> int:
    """Proportional set size in kB (resident size where the kernel lacks smaps_rollup)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
        return int(m[1]) if m else _status(pid, "VmRSS")
    except OSError:
        return _status(pid, "VmRSS")


peak = [0]


def _sample() -> None:
    while True:
        peak[0] = max(peak[0], _tree_rss(os.getpid()))
        time.sleep(0.02)


if __name__ == "__main__":  # the cells' processes are spawned: they import this file
    t0 = time.monotonic()
    threading.Thread(target=_sample, daemon=True).start()
    from convbench.cli.main import main

    code = main(sys.argv[1:])
    sys.stdout.flush()
    print(json.dumps({"rc": code, "seconds": time.monotonic() - t0,
                      "self_mib": _status(os.getpid(), "VmHWM") / 1024,
                      "tree_mib": peak[0] / 1024}))
