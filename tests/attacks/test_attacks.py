"""Attacks lower accuracy; replay shows divergence only where the converted function differs."""

import numpy as np
import pytest
import torch

from convbench.attacks import ATTACKS, AttackError, make_attack
from convbench.attacks.targets import target_for
from convbench.convert import convert
from convbench.attacks.protocol import both_correct, replay, run_attack
from convbench.records import Artifact, Metrics
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


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_gradient_attacks_sweep_eps_on_the_same_inputs(lenet, name):
    _, target, x, y = lenet
    attack = make_attack({"name": name, "sweep": [0.05, 0.1], "max_iter": 5} if name == "pgd"
                         else {"name": name, "sweep": [0.05, 0.1]})
    [run] = run_attack(attack, target, target, x, y, 20, 0, False)
    m = Metrics(run.metrics)
    curve = [m.get("misclassification", role="original", attack=name, direction="forward",
                   **({"sweep": "eps", "sweep_value": e} if e != 0.3 else {}))
             for e in (0.05, 0.1, 0.3)]
    assert None not in curve and curve == sorted(curve) and curve[-1] > curve[0]
    assert m.get("perturbation", stat="linf_mean", attack=name, direction="forward",
                 sweep="eps", sweep_value=0.05) <= 0.05 + 1e-6


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
            run = run_attack(make_attack({"name": name, **params}), target, conv,
                             x, y, None, 0, False)[0]
            m = Metrics(run.metrics)
            where = {"attack": name, "direction": "forward"}
            assert m.get("divergence", **where) == 0
            assert m.get("misclassification", role="original", **where) == \
                m.get("misclassification", role="converted", **where)
            assert m.get("output_diff", stat="mean", **where) < 1e-5


def test_replay_on_a_perturbed_model_diverges(lenet, tmp_path):
    art, target, x, y = lenet
    perturbed = _rounded(art, tmp_path, torch.bfloat16)
    with open_runner(perturbed) as r:
        conv = target_for(perturbed, r, 10, (1, 28, 28))
        outcomes = run_attack(make_attack({"name": "boundary", "max_iter": 30}), target, conv,
                              x, y, None, 0, False)
    fwd, rev = outcomes
    assert (fwd.direction, rev.direction) == ("forward", "reverse") and len(fwd.indices) > 40
    f, r = Metrics(fwd.metrics), Metrics(rev.metrics)
    # Boundary's adversarial inputs sit on the original's decision boundary: moving the
    # boundary by rounding the weights flips some of them
    assert f.get("divergence", attack="boundary", direction="forward") > 0
    assert f.get("inputs", attack="boundary", direction="forward") == len(fwd.indices)
    # reverse: crafted on the converted model (which it fools), replayed on the original
    rv = {"attack": "boundary", "direction": "reverse"}
    assert r.get("misclassification", role="converted", **rv) == 1.0
    assert r.get("misclassification", role="original", **rv) is not None


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
    m = Metrics(replay(x, x_adv, y, a, b, text=False))
    assert m.get("misclassification", role="original") == 0.5
    assert m.get("misclassification", role="converted") == 0.75
    assert m.get("divergence") == 1 and m.get("inputs") == 4
    assert m.get("unperturbed") == 3  # only input 0 was changed
    # input 1: only the original is right; none the other way: McNemar on one pair
    assert m.get("correct_only", role="original") == 1
    assert m.get("correct_only", role="converted") == 0 and m.get("mcnemar") == 1.0
    assert m.get("output_diff", stat="mean") == pytest.approx(0.4 * 2 / 8)
    assert m.get("perturbation", stat="linf_mean") == pytest.approx(0.3 / 4)
    assert m.get("perturbation", stat="l2_mean") == pytest.approx(0.3 / 4)


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


def test_a_model_ending_in_logits_gets_gradients_of_its_logits():
    """A user's model without a softmax: its outputs are taken as logits (ART's cross
    entropy of them), not as probabilities whose log would be clamped to a constant."""
    from types import SimpleNamespace

    from convbench.attacks.protocol import _probabilities

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.randn(5, 1, 2, 2)
    assert not _probabilities(model(x).detach().numpy())
    assert _probabilities(torch.softmax(model(x), 1).detach().numpy())
    runner = SimpleNamespace(model=model, capabilities=frozenset({"predict", "gradients"}),
                             infer_all=lambda z, b: model(torch.from_numpy(z)).detach().numpy())
    art = Artifact("torch", "unused.pt", "", {"layout": "nchw"})
    target = target_for(art, runner, 3, (1, 2, 2), probabilities=False)
    y = np.array([0, 1, 2, 0, 1])
    got = target.estimator().loss_gradient(x.numpy(), np.eye(3)[y])
    xx = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(xx), torch.from_numpy(y)).backward()
    want = xx.grad.numpy()
    assert np.abs(want).min() > 0
    np.testing.assert_allclose(got / np.abs(got).max(), want / np.abs(want).max(), rtol=1e-4)
