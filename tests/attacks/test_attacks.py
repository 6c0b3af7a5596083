"""Attacks lower accuracy; replay shows divergence only where the converted function differs."""

import numpy as np
import pytest
import torch

from convbench.attacks import ATTACKS, AttackError, make_attack
from convbench.attacks.targets import target_for
from convbench.convert import convert
from convbench.measures.robustness import both_correct, replay, run_attack
from convbench.records import Artifact
from convbench.runtimes import open_runner

IMAGE_ATTACKS = [("fgsm", {}), ("pgd", {"max_iter": 20}), ("boundary", {"max_iter": 20}),
                 ("hopskipjump", {"max_iter": 5})]


@pytest.fixture(scope="module")
def lenet(trained, digits_test):
    """The trained PyTorch LeNet-5 as a Target, and 60 test digits it classifies correctly."""
    art = trained["torch"].artifact
    runner = open_runner(art)
    runner.load()
    target = target_for(art, runner, 10, (1, 28, 28))
    x, y = digits_test
    ok = np.flatnonzero(target.predict(x).argmax(1) == y)[:60]
    yield art, target, x[ok], y[ok]
    runner.close()


@pytest.mark.parametrize("name, params", IMAGE_ATTACKS, ids=[a[0] for a in IMAGE_ATTACKS])
def test_image_attacks_lower_accuracy(lenet, name, params):
    _, target, x, y = lenet
    adv = make_attack({"name": name, **params}).craft(target, x, y, np.random.default_rng(0))
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    assert (target.predict(adv).argmax(1) == y).mean() <= 0.5  # from 1.0 on these inputs


def test_fgsm_respects_eps_and_sweeps(lenet):
    _, target, x, y = lenet
    rates = []
    for eps in (0.05, 0.1, 0.3):
        adv = make_attack({"name": "fgsm", "eps": eps}).craft(target, x, y, None)
        assert np.abs(adv - x).max() <= eps + 1e-6
        rates.append((target.predict(adv).argmax(1) != y).mean())
    assert rates == sorted(rates) and rates[-1] > rates[0]


def test_fgsm_on_keras_uses_its_gradients(trained, digits_test):
    art = trained["keras"].artifact
    x, y = digits_test
    with open_runner(art) as runner:
        target = target_for(art, runner, 10, (1, 28, 28))
        ok = np.flatnonzero(target.predict(x).argmax(1) == y)[:60]
        adv = make_attack("fgsm").craft(target, x[ok], y[ok], None)
        assert (target.predict(adv).argmax(1) == y[ok]).mean() <= 0.5


def _rounded(art: Artifact, tmp_path, dtype) -> Artifact:
    """The same model with every weight rounded to `dtype`: a deliberately perturbed twin."""
    state = torch.load(art.path, weights_only=True)
    path = tmp_path / "rounded.pt"
    torch.save({k: v.to(dtype).to(v.dtype) if v.is_floating_point() else v
                for k, v in state.items()}, path)
    return Artifact.from_path("torch", path, **art.meta)


def test_replay_on_the_same_function_does_not_diverge(lenet, tmp_path):
    art, target, x, y = lenet
    onnx = convert(art, "onnx", tmp_path, exporter="torchscript").artifact
    with open_runner(onnx) as r:
        conv = target_for(onnx, r, 10, (1, 28, 28))
        for name, params in IMAGE_ATTACKS[:3]:
            [(_, m, adv, _)] = run_attack(make_attack({"name": name, **params}), target, conv,
                                         x, y, None, 0, False)[:1]
            assert m["divergence"] == 0 and m["misclass_original"] == m["misclass_converted"]
            assert m["abs_out_diff_mean"] < 1e-5


def test_replay_on_a_perturbed_model_diverges(lenet, tmp_path):
    art, target, x, y = lenet
    perturbed = _rounded(art, tmp_path, torch.bfloat16)
    with open_runner(perturbed) as r:
        conv = target_for(perturbed, r, 10, (1, 28, 28))
        outcomes = run_attack(make_attack({"name": "boundary", "max_iter": 30}), target, conv,
                              x, y, None, 0, False)
    (d1, fwd, _, idx), (d2, rev, _, _) = outcomes
    assert (d1, d2) == ("forward", "reverse") and len(idx) > 40
    # Boundary's adversarial inputs sit on the original's decision boundary: moving the
    # boundary by rounding the weights flips some of them
    assert fwd["divergence"] > 0 and fwd["divergence_rate"] == fwd["divergence"] / len(idx)
    assert rev["misclass_converted"] == 1.0 and "misclass_original" in rev


def test_replay_metrics_by_hand():
    class Fixed:
        def __init__(self, probs):
            self.probs = probs

        def predict(self, x):
            return self.probs

    y = np.array([0, 1, 1, 0])
    a = Fixed(np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]))
    b = Fixed(np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.4, 0.6]]))
    x = np.zeros((4, 1, 2, 2))
    x_adv = x.copy()
    x_adv[0, 0, 0, 0] = 0.3
    m = replay(x, x_adv, y, a, b, text=False)
    assert m["misclass_original"] == 0.5 and m["misclass_converted"] == 0.75
    assert m["divergence"] == 1 and m["divergence_rate"] == 0.25
    assert m["abs_out_diff_mean"] == pytest.approx(0.4 * 2 / 8)
    assert m["perturbation_linf_mean"] == pytest.approx(0.3 / 4)
    assert m["perturbation_l2_mean"] == pytest.approx(0.3 / 4)


def test_both_correct_selection_is_seeded(lenet):
    _, target, x, y = lenet
    a = both_correct(target, target, x, y, 10, np.random.default_rng(1))
    b = both_correct(target, target, x, y, 10, np.random.default_rng(1))
    assert len(a) == 10 and np.array_equal(a, b) and list(a) == sorted(a)


def test_bad_attack_parameters_and_applicability(lenet):
    with pytest.raises(AttackError, match="no parameter 'epss'. Did you mean 'eps'"):
        make_attack({"name": "fgsm", "epss": 0.1})
    _, target, _, _ = lenet
    ok, why = make_attack("genetic").applicable(target, "image")
    assert not ok and "text" in why
    from convbench.attacks.base import Target

    no_gradients = Target(target.predict, 10, (1, 28, 28))
    ok, why = make_attack("pgd").applicable(no_gradients, "image")
    assert not ok and "gradients" in why


def test_every_attack_is_tested():
    import pathlib

    text = "".join(p.read_text() for p in pathlib.Path(__file__).parent.glob("test_*.py"))
    assert all(f'"{name}"' in text for name in ATTACKS.names())


def test_loading_art_leaves_the_host_programs_logging_alone(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "host.log"
    code = ("import logging; h = logging.FileHandler(r'%s'); logging.getLogger().addHandler(h)\n"
            "from convbench.attacks.base import load_art; load_art()\n"
            "logging.getLogger().warning('still logging'); h.flush()" % log)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert "still logging" in log.read_text()
