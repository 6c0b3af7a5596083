"""The batched decision attacks are ART's algorithm, advanced for every input at once."""

import itertools

import numpy as np
import pytest

from convbench.attacks import AttackError, make_attack
from convbench.attacks.base import load_art, run_batched
from convbench.attacks.targets import target_for
from convbench.runtimes import open_runner

ATTACKS = [("boundary", {"max_iter": 20}), ("hopskipjump", {"max_iter": 4})]


@pytest.fixture(scope="module")
def lenet(trained, digits_test):
    """The trained PyTorch LeNet-5 as a Target and 40 test digits it classifies correctly."""
    art = trained["torch"].artifact
    with open_runner(art) as runner:
        target = target_for(art, runner, 10, (1, 28, 28))
        x, y = digits_test
        ok = np.flatnonzero(target.predict(x).argmax(1) == y)[:40]
        yield target, x[ok], y[ok]


class Counted:
    """A target that counts its runner calls."""

    def __init__(self, target):
        self.target, self.calls = target, 0
        self.nb_classes, self.input_shape = target.nb_classes, target.input_shape

    def predict(self, x):
        self.calls += 1
        return self.target.predict(x)

    def black_box(self):
        from convbench.attacks.base import Target
        return Target(self.predict, self.nb_classes, self.input_shape).black_box()


def _starts(target, x, y, seed=1):
    """Uniform noise the model labels otherwise, one per input: a given starting point."""
    rs = np.random.RandomState(seed)
    out = []
    for xi, yi in zip(x, y):
        while True:
            z = rs.uniform(0, 1, size=xi.shape).astype(np.float32)
            if target.predict(z[None]).argmax(1)[0] != yi:
                out.append(z)
                break
    return np.stack(out)


