"""Each of the study's findings, on stores built with known numbers: every verdict it can give,
with its figure and its reason."""

import pytest

from convbench.report import findings as F
from convbench.store import Store

from cells import cell

FAST = (0.001, 0.00095, 0.00105, False)  # median, 95% interval, not noisy
SLOW = (0.002, 0.0019, 0.0021, False)


def _decide(tmp_path, check, cells):
    """The finding decided on `cells` after a round trip through a store."""
    with Store(tmp_path / "s.db") as store:
        for c in cells:
            store.put(c)
        return check(list(store.cells()))


def _fgsm(n=100, miss=(0.4, 0.4), only=(0, 0), div=0):
    return {"fgsm": {"n": n, "miss": miss, "only": only, "div": div}}


CASES = {
    # finding: [(cells, verdict, words in the figure or the reason), ...]
    F.accuracy_kept: [
        ([cell(only=(2, 3)), cell(fmt="coreml", only=(0, 0))], F.HOLDS,
         ["+0.05%", "2000 paired predictions in 2 cells", "p = 1"]),
        ([cell(only=(40, 5))], F.DIFFERS, ["-3.50%", "less accurate, by 3.50%"]),
        ([], F.NO_DATA, ["no finished cell"]),
    ],
    F.keras_onnx_labels: [
        ([cell("keras"), cell("keras", run=1)], F.HOLDS, ["0 of 2000 labels", "[0.00%, 0.18%]"]),
        ([cell("keras", flips=3)], F.DIFFERS, ["3 of 1000 labels", "3 label(s) flipped"]),
        ([cell("torch")], F.NO_DATA, ["no finished Keras -> ONNX cell"]),
    ],
    F.coreml_error_larger: [
        ([c for r in range(6) for c in (cell(run=r, abs_err=(1e-7, 1e-6, 2e-6)),
                                        cell(fmt="coreml", run=r, abs_err=(1e-3, 1e-2, 2e-2)))],
         F.HOLDS, ["median 1e+04x", "larger for 6 of 6 originals", "p = 0.0312", "+1.00"]),
        # three Core ML targets of each of 2 originals are 2 pairs, not 6: too few to test
        ([c for r in range(2) for c in (cell(run=r),
                                        *[cell(fmt=t, run=r, abs_err=(1e-3, 1e-2, 2e-2))
                                          for t in ("coreml", "coreml-fp32", "coreml-nn")])],
         F.NO_DATA, ["larger for 2 of 2 originals", "2 original(s) converted to both"]),
        ([c for r in range(6) for c in (cell(run=r, abs_err=(1e-3, 1e-2, 2e-2)),
                                        cell(fmt="coreml-fp32", run=r))],
         F.DIFFERS, ["larger for 0 of 6 originals", "ONNX outputs differ more"]),
        ([cell(), cell(fmt="coreml", abs_err=(1e-3, 1e-2, 2e-2))], F.NO_DATA,
         ["larger for 1 of 1 originals", "1 original(s) converted to both; the test needs 6"]),
    ],
    F.sizes_shrink: [
        ([cell(sizes=(4096, 2048)), cell("keras", sizes=(8000, 7000))], F.HOLDS,
         ["median 0.69 over 2 conversions", "larger after conversion: 0"]),
        ([cell(sizes=(4096, 5000)), cell("keras", sizes=(8000, 7000))], F.DIFFERS,
         ["larger after conversion: 1", "grew: torch lenet5 -> onnx (1.22x)"]),
        ([], F.NO_DATA, ["no finished cell with both sizes"]),
    ],
    F.some_slower: [
        ([cell(latency={128: (FAST, SLOW)}), cell("keras", latency={128: (SLOW, FAST)})],
         F.HOLDS, ["1 of 2 conversions slower (torch lenet5 -> onnx (batch 128))"]),
        # six runs: Wilcoxon over the runs decides
        ([cell(run=r, latency={128: (FAST, SLOW)}) for r in range(6)], F.HOLDS,
         ["1 of 1 conversions slower", "Wilcoxon p = 0.0312"]),
        # batch 128 noisy: the largest trustworthy batch decides
        ([cell(latency={32: (FAST, SLOW), 128: (FAST, SLOW[:3] + (True,))})],
         F.HOLDS, ["1 of 1 conversions slower (torch lenet5 -> onnx (batch 32))"]),
        ([cell(latency={128: (SLOW, FAST)}), cell(latency={1: (FAST, FAST)}, run=1)],
         F.DIFFERS, ["0 of 2 conversions slower", "as fast as its original or faster"]),
        ([cell(latency={128: (FAST, SLOW[:3] + (True,))}),
          cell(fmt="coreml", latency={128: (FAST, SLOW)})],
         F.NO_DATA, ["1 cell(s) with no batch size whose two figures are trustworthy",
                     "1 Core ML cell(s) timed on convbench's interpreter"]),
    ],
    F.coreml_more_vulnerable: [
        ([cell(attacks=_fgsm()), cell(fmt="coreml", attacks=_fgsm(miss=(0.4, 0.7),
                                                                    only=(30, 0), div=30))],
         F.HOLDS, ["ONNX: misclassification +0.0%", "Core ML: misclassification +30.0%",
                   "Core ML p = 1.86e-09"]),
        ([cell(attacks=_fgsm(only=(10, 0))), cell(fmt="coreml", attacks=_fgsm())],
         F.DIFFERS, ["ONNX models lose more robustness"]),
        # both lose robustness significantly, by about as much: not "more vulnerable"
        ([cell(attacks=_fgsm(only=(25, 0))), cell(fmt="coreml", attacks=_fgsm(only=(30, 0)))],
         F.DIFFERS, ["difference of the two rises +5.0%", "no more often than ONNX"]),
        ([cell(attacks=_fgsm())], F.NO_DATA, ["needs FGSM or Boundary replayed on both"]),
    ],
    F.onnx_robustness_unchanged: [
        ([cell(attacks=_fgsm()), cell("keras", attacks=_fgsm())], F.HOLDS,
         ["0 of 200 adversarial inputs", "[0.00%, 1.83%]"]),
        ([cell(attacks=_fgsm(div=5))], F.DIFFERS, ["5 of 100", "move labels"]),
        ([cell()], F.NO_DATA, ["no ONNX cell replayed FGSM"]),
    ],
}


