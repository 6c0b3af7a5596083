"""Cells with known numbers, written as convbench writes them, for report and finding tests."""

from __future__ import annotations

from convbench.records import (Artifact, Category, CellKey, CellResult, Metric, Metrics, Outcome,
                               Status)


def cell(framework="torch", model="lenet5", dataset="mnist", fmt="onnx", run=0, *,
         inputs=1000, acc=(0.98, 0.98), only=(0, 0), flips=0, abs_err=(1e-7, 1e-6, 2e-6),
         sizes=(4096, 2048), latency=None, attacks=None, engine=None,
         artifact: Artifact | None = None, original_sha="orig") -> CellResult:
    """A finished cell. `latency` maps a batch size to ((median, ci_low, ci_high, noisy) of the
    original, the same of the converted); `attacks` maps an attack name to a dict with `n`,
    `miss` (original, converted), `only` (correct only on the original, on the converted),
    `div`, and optionally `sweep` {eps: (miss original, miss converted)} and `params`."""
    runtime = {"onnx": "onnxruntime"}.get(fmt, "coreml" if fmt.startswith("coreml") else fmt)
    m = Metrics([Metric("inputs", inputs, "count"),
                 Metric("accuracy", acc[0], "ratio", role="original"),
                 Metric("accuracy", acc[1], "ratio", role="converted"),
                 Metric("correct_only", only[0], "count", role="original"),
                 Metric("correct_only", only[1], "count", role="converted"),
                 Metric("label_flips", flips, "count"),
                 *[Metric("abs_err", v, "output", stat=s)
                   for s, v in zip(("mean", "p99", "max"), abs_err)],
                 Metric("bitwise_mismatch", 0.5, "ratio"), Metric("mcnemar", 1.0, "p"),
                 Metric("size", sizes[0], "bytes", role="original"),
                 Metric("size", sizes[1], "bytes", role="converted")])
    for b, roles in (latency or {}).items():
        for role, (med, lo, hi, noisy) in zip(("original", "converted"), roles):
            for stat, v in (("median", med), ("ci_low", lo), ("ci_high", hi)):
                m.add("latency", v, "s", stat=stat, role=role, batch_size=b, noisy=noisy)
    outcomes = []
    for name, a in (attacks or {}).items():
        fw = {"attack": name, "direction": "forward"}
        m.extend([Metric("inputs", a["n"], "count", **fw),
                  Metric("unperturbed", a.get("same", 0), "count", **fw),
                  Metric("misclassification", a["miss"][0], "ratio", role="original", **fw),
                  Metric("misclassification", a["miss"][1], "ratio", role="converted", **fw),
                  Metric("correct_only", a["only"][0], "count", role="original", **fw),
                  Metric("correct_only", a["only"][1], "count", role="converted", **fw),
                  Metric("divergence", a["div"], "count", **fw),
                  Metric("output_diff", 0.0, "output", stat="mean", **fw)])
        for eps, (mo, mc) in a.get("sweep", {}).items():
            sw = {**fw, "sweep": "eps", "sweep_value": eps}
            m.extend([Metric("misclassification", mo, "ratio", role="original", **sw),
                      Metric("misclassification", mc, "ratio", role="converted", **sw)])
        outcomes.append(Outcome("attack", name, Status.OK, "", a.get("params", {})))
    info = {"cost": {"runner_converted": {"runtime": runtime, "engine": engine}}} if engine \
        else {}
    arts = {"original": Artifact("torch", "/nonexistent/o.pt", original_sha,
                                 {"holds": "state_dict"})}
    if artifact is not None:
        arts["converted"] = artifact
    return CellResult(CellKey(framework, model, dataset, fmt, runtime, run, "h"),
                      metrics=m, info=info, artifacts=arts, outcomes=outcomes,
                      started=float(run), finished=float(run) + 1)


def failed(framework="keras", model="lstm", dataset="imdb", fmt="coreml") -> CellResult:
    return CellResult(CellKey(framework, model, dataset, fmt, "coreml", 0, "h"), Status.FAILED,
                      Category.CONVERTER_CRASH, "IndexError: boom")