@pytest.mark.parametrize("name, params", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_batched_steps_are_arts_step_for_step(lenet, name, params):
    """From the same starting point, drawing the same random numbers, one input's batched
    attack ends where ART's does, to float rounding (ART computes some of it in float64)."""
    target, x, y = lenet
    x, y = x[:4], y[:4]
    starts = _starts(target, x, y)
    attack = make_attack({"name": name, **params})
    load_art()
    for i in range(len(x)):
        np.random.seed(100 + i)  # ART draws from numpy's global generator
        ref = attack.build(target.black_box()).generate(x[i:i + 1], x_adv_init=starts[i:i + 1])
        steps = attack.steps(x[i], int(y[i]), np.random.RandomState(100 + i), attack.params,
                             start=starts[i])
        ours = run_batched([steps], target.predict)[0]
        assert np.linalg.norm(ours - x[i]) < 0.75 * np.linalg.norm(starts[i] - x[i])  # it moved
        np.testing.assert_allclose(ours, ref[0], atol=1e-4)


@pytest.mark.parametrize("name, params", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_an_input_does_not_depend_on_the_others(lenet, name, params):
    """Each input draws from its own generator: attacked with nine others, or alone, or with
    each runner call cut to a few candidates, it ends in the same place."""
    target, x, y = lenet
    x, y = x[:10], y[:10]
    attack = make_attack({"name": name, **params})

    def steps(i):
        return attack.steps(x[i], int(y[i]), np.random.default_rng(i), attack.params)

    together = run_batched([steps(i) for i in range(10)], target.predict)
    small_calls = run_batched([steps(i) for i in range(10)], target.predict,
                              call_bytes=3 * x[0].nbytes)
    for i in (0, 7):
        alone = run_batched([steps(i)], target.predict)[0]
        np.testing.assert_array_equal(together[i], alone)
    for a, b in zip(together, small_calls):
        np.testing.assert_array_equal(a, b)


def test_batched_makes_few_runner_calls_and_repeats_itself(lenet):
    target, x, y = lenet
    x, y = x[:20], y[:20]
    counts = {}
    for impl in ("batched", "art"):
        counted = Counted(target)
        attack = make_attack({"name": "boundary", "max_iter": 10, "implementation": impl})
        adv = attack.craft(counted, x, y, np.random.default_rng(0))
        assert (target.predict(adv).argmax(1) != y).mean() >= 0.9
        counts[impl] = counted.calls
    # ART: at least two calls per input per iteration; batched: about two per iteration
    assert counts["art"] >= 2 * 10 * len(x) and counts["batched"] <= counts["art"] / 10
    first = make_attack({"name": "boundary", "max_iter": 10}).craft(
        target, x, y, np.random.default_rng(3))
    again = make_attack({"name": "boundary", "max_iter": 10}).craft(
        target, x, y, np.random.default_rng(3))
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32


@pytest.mark.parametrize("name, params", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_batched_matches_art_in_success_and_distance(lenet, name, params, monkeypatch):
    """Over the same 40 inputs and seed, the two implementations fool the model as often
    (within 2 points) at the same median L2 (within 10%). ART's starting points come from an
    unseeded RandomState: seeded here, so the test is repeatable."""
    target, x, y = lenet
    seeds = itertools.count(1000)

    class Seeded(np.random.RandomState):
        def __init__(self, seed=None):
            super().__init__(next(seeds) if seed is None else seed)

    monkeypatch.setattr(np.random, "RandomState", Seeded)
    stats = {}
    for impl in ("batched", "art"):
        adv = make_attack({"name": name, **params, "implementation": impl}).craft(
            target, x, y, np.random.default_rng(0))
        fooled = target.predict(adv).argmax(1) != y
        l2 = np.linalg.norm((adv - x).reshape(len(x), -1), axis=1)
        stats[impl] = fooled.mean(), np.median(l2[fooled])
    (s_b, l2_b), (s_a, l2_a) = stats["batched"], stats["art"]
    assert abs(s_b - s_a) <= 0.02 and s_b >= 0.9
    assert abs(l2_b - l2_a) <= 0.1 * l2_a


def test_an_unknown_implementation_is_refused():
    with pytest.raises(AttackError, match="implementation must be one of batched, art"):
        make_attack({"name": "boundary", "implementation": "foolbox"})
    assert make_attack("hopskipjump").params["implementation"] == "batched"
    # ART's own parameter checks, made before either implementation runs
    with pytest.raises(AttackError, match="step_adapt must be a number in \\(0, 1\\), not 1.5"):
        make_attack({"name": "boundary", "step_adapt": 1.5})
    with pytest.raises(AttackError, match="max_iter must be a whole number >= 0, not 2.5"):
        make_attack({"name": "boundary", "max_iter": 2.5})
    with pytest.raises(AttackError, match="init_eval \\(50\\) must not exceed max_eval"):
        make_attack({"name": "hopskipjump", "init_eval": 50, "max_eval": 10})


def test_no_inputs_no_calls(lenet):
    target, x, y = lenet
    counted = Counted(target)
    adv = make_attack("boundary").craft(counted, x[:0], y[:0], np.random.default_rng(0))
    assert adv.shape == (0, 1, 28, 28) and counted.calls == 0


@pytest.mark.parametrize("name, params", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_no_starting_point_leaves_the_input_and_says_so(lenet, name, params):
    """A model that labels all noise as each input's own class: no adversarial start exists,
    the input comes back as it was, and the cell's console says why its attack failed."""
    from convbench.attacks.base import Target
    from convbench.cli.present import table
    from convbench.measures.robustness import replay_metrics
    from convbench.records import CellKey, Metrics, Status, StoredCell

    target, x, y = lenet
    label = int(y[0])
    same = y == label
    stubborn = Target(lambda z: np.eye(10, dtype=np.float32)[np.full(len(z), label)], 10,
                      (1, 28, 28))
    adv = make_attack({"name": name, "init_size": 30, **params}).craft(
        Counted(stubborn), x[same], y[same], np.random.default_rng(0))
    assert np.array_equal(adv, x[same])
    metrics = replay_metrics(x[same], adv, y[same], stubborn.predict(adv), target.predict(adv),
                             False, ("original", "converted"), attack=name, direction="forward")
    m, where = Metrics(metrics), {"attack": name, "direction": "forward"}
    assert m.get("unperturbed", **where) == same.sum()
    assert m.get("misclassification", role="original", **where) == 0
    key = CellKey("torch", "lenet5", "digits", "onnx", "onnxruntime", 0)
    cell = StoredCell(key=key, status=Status.OK, metrics=m)
    out = table([cell])
    assert f"{name} 0%->0% (0; {same.sum()} unperturbed)" in out
    assert f"{name} left {same.sum()} of {same.sum()} input(s) unperturbed (none of its " \
           "init_size random starting points" in out
