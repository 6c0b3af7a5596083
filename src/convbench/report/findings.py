"""The study's published findings (../shared/STUDY.md) beside convbench's, each decided by a
stated test.

Every finding reads the stored cells and answers "holds", "differs" or "not enough data",
with convbench's figure, the test it rests on (its p-value and effect size) and, when it
differs, which way. The study's own numbers come from `study_numbers.yaml`, where each one
names its source (the paper or a file of the replication package).

Tests: McNemar's exact test over paired predictions pooled over cells (accuracy; adversarial
correctness), Wilcoxon's signed-rank test over paired cells with the rank-biserial correlation
as effect size (output errors; latency over training runs, which needs 6 pairs or more), the
exact binomial interval of a count (flips, divergence), the median's 95% interval of each
latency figure, and a plain count where a quantity does not vary between runs (file sizes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convbench.measures.agreement import mcnemar_from_counts
from convbench.records import Status, StoredCell
from convbench.report.stats import clopper_pearson, paired_change, wilcoxon_paired
from convbench.results import latency_batches, on_interpreter

HOLDS, DIFFERS, NO_DATA = "holds", "differs", "not enough data"
ALPHA = 0.05  # the significance level of every test here
STUDY_ATTACKS = ("fgsm", "boundary")  # the study's image attacks (RQ3 findings pool these)

VERSIONS = ("the study used coremltools 5 (NeuralNetwork .mlmodel run by Apple's runtime) and "
            "2021-era converters; here converters are current and Core ML runs on convbench's "
            "interpreter")


@dataclass
class Finding:
    title: str
    study: str  # the study's figure, from the data file
    figure: str = "-"  # convbench's figure
    test: str = "-"  # the test, its p-value and effect size
    verdict: str = NO_DATA
    why: str = ""  # which way it differs, or what data is missing
    sources: tuple[str, ...] = ()  # ids of the study's numbers used


@lru_cache(maxsize=1)
def study_numbers() -> dict[str, dict[str, Any]]:
    """The study's numbers by id (see study_numbers.yaml for the fields and sources)."""
    import yaml

    data = yaml.safe_load((Path(__file__).with_name("study_numbers.yaml")).read_text())
    return {n["id"]: n for n in data["numbers"]}


def _numbers(quantity: str, **where) -> list[dict[str, Any]]:
    return [n for n in study_numbers().values() if n["quantity"] == quantity
            and all(n.get(k) == v for k, v in where.items())]


def _ok(cells: list[StoredCell], framework: str | None = None,
        format: str | None = None) -> list[StoredCell]:
    """Finished cells; `format` "coreml" matches every Core ML target."""
    return [c for c in cells if c.status is Status.OK
            and (framework is None or c.key.framework == framework)
            and (format is None or c.key.format == format
                 or (format == "coreml" and c.key.format.startswith("coreml")))]


def _sum(cells: list[StoredCell], measure: str, **fields) -> float:
    return float(sum(m.value for c in cells for m in c.metrics.find(measure=measure, **fields)))


def _p(p: float) -> str:
    return f"p = {p:.3g}"


# --- RQ1 -----------------------------------------------------------------------------------

def accuracy_kept(cells: list[StoredCell]) -> Finding:
    f = Finding("RQ1: converted accuracy is at the level of the original", "abstract")
    ok = [c for c in _ok(cells) if c.metrics.one("correct_only", role="original")]
    if not ok:
        f.why = ("no finished cell stores the paired counts (cells written by convbench before "
                 "typed results kept only each cell's p-value)" if _ok(cells) else
                 "no finished cell")
        return f
    b = int(_sum(ok, "correct_only", role="original", attack=""))
    c = int(_sum(ok, "correct_only", role="converted", attack=""))
    n = int(_sum(ok, "inputs", attack=""))
    p = mcnemar_from_counts(b, c)
    d, lo, hi = paired_change(b, c, n)
    f.figure = (f"accuracy change {d:+.2%} [{lo:+.2%}, {hi:+.2%}] over {n} paired predictions "
                f"in {len(ok)} cells ({b} right only before, {c} only after conversion)")
    f.test = f"McNemar's exact test, pooled: {_p(p)}; effect {d:+.2%}"
    if p >= ALPHA:
        f.verdict = HOLDS
    else:
        f.verdict = DIFFERS
        f.why = (f"converted models are {'less' if d < 0 else 'more'} accurate, by "
                 f"{abs(d):.2%} of inputs; " + VERSIONS)
    return f


