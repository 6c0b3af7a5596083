"""Run a study's cells (serially, for now) into a store, skipping cells already stored."""

from __future__ import annotations

import sys
from typing import Callable

from convbench.records import CellResult
from convbench.store import Store
from convbench.study.cell import Cell, run_cell


def run_study(cells: list[Cell], store: Store, study: str = "",
              on_result: Callable[[CellResult], None] | None = None,
              force: bool = False) -> list[CellResult]:
    """Run every cell not yet in `store` (all with `force`); return the new results."""
    done = []
    for i, cell in enumerate(cells, 1):
        k = cell.key
        label = f"[{i}/{len(cells)}] {k.framework} {k.model} {k.dataset} -> {k.format} run {k.run}"
        if not force and store.has(k.id):
            print(f"{label}: already stored, skipped", file=sys.stderr)
            continue
        print(f"{label} ...", file=sys.stderr)
        result = run_cell(cell)
        store.put(result, study)
        done.append(result)
        status = result.status.value + (f" ({result.category.value})" if result.message else "")
        print(f"{label}: {status}", file=sys.stderr)
        if on_result:
            on_result(result)
    return done
