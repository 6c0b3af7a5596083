"""Explaining a conversion: where and why a converted model departs from its original.

Both models run on the same few samples (the flipped and the worst-error ones first) with every
intermediate tensor read (`Runner.trace`); `match` maps the original's layers onto the converted
ops by weights, values, names and order; `core` finds the first op whose error exceeds what its
precision explains and says why (input, weights, hyperparameter, graph or precision).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from convbench.explain.core import Explanation, OpRow, Verdict, explain_traces
from convbench.records import Artifact

__all__ = ["Explanation", "OpRow", "Verdict", "ExplainError", "explain_models",
           "explain_traces", "pick_samples", "wanted"]

#: How many samples are traced when not told (the flipped and the worst first).
SAMPLES = 8
#: GiB the two traces may hold together (every intermediate tensor of both models on the
#: traced samples); more samples than fit are left out, and the explanation says so.
def _budget() -> float:
    raw = os.environ.get("CONVBENCH_EXPLAIN_GIB", "2")
    try:
        return float(raw)
    except ValueError:
        raise ExplainError(f"CONVBENCH_EXPLAIN_GIB={raw!r}: give the GiB both traces may hold, "
                           f"e.g. 2") from None


MEMORY_GIB: float | None = None  # set to override the environment (tests)


class ExplainError(RuntimeError):
    """A conversion that cannot be explained; the message says which model and why."""


def pick_samples(original: np.ndarray, converted: np.ndarray, n: int = SAMPLES) -> list[int]:
    """The rows to trace, most telling first: those whose label flips (largest output error
    first), then those with the largest output error."""
    a = np.asarray(original).reshape(len(original), -1)
    b = np.asarray(converted).reshape(len(converted), -1)
    err = np.abs(a - b).max(1)
    err = np.where(np.isfinite(err), err, np.inf)
    flips = a.argmax(1) != b.argmax(1) if a.shape[1] > 1 else np.zeros(len(a), bool)
    order = np.lexsort((-err, ~flips))  # flipped first, each group by error, largest first
    return [int(i) for i in order[:n]]


def wanted(mode: bool | str, flips: int, divergence: float, tolerance: float = 1e-4) -> bool:
    """Whether a cell is explained: `explain: true` always, `on_flip` when a label flips or
    the outputs differ by more than `tolerance` (relative)."""
    if mode == "on_flip":
        return flips > 0 or not divergence <= tolerance  # NaN outputs depart too
    return bool(mode)


def _trace(art: Artifact, x: np.ndarray, runtime: str | None, options: dict[str, Any],
           threads: int | None):
    from convbench.models.load import ModelLoadError
    from convbench.models.spec import to_layout
    from convbench.runtimes.base import open_runner

    xs = to_layout(x, "keras" if art.meta.get("layout") == "nhwc" else "torch")
    runner = open_runner(art, runtime, threads=threads, **options)
    try:
        try:
            runner.load()
        except ModelLoadError as e:  # traced up to where it fails, where the runtime allows
            if art.format != "onnx":
                raise ExplainError(f"the {art.format} model does not load, so nothing of it can be "
                               f"traced: {e}") from e
        try:
            return runner.trace(xs)
        except NotImplementedError as e:
            raise ExplainError(str(e)) from e
    finally:
        runner.close()


def explain_models(original: Artifact, converted: Artifact, x: np.ndarray, *,
                   samples: int = SAMPLES, outputs: tuple[np.ndarray, np.ndarray] | None = None,
                   runtime: str | None = None,
                   runtime_options: dict[str, dict[str, Any]] | None = None,
                   threads: int | None = None) -> Explanation:
    """Explain `converted` against `original` on `samples` rows of `x` (canonical layout:
    NCHW images, token ids); `outputs` (both models' outputs on `x`) choose the rows, else
    both models run on `x` first."""
    from convbench.runtimes.base import default_runtime

    runtime_options = runtime_options or {}
    if samples < 1:
        raise ExplainError(f"--samples {samples}: give at least one sample to trace")
    names = {"original": default_runtime(original.format),
             "converted": runtime or default_runtime(converted.format)}
    if outputs is None:
        outputs = tuple(_outputs(art, x, names[role], runtime_options.get(names[role], {}),
                                 threads) for role, art in (("original", original),
                                                            ("converted", converted)))
    picks = pick_samples(outputs[0], outputs[1], samples) \
        if outputs[0] is not None and outputs[1] is not None \
        else list(range(min(samples, len(x))))
    xs = x[picks] if isinstance(x, np.ndarray) else np.asarray(x[np.asarray(picks)])
    to = _trace(original, xs, names["original"], runtime_options.get(names["original"], {}),
                threads)
    notes = []
    held = sum(n.value.nbytes for n in to.nodes if n.value is not None)
    budget = MEMORY_GIB if MEMORY_GIB is not None else _budget()
    fit = int(len(picks) * budget * 2**30 / max(2 * held, 1))  # the converted's alike
    if fit < len(picks):
        keep = max(fit, 1)
        from convbench.files import size_text

        notes.append(f"traced {keep} of {len(picks)} sample(s): every tensor of both models "
                     f"on all of them takes about {size_text(2 * held)}, over the "
                     f"{budget:g} GiB budget (CONVBENCH_EXPLAIN_GIB)")
        picks, before, xs = picks[:keep], len(xs), xs[:keep]
        for n in to.nodes:  # values with a sample axis first (not a state or a constant)
            if n.value is not None and n.value.ndim and len(n.value) == before:
                n.value = n.value[:keep]
        to.input = to.input[:keep]
    tc = _trace(converted, xs, names["converted"], runtime_options.get(names["converted"], {}),
                threads)
    ex = explain_traces(to, tc)
    ex.samples, ex.notes = picks, notes
    if outputs[0] is not None and outputs[1] is not None:  # the rows run to choose them
        a, b = (np.asarray(o).reshape(len(o), -1) for o in outputs)
        ex.output["rows_run"] = int(len(a))
        ex.output["rows_flipped"] = int((a.argmax(1) != b.argmax(1)).sum()) \
            if a.shape[1] > 1 else 0
        if ex.output["rows_flipped"] and not ex.output.get("flips"):
            ex.notes.append(f"{ex.output['rows_flipped']} row(s) flip in the run but none of "
                            f"the traced ones does: the trace runs the converted model as "
                            f"its file says (ONNX Runtime unoptimised), the run as configured")
    return ex


def _outputs(art: Artifact, x, runtime: str, options: dict, threads):
    from convbench.models.spec import to_layout
    from convbench.runtimes.base import open_runner

    try:
        with open_runner(art, runtime, threads=threads, **options) as r:
            return r.infer_all(to_layout(np.asarray(x), "keras" if art.meta.get("layout") ==
                                         "nhwc" else "torch"))
    except Exception:  # a model that does not run whole is still traced up to where it stops
        return None
