"""Fuzz convbench's model loading: mutate valid model files, load each through its runner.

Run as a script (the test runs it in a child process, so that a native crash in a parser
fails the test instead of killing the test session):

    python tests/security/fuzz_models.py DIR CASES

DIR holds one valid model per format (made by the test). Each case applies random byte edits
and a truncation (hypothesis chooses them); loading must succeed or raise one of convbench's
clear errors. Prints a JSON summary: cases and uncaught errors per format.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CLEAR = ("ModelLoadError", "ProgramLoadError", "MilError", "UnsupportedOpError")


def load(art) -> None:
    from convbench.runtimes import open_runner

    options = {"engine": "interpreter"} if art.format == "coreml" else {}
    with open_runner(art, **options):
        pass


def main(root: Path, cases: int) -> dict:
    from convbench.records import Artifact

    sources = json.loads((root / "models.json").read_text())
    summary = {}
    for fmt, spec in sources.items():
        good = Artifact(**spec)
        src = Path(good.path)
        target = src / "Data" / "com.apple.CoreML" / "model.mlmodel" if src.is_dir() else src
        original = target.read_bytes()
        work = root / f"fuzz-{fmt}"
        if work.exists():
            shutil.rmtree(work)
        if src.is_dir():
            shutil.copytree(src, work / src.name)
            mutated = work / src.name / "Data" / "com.apple.CoreML" / "model.mlmodel"
        else:
            work.mkdir()
            mutated = work / src.name
            side = Path(str(src) + ".arch.json")
            if side.exists():
                shutil.copy(side, str(mutated) + ".arch.json")
        art = Artifact(fmt_of(good), str(work / src.name), "fuzz", good.meta)
        uncaught: list[str] = []
        count = [0]

        @settings(max_examples=cases, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)),
                        max_size=8),
               st.integers(0, len(original)))
        def case(edits, keep):
            data = bytearray(original[:keep] if keep < len(original) // 2 else original)
            for pos, value in edits:
                if pos < len(data):
                    data[pos] = value
            mutated.write_bytes(bytes(data))
            count[0] += 1
            try:
                load(art)
            except Exception as e:  # anything but a clear error is a finding
                if type(e).__name__ not in CLEAR:
                    uncaught.append(f"{type(e).__name__}: {str(e)[:200]}")

        case()
        summary[fmt] = {"cases": count[0], "uncaught": uncaught[:10],
                        "uncaught_count": len(uncaught)}
    return summary


def fmt_of(art) -> str:
    return art.format


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]))))