@pytest.mark.parametrize("check, case", [(c, i) for c in CASES for i in range(len(CASES[c]))],
                         ids=[f"{c.__name__}-{i}" for c in CASES for i in range(len(CASES[c]))])
def test_each_finding_gives_each_verdict_with_its_figure(tmp_path, check, case):
    cells, verdict, words = CASES[check][case]
    f = _decide(tmp_path, check, cells)
    assert f.verdict == verdict, (f.figure, f.test, f.why)
    text = " | ".join((f.figure, f.test, f.why))
    for w in words:
        assert w in text, (w, text)
    assert f.study and f.title
    assert all(i in F.study_numbers() for i in f.sources)


def test_every_finding_is_covered_here_with_each_verdict():
    assert set(CASES) == set(F.FINDINGS)
    for check, cases in CASES.items():
        assert {v for _, v, _ in cases} == {F.HOLDS, F.DIFFERS, F.NO_DATA}, check.__name__


def test_the_study_numbers_name_their_sources():
    numbers = F.study_numbers()
    assert len(numbers) >= 90
    for n in numbers.values():
        assert n["source"] and isinstance(n["value"], (int, float)), n["id"]
    # a few the findings quote, checked against STUDY.md
    assert numbers["latency_bs128.keras.lenet5.coreml"]["value"] == pytest.approx(0.1035, 1e-3)
    assert numbers["misclass_converted.keras.lenet5.coreml.fgsm"]["value"] == 0.905
    assert numbers["size.torch.lenet5.original"]["value"] == 252295
