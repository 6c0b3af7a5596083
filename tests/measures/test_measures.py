import numpy as np
import pytest

from convbench.measures import agreement, mcnemar_exact
from convbench.records import Metrics


def test_agreement_on_hand_computed_outputs():
    orig = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], dtype=np.float32)
    conv = orig.copy()
    conv[2] = [0.4, 0.6]  # a flip: orig says 0, conv says 1
    conv[3] = [0.5, 0.5]
    y = np.array([0, 1, 1, 0])
    m = Metrics(agreement(orig, conv, y))
    assert m.get("accuracy", role="original") == 0.75
    assert m.get("accuracy", role="converted") == 1.0
    assert m.get("label_flips") == 1 and m.get("inputs") == 4
    assert m.get("abs_err", stat="max") == pytest.approx(0.2, abs=1e-6)
    assert m.get("abs_err", stat="mean") == pytest.approx(0.4 / 8, abs=1e-7)
    assert m.get("rel_err", stat="max") == pytest.approx(0.2 / 0.4, rel=1e-5)
    assert m.get("bitwise_mismatch") == 2 / 8
    assert m.get("mcnemar") == 1.0  # one discordant pair
    # the discordant counts the pooled test needs: only the converted model gets input 2 right
    assert m.get("correct_only", role="original") == 0
    assert m.get("correct_only", role="converted") == 1
    assert {x.unit for x in m.find(measure="accuracy")} == {"ratio"}


def test_relative_error_over_zero_is_infinite_not_hidden():
    orig = np.array([[1e-3, 1.0]])
    conv = np.array([[0.0, 1.0]])
    m = Metrics(agreement(orig, conv, np.array([1])))
    assert np.isinf(m.get("rel_err", stat="max"))
    assert m.get("abs_err", stat="max") == pytest.approx(1e-3)


def test_nan_outputs_are_counted_not_raised():
    m = Metrics(agreement(np.array([[np.nan, 1.0]]), np.array([[0.0, 1.0]]), np.array([1])))
    assert m.get("nonfinite_outputs", role="original") == 1
    assert m.get("nonfinite_outputs", role="converted") == 0


def test_outputs_of_different_shapes_are_a_number_not_an_exception():
    m = Metrics(agreement(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0, 1])))
    assert m.get("shape_mismatch") == 1 and m.get("accuracy", role="original") is None


def test_mcnemar_exact_known_values():
    a = np.array([True] * 10 + [False] * 2 + [True] * 20)
    b = np.array([False] * 10 + [True] * 2 + [True] * 20)
    # b=10, c=2: two-sided binomial p = 2 * P(X <= 2 | n=12, p=0.5) = 2 * 79/4096
    assert mcnemar_exact(a, b) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact(a, a) == 1.0




def test_flips_on_ties_are_told_apart_by_the_converted_precision():
    # input 0: the original's top two differ by 0.003 at magnitude 10, within float16's
    # rounding there ((10 + 10.003) * 2^-11 = 0.0098) but not float32's (1.2e-6);
    # input 1: a flip off a clear margin (0.2), decided in any precision;
    # input 3: the original's top two tie, but the converted model picks its third label,
    # 9 below: decided
    orig = np.array([[10.003, 10.0, 1.0], [0.6, 0.4, 0.0], [0.2, 0.7, 0.1], [10.003, 10.0, 1.0]])
    conv = np.array([[10.0, 10.003, 1.0], [0.4, 0.6, 0.0], [0.2, 0.7, 0.1], [1.0, 1.0, 10.0]])
    fp16 = Metrics(agreement(orig, conv, None, "fp16"))
    assert (fp16.get("label_flips"), fp16.get("tie_flips"), fp16.get("decided_flips")) == (3, 1, 2)
    fp32 = Metrics(agreement(orig, conv, None, "fp32"))
    assert (fp32.get("tie_flips"), fp32.get("decided_flips")) == (0, 3)


def test_without_labels_agreement_has_no_accuracy():
    orig = np.array([[0.9, 0.1], [0.2, 0.8]])
    m = Metrics(agreement(orig, orig[:, ::-1].copy(), None))
    assert m.get("label_flips") == 2 and m.get("inputs") == 2
    assert m.find(measure="accuracy") == [] and m.find(measure="mcnemar") == []