def keras_onnx_labels(cells: list[StoredCell]) -> Finding:
    agree, worst = study_numbers()["label_agreement.keras.all.onnx"], \
        study_numbers()["abs_err_max.keras.all.onnx"]
    f = Finding("RQ1: Keras -> ONNX keeps every label",
                f"{agree['value']:.0%} of labels, max abs difference <= {worst['value']:.1e}",
                sources=(agree["id"], worst["id"]))
    ok = _ok(cells, "keras", "onnx")
    if not ok:
        f.why = "no finished Keras -> ONNX cell"
        return f
    flips, n = int(_sum(ok, "label_flips")), int(_sum(ok, "inputs", attack=""))
    ties = int(_sum(ok, "tie_flips"))  # cells stored before ties were told apart: 0
    mx = max(c.metrics.get("abs_err", stat="max", default=0.0) for c in ok)
    lo, hi = clopper_pearson(flips, n)
    f.figure = (f"{flips} of {n} labels flipped ({ties} on ties within float32 rounding); "
                f"max abs difference {mx:.1e}")
    f.test = f"exact binomial 95% interval of the flip rate [{lo:.2%}, {hi:.2%}]"
    f.verdict = HOLDS if flips == 0 else DIFFERS  # the claim is every label, ties included
    if flips:
        f.why = (f"{flips} label(s) flipped, {flips - ties} of them off a tie; outputs differ "
                 f"by up to {mx:.1e}")
    return f


def _paired(cells: list[StoredCell], measure: str, **fields) -> list[tuple[float, float]]:
    """One (ONNX, Core ML) pair of `measure` per original (framework, model, dataset, run,
    trained file): the mean over its ONNX cells and over its Core ML cells (FP16, FP32 and
    NeuralNetwork targets of one original are one pair, not several)."""
    by: dict = defaultdict(lambda: {"onnx": [], "coreml": []})
    for c in _ok(cells):
        fmt = "coreml" if c.key.format.startswith("coreml") else c.key.format
        v = c.metrics.get(measure, **fields)
        if fmt in ("onnx", "coreml") and v is not None:
            k, orig = c.key, c.artifacts.get("original")
            by[(k.framework, k.model, k.dataset, k.run, orig and orig.sha256)][fmt].append(v)
    return [(float(np.mean(g["onnx"])), float(np.mean(g["coreml"]))) for g in by.values()
            if g["onnx"] and g["coreml"]]


def coreml_error_larger(cells: list[StoredCell]) -> Finding:
    ratios = []
    for fw in ("keras", "torch"):
        for n in _numbers("abs_err_mean", framework=fw, format="onnx"):
            cm = study_numbers().get(n["id"].replace(".onnx", ".coreml"))
            if cm and n["value"] > 0:
                ratios.append(cm["value"] / n["value"])
    f = Finding("RQ1: Core ML outputs differ far more than ONNX outputs",
                f"Core ML / ONNX mean abs error: median {np.median(ratios):.2g}x over "
                f"{len(ratios)} models ({min(ratios):.2g}x to {max(ratios):.2g}x)",
                sources=tuple(n["id"] for n in _numbers("abs_err_mean")))
    pairs = _paired(cells, "abs_err", stat="mean")
    if not pairs:
        f.why = "no ONNX and Core ML cells of the same original"
        return f
    onnx, coreml = np.array(pairs).T
    ratio = np.median(coreml / np.maximum(onnx, 1e-30))
    larger = int((coreml > onnx).sum())
    f.figure = (f"Core ML / ONNX mean abs error: median {ratio:.2g}x; Core ML larger for "
                f"{larger} of {len(pairs)} originals")
    w = wilcoxon_paired(list(coreml), list(onnx))
    if np.isnan(w["p"]):
        f.test = f"Wilcoxon signed-rank over pairs: {w['verdict']}"
        f.why = f"{len(pairs)} original(s) converted to both; the test needs 6 or more"
        return f
    f.test = f"Wilcoxon signed-rank over {len(pairs)} originals: {_p(w['p'])}; " \
             f"rank-biserial {w['effect']:+.2f}"
    if w["p"] < ALPHA and w["effect"] > 0:
        f.verdict = HOLDS
    else:
        f.verdict = DIFFERS
        f.why = ("ONNX outputs differ more than Core ML's" if w["p"] < ALPHA else
                 "no significant difference between Core ML's and ONNX's errors") + \
            "; " + VERSIONS
    return f


# --- RQ2 -----------------------------------------------------------------------------------

