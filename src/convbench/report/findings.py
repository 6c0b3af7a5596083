"""The study's published findings (../shared/STUDY.md) beside convbench's own, one by one.

Each finding reads the stored cells and answers holds / differs / not measured, with the figure
convbench measured and, when it differs, the likely reason.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Cells = list[dict[str, Any]]


def _ok(cells: Cells, **where) -> Cells:
    return [c for c in cells if c["status"] == "ok"
            and all(c[k] == v or (k == "format" and c[k].startswith(v)) for k, v in where.items())]


def _metric(cells: Cells, name: str) -> np.ndarray:
    return np.array([c["metrics"][name] for c in cells if name in c["metrics"]], dtype=float)


def _verdict(ok: bool) -> str:
    return "holds" if ok else "differs"


VERSIONS = ("the study used coremltools 5 (NeuralNetwork .mlmodel run by Apple's runtime) and "
            "2021-era converters; here converters are current and Core ML runs on convbench's "
            "interpreter")


def accuracy_kept(cells: Cells):
    ok = _ok(cells)
    p = _metric(ok, "mcnemar_p")
    if not len(p):
        return None
    delta = np.abs(_metric(ok, "accuracy_delta")).max()
    sig = int((p < 0.05).sum())
    return (_verdict(sig == 0), f"max |accuracy change| {delta:.4f}; McNemar p < 0.05 in {sig} of "
            f"{len(p)} cells", "" if sig == 0 else "some conversions change accuracy "
            "significantly: " + VERSIONS)


def keras_onnx_labels(cells: Cells):
    ok = _ok(cells, framework="keras", format="onnx")
    if not ok:
        return None
    flips, worst = _metric(ok, "label_flips").sum(), _metric(ok, "abs_err_max").max()
    good = flips == 0 and worst <= 2.7e-6
    return (_verdict(good), f"{flips:.0f} flips; max abs difference {worst:.2e}",
            "" if good else "outputs are probabilities here; " + VERSIONS)


def sizes_shrink(cells: Cells):
    rows, verdicts = [], []
    for fw in ("keras", "torch"):
        ok = _ok(cells, framework=fw)
        if not ok:
            continue
        ratio = np.median(_metric(ok, "size_bytes_converted") / _metric(ok, "size_bytes_original"))
        rows.append(f"{fw}: median converted/original size {ratio:.2f}")
        verdicts.append(ratio < 1)
    if not rows:
        return None
    return (_verdict(all(verdicts)), "; ".join(rows), "" if all(verdicts) else
            "convbench saves originals without optimizer state (the study's Keras .h5 files "
            "most likely carried it), and ONNX graphs add structure to small models")


def coreml_more_vulnerable(cells: Cells):
    out = []
    for attack in ("fgsm", "boundary"):
        key = f"{attack}_misclass_converted"
        onnx, coreml = _metric(_ok(cells, format="onnx"), key), _metric(_ok(cells, format="coreml"),
                                                                       key)
        if len(onnx) and len(coreml):
            out.append((attack, onnx.mean(), coreml.mean()))
    if not out:
        return None
    good = all(c > o + 0.01 for _, o, c in out)
    text = "; ".join(f"{a}: ONNX {o:.1%}, Core ML {c:.1%}" for a, o, c in out)
    return (_verdict(good), text, "" if good else "adversarial inputs crafted on the original "
            "fool Core ML about as often as ONNX here; " + VERSIONS)


def coreml_error_larger(cells: Cells):
    onnx = _metric(_ok(cells, format="onnx"), "abs_err_mean")
    coreml = _metric(_ok(cells, format="coreml"), "abs_err_mean")
    if not len(onnx) or not len(coreml):
        return None
    good = np.median(coreml) > 10 * np.median(onnx)
    return (_verdict(good), f"median mean-abs-error ONNX {np.median(onnx):.1e}, Core ML "
            f"{np.median(coreml):.1e}", "" if good else VERSIONS)


def some_slower(cells: Cells):
    ok = _ok(cells)
    slower = []
    for c in ok:
        m = c["metrics"]
        sizes = sorted(int(k.rsplit("bs", 1)[1].split("_")[0]) for k in m
                       if k.startswith("latency_median_s_bs") and k.endswith("_original"))
        if sizes:
            b = sizes[-1]
            conv, orig = (m.get(f"latency_median_s_bs{b}_{r}", 0) for r in ("converted",
                                                                          "original"))
            if conv > orig:
                slower.append(f"{c['framework']} {c['model']} -> {c['format']}")
    if not ok:
        return None
    return (_verdict(bool(slower)), f"{len(slower)} of {len(ok)} converted models slower at the "
            f"largest batch" + (f" ({', '.join(slower[:4])})" if slower else ""),
            "" if slower else "every converted model ran at least as fast here")


def onnx_robustness_unchanged(cells: Cells):
    d = _metric(_ok(cells, format="onnx"), "fgsm_divergence")
    if not len(d):
        return None
    return (_verdict(d.sum() == 0), f"FGSM divergence on ONNX: {d.sum():.0f} in {len(d)} cells",
            "" if d.sum() == 0 else "ONNX outputs differ enough to move labels near the boundary")


FINDINGS: list[tuple[str, str, Callable]] = [
    ("RQ1: converted accuracy is at the level of the original", "abstract", accuracy_kept),
    ("RQ1: Keras -> ONNX keeps every label", "100% of labels, max abs difference <= 2.7e-6",
     keras_onnx_labels),
    ("RQ1: Core ML outputs differ far more than ONNX outputs",
     "mean abs error ONNX 6.7e-9..2.0e-6, Core ML 6.9e-5..1.29", coreml_error_larger),
    ("RQ2: sizes shrink after conversion",
     "Keras LeNet-5 601,864 -> 572,716 B (ONNX); PyTorch LeNet-5 252,295 -> 248,132 B",
     sizes_shrink),
    ("RQ2: some converted models run slower",
     "Keras LeNet-5 Core ML 0.1035 s vs 0.0566 s per batch of 128", some_slower),
    ("RQ3: Core ML models are more vulnerable than ONNX models",
     "Keras LeNet-5 FGSM 46.1% -> 90.5% (Core ML); PyTorch ResNet-18 -> ONNX unchanged",
     coreml_more_vulnerable),
    ("RQ3: ONNX keeps robustness (no divergence)", "PyTorch ResNet-18 -> ONNX: divergence 0",
     onnx_robustness_unchanged),
]


def compare(cells: Cells) -> list[list[str]]:
    """Rows: finding, the study's figure, convbench's figure, verdict, reason."""
    rows = []
    for title, paper, check in FINDINGS:
        got = check(cells)
        if got is None:
            rows.append([title, paper, "-", "not measured", "no cells of that kind in the store"])
        else:
            verdict, figure, reason = got
            rows.append([title, paper, figure, verdict, reason])
    return rows
