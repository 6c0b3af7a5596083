"""Timing stored cells again: those whose cost measures were deferred (other cells kept the
machine busy) and, with `--retry-noisy`, those whose latency is marked noisy. Only their load
time, memory and latency are replaced; accuracy, attacks and the rest stay as stored."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from convbench.measures import measure_cost
from convbench.measures.cost import DEFERRED, MEASURES, Model
from convbench.models import to_layout
from convbench.progress import listening
from convbench.records import Outcome, Status, StoredCell
from convbench.store import Store
from convbench.study.cell import Cell, runner_name
from convbench.study.display import output_to


def deferred(c: StoredCell) -> bool:
    return any(o.kind == "measure" and o.message == DEFERRED for o in c.outcomes)


def noisy(c: StoredCell) -> bool:
    return any(m.noisy for m in c.metrics.find(measure="latency"))


def retime(cells: list[Cell], store: Store, display, noisy_too: bool = False) -> int:
    """Time again every stored cell of `cells` whose cost was deferred (and, with
    `noisy_too`, whose latency is noisy), one at a time; return how many were."""
    by_id = {c.key.id: c for c in cells}
    todo = [c for c in store.cells(set(by_id)) if c.status is Status.OK
            and (deferred(c) or (noisy_too and noisy(c)))]
    if todo:
        display.note(f"timing {len(todo)} cell(s) again, alone: "
                     f"{sum(map(deferred, todo))} deferred, {sum(map(noisy, todo))} noisy")
    for stored in todo:
        cell = by_id[stored.id]
        display.start(cell.key)
        try:
            message = _retime(cell, stored, store, display)
        finally:
            display.stop(cell.key)
        display.note(f"{stored.name}: {message}")
    return len(todo)


def _retime(cell: Cell, stored: StoredCell, store: Store, display) -> str:
    from convbench.study.executor import log_path

    arts = {role: stored.artifacts.get(role) for role in ("original", "converted")}
    missing = [a.path if a else role for role, a in arts.items()
               if a is None or not Path(a.path).exists()]
    if missing:
        gone = Outcome("measure", "latency", Status.FAILED,
                       f"cannot time again: {', '.join(missing)} no longer there; run the cell "
                       f"again with --force")
        keep = [m for m in stored.metrics if m.measure in MEASURES]
        store.replace_measures(stored.id, MEASURES, keep, [gone])
        return gone.message
    log = log_path(cell.key)
    with output_to(log), listening(lambda text, k=cell.key: display.step(k, text)):
        x = cell.inputs()
        models = {}
        for role, art in arts.items():
            name = runner_name(art, cell.key.runtime if role == "converted" else None)
            layout = "keras" if art.meta.get("layout") == "nhwc" else "torch"
            models[role] = Model(art, name, to_layout(x, layout),
                                 cell.runtime_options.get(name, {}))
        opts = replace(cell.measures.cost(), wait=None)  # alone now: wait as long as it takes
        metrics, outcomes, info = measure_cost(models, opts, cell.threads, log)
    store.replace_measures(stored.id, MEASURES, metrics, outcomes, {"cost": info})
    still = sum(1 for m in metrics if m.measure == "latency" and m.stat == "median" and m.noisy)
    return f"timed again, {still} latency figure(s) noisy"