def sizes_shrink(cells: list[StoredCell]) -> Finding:
    f = Finding("RQ2: sizes shrink after conversion",
                "; ".join(f"{n['framework']} {n['model']} {n['value']:,.0f} -> "
                          f"{study_numbers()[n['id'].replace('.original', '.onnx')]['value']:,.0f}"
                          f" B (ONNX)" for n in _numbers("size", model="lenet5", format=None)),
                sources=tuple(n["id"] for n in _numbers("size")))
    ratios = defaultdict(list)
    for c in _ok(cells):
        o, v = c.metrics.get("size", role="original"), c.metrics.get("size", role="converted")
        if o and v:
            ratios[(c.key.framework, c.key.model, c.key.format)].append(v / o)
    if not ratios:
        f.why = "no finished cell with both sizes"
        return f
    med = {k: float(np.median(r)) for k, r in ratios.items()}
    grew = [k for k, r in med.items() if r >= 1]
    f.figure = (f"converted / original size: median {np.median(list(med.values())):.2f} over "
                f"{len(med)} conversions; larger after conversion: {len(grew)}")
    f.test = "count over distinct conversions (file sizes do not vary between runs)"
    f.verdict = DIFFERS if grew else HOLDS
    if grew:
        f.why = ("grew: " + ", ".join(f"{fw} {m} -> {fmt} ({med[(fw, m, fmt)]:.2f}x)"
                                      for fw, m, fmt in grew[:5]) +
                 "; convbench saves originals without optimizer state (the study's Keras .h5 "
                 "files most likely carried it), and ONNX graphs add structure to small models")
    return f


def _latency_ci(c: StoredCell, role: str, batch: int):
    got = {m.stat: m for m in c.metrics.find(measure="latency", role=role, batch_size=batch)}
    med = got.get("median")
    if med is None or med.noisy or "ci_low" not in got:
        return None
    return med.value, got["ci_low"].value, got["ci_high"].value


def some_slower(cells: list[StoredCell]) -> Finding:
    converted = [n for n in _numbers("latency_bs128") if n["format"]]
    slow_study = [n for n in converted if n["value"] >
                  study_numbers()[n["id"].rsplit(".", 1)[0] + ".original"]["value"]]
    f = Finding("RQ2: some converted models run slower",
                f"{len(slow_study)} of {len(converted)} conversions slower per batch of 128, "
                f"e.g. Keras LeNet-5 Core ML 0.1035 s vs 0.0566 s",
                sources=tuple(n["id"] for n in _numbers("latency_bs128")))
    groups = defaultdict(list)
    interpreted = noisy = 0
    for c in _ok(cells):
        batches = latency_batches(c)
        if not batches:
            continue
        if on_interpreter(c):
            interpreted += 1
            continue
        # the study's batch of 128, else the largest batch whose two figures are trustworthy
        order = ([128] if 128 in batches else []) + [b for b in reversed(batches) if b != 128]
        got = next(((b, o, v) for b in order
                    for o, v in [(_latency_ci(c, "original", b), _latency_ci(c, "converted", b))]
                    if o is not None and v is not None), None)
        if got is None:
            noisy += 1
            continue
        b, o, v = got
        k = c.key
        groups[(k.framework, k.model, k.dataset, k.format, b)].append((o, v))
    left_out = (f"{noisy} cell(s) with no batch size whose two figures are trustworthy (noisy, "
                f"or without an interval) and {interpreted} Core ML cell(s) timed on "
                f"convbench's interpreter (not Apple's runtime) left out")
    if not groups:
        f.why = "no trustworthy latency figure: " + left_out
        return f
    slower, tests = [], []
    for (fw, m, ds, fmt, b), runs in groups.items():
        name = f"{fw} {m} -> {fmt} (batch {b})"
        if len(runs) >= 6:
            w = wilcoxon_paired([v[0] for _, v in runs], [o[0] for o, _ in runs])
            tests.append(f"{name}: Wilcoxon {_p(w['p'])}")
            if w["p"] < ALPHA and w["effect"] > 0:
                slower.append(name)
        elif all(v[1] > o[2] for o, v in runs):  # converted's interval wholly above
            slower.append(name)
    ratios = [v[0] / o[0] for runs in groups.values() for o, v in runs]
    f.figure = (f"{len(slower)} of {len(groups)} conversions slower"
                + (f" ({', '.join(slower[:4])})" if slower else "")
                + f"; converted / original time: median {np.median(ratios):.2f}")
    f.test = ("per cell, the converted median's 95% interval wholly above the original's "
              "(every run); over 6+ runs, Wilcoxon signed-rank" + (f": {'; '.join(tests)}"
                                                                  if tests else "")
              + f"; {left_out}")
    f.verdict = HOLDS if slower else DIFFERS
    if not slower:
        f.why = "every converted model timed ran as fast as its original or faster"
    return f


# --- RQ3 -----------------------------------------------------------------------------------

