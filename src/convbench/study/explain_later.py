"""Explaining stored cells a study now asks to explain (`explain:` turned on after they ran):
their explanation is added; nothing else of them runs again."""

from __future__ import annotations

from pathlib import Path

from convbench.records import Outcome, Status, StoredCell
from convbench.store import Store
from convbench.study.display import output_to


def _wants(cell, stored: StoredCell) -> bool:
    from convbench.explain import wanted

    mode = getattr(getattr(cell, "measures", None), "explain", False)
    if not mode or stored.status is not Status.OK or "explanation" in stored.info \
            or stored.outcome("measure", "explain") is not None:
        return False
    return wanted(mode, int(stored.metrics.get("label_flips") or 0),
                  stored.metrics.get("rel_err", stat="mean", default=float("inf")))


def explain_stored(cells: list, store: Store, display) -> int:
    """Explain every stored cell of `cells` whose spec asks for it and that has none yet;
    return how many were."""
    from convbench.study.executor import log_path

    by_id = {c.key.id: c for c in cells}
    todo = [s for s in store.cells(set(by_id)) if _wants(by_id[s.id], s)]
    if todo:
        display.note(f"explaining {len(todo)} stored cell(s) (explain: was turned on after "
                     f"they ran)")
    for stored in todo:
        cell = by_id[stored.id]
        display.start(cell.key)
        try:
            with output_to(log_path(cell.key)):
                outcome, info = _explain(cell, stored)
        finally:
            display.stop(cell.key)
        store.replace_measures(stored.id, ("explain",), [], [outcome], info=info)
        display.note(f"{stored.name}: {outcome.message}")
    return len(todo)


def _explain(cell, stored: StoredCell) -> tuple[Outcome, dict]:
    from convbench.explain import explain_models
    from convbench.explain.render import verdict_text

    arts = [stored.artifacts.get(r) for r in ("original", "converted")]
    if any(a is None or not Path(a.path).exists() for a in arts):
        return Outcome("measure", "explain", Status.FAILED, "cannot explain: a model file is "
                       "no longer there; run the cell again with --force"), {}
    try:
        ex = explain_models(*arts, cell.inputs(), samples=cell.measures.explain_samples,
                            runtime=cell.key.runtime, runtime_options=cell.runtime_options,
                            threads=cell.threads)
    except Exception as e:
        return Outcome("measure", "explain", Status.FAILED,
                       f"{type(e).__name__}: {e}"[:500]), {}
    return (Outcome("measure", "explain", Status.OK, verdict_text(ex).splitlines()[0]),
            {"explanation": ex.to_dict()})