def _adversarial(cells: list[StoredCell]):
    """Pooled (b, c, n) of the forward replay at the attacks' own settings: `b` inputs only
    the original classifies right, `c` only the converted model."""
    b = c = n = 0
    for cell in cells:
        for attack in STUDY_ATTACKS:
            where = {"attack": attack, "direction": "forward", "sweep": ""}
            only_o = cell.metrics.get("correct_only", role="original", **where)
            if only_o is None:
                continue
            b += int(only_o)
            c += int(cell.metrics.get("correct_only", role="converted", **where))
            n += int(cell.metrics.get("inputs", **where))
    return b, c, n


def coreml_more_vulnerable(cells: list[StoredCell]) -> Finding:
    ids = [n["id"] for n in _numbers("misclass_converted") + _numbers("misclass_original")]
    before = study_numbers()["misclass_original.keras.lenet5.coreml.fgsm"]["value"]
    after = study_numbers()["misclass_converted.keras.lenet5.coreml.fgsm"]["value"]
    f = Finding("RQ3: Core ML models are more vulnerable than ONNX models",
                f"Keras LeNet-5 FGSM {before:.1%} -> {after:.1%} (Core ML); PyTorch ResNet-18 "
                f"-> ONNX unchanged", sources=tuple(ids))
    got = {fmt: _adversarial(_ok(cells, format=fmt)) for fmt in ("coreml", "onnx")}
    if not all(n for _, _, n in got.values()):
        f.why = "needs FGSM or Boundary replayed on both ONNX and Core ML cells"
        return f
    rise, se, ps = {}, {}, {}
    for fmt, (b, c, n) in got.items():
        # the rise in misclassification: inputs only the original still gets right
        d, lo, _ = paired_change(c, b, n)
        rise[fmt], se[fmt] = d, (d - lo) / 1.96
        ps[fmt] = mcnemar_from_counts(b, c)
    diff = rise["coreml"] - rise["onnx"]
    z = diff / math.hypot(se["coreml"], se["onnx"]) if se["coreml"] or se["onnx"] else 0.0
    p_diff = math.erfc(abs(z) / math.sqrt(2))  # two-sided, normal approximation
    f.figure = "; ".join(f"{'Core ML' if fmt == 'coreml' else 'ONNX'}: misclassification "
                         f"{rise[fmt]:+.1%} after conversion over {got[fmt][2]} inputs"
                         for fmt in ("onnx", "coreml"))
    f.test = (f"difference of the two rises {diff:+.1%}: z-test {_p(p_diff)} (normal "
              f"approximation, independent formats); within each format, McNemar's exact test "
              f"of original vs converted correctness: ONNX {_p(ps['onnx'])}, Core ML "
              f"{_p(ps['coreml'])}")
    if p_diff < ALPHA and diff > 0 and ps["coreml"] < ALPHA:
        f.verdict = HOLDS
    else:
        f.verdict = DIFFERS
        f.why = ("ONNX models lose more robustness than Core ML's" if p_diff < ALPHA and diff < 0
                 else "adversarial inputs crafted on the original fool Core ML no more often "
                 "than ONNX") + "; " + VERSIONS
    return f


def onnx_robustness_unchanged(cells: list[StoredCell]) -> Finding:
    src = study_numbers()["divergence.torch.resnet18.onnx.fgsm"]
    f = Finding("RQ3: ONNX keeps robustness (no divergence)",
                f"PyTorch ResNet-18 -> ONNX: FGSM divergence {src['value']:.0f}",
                sources=(src["id"],))
    ok = _ok(cells, format="onnx")
    where = {"attack": "fgsm", "direction": "forward", "sweep": ""}
    div = int(sum(c.metrics.get("divergence", 0.0, **where) for c in ok))
    n = int(sum(c.metrics.get("inputs", 0.0, **where) for c in ok))
    if not n:
        f.why = "no ONNX cell replayed FGSM"
        return f
    lo, hi = clopper_pearson(div, n)
    f.figure = f"FGSM divergence on ONNX: {div} of {n} adversarial inputs"
    f.test = f"exact binomial 95% interval of the divergence rate [{lo:.2%}, {hi:.2%}]"
    f.verdict = HOLDS if div == 0 else DIFFERS
    if div:
        f.why = "ONNX outputs differ enough to move labels of inputs near the decision boundary"
    return f


FINDINGS: list[Callable[[list[StoredCell]], Finding]] = [
    accuracy_kept, keras_onnx_labels, coreml_error_larger, sizes_shrink, some_slower,
    coreml_more_vulnerable, onnx_robustness_unchanged]


def compare(cells: list[StoredCell]) -> list[Finding]:
    """Each of the study's findings decided on `cells`."""
    return [check(cells) for check in FINDINGS]
