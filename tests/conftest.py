"""Shared fixtures: a private cache dir, the real data, small trained originals."""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("CONVBENCH_DATA", str(REPO.parent / "shared" / "data"))
DATA = Path(os.environ["CONVBENCH_DATA"])


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Trained models and conversions go to a per-session cache, not the user's; the timing
    lock is the session's own (another convbench on the machine must not defer the tests'
    timings, nor the tests its)."""
    if "CONVBENCH_CACHE" not in os.environ or not os.environ.get("CI"):
        os.environ["CONVBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    elif os.environ.get("PYTEST_XDIST_WORKER"):  # CI's cache, one part per worker
        os.environ["CONVBENCH_CACHE"] = str(Path(os.environ["CONVBENCH_CACHE"])
                                            / os.environ["PYTEST_XDIST_WORKER"])
    os.environ["CONVBENCH_LOCK_DIR"] = str(tmp_path_factory.mktemp("locks"))
    yield


def need_wordnet() -> None:
    """Skip without WordNet (the genetic attack's synonyms), except in CI."""
    if not Path("/usr/share/wordnet/index.noun").exists() and not os.environ.get(
            "CONVBENCH_WORDNET"):
        if os.environ.get("CI"):
            pytest.fail("CI must install wordnet-base (.ci/run does)")
        pytest.skip("WordNet (wordnet-base) not installed")


def need_data(*parts: str) -> None:
    """Skip when a real dataset is absent, except in CI where it must be there."""
    if not DATA.joinpath(*parts).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {DATA.joinpath(*parts)}")
        pytest.skip(f"{DATA.joinpath(*parts)} not present")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """LeNet-5 trained briefly on digits in each framework: {framework: Artifact}."""
    from convbench.training import preset_config, train

    out = tmp_path_factory.mktemp("trained")
    arts = {}
    for fw in ("torch", "keras"):
        cfg = preset_config("smoke", fw, "lenet5", "digits", epochs=8, lr=0.05, batch_size=32,
                            n_train=1000)
        arts[fw] = train(cfg, out)
    return arts


@pytest.fixture(scope="session")
def digits_test():
    """The digits test split (NCHW, 28x28) as (x, y)."""
    from convbench.data import get_dataset

    x, y, _ = get_dataset("digits").arrays("test")
    return x, y


# --- What the interpreters executed: the "every op / layer is tested" guards ---------------
#
# Each registered MIL op and NeuralNetwork layer is wrapped so that running it under a test in
# tests/mil (ops) or tests/nn (layers) is recorded; the guards, run last, compare the records
# with the registries. A comment naming an op no longer counts as a test of it.

EXECUTED: dict[str, set[str]] = {"mil": set(), "nn": set()}
_NOW = {"suite": None}
GUARD_SUITES = {"mil": REPO / "tests" / "mil", "nn": REPO / "tests" / "nn"}


def _record_executions() -> None:
    import functools
    from dataclasses import replace

    from convbench.mil.ops import OPS, _load_families
    from convbench.nn.layers import LAYERS

    def recording(suite: str, name: str, fn):
        @functools.wraps(fn)  # keeps the signature the interpreter checks inputs against
        def run(*args, **kwargs):
            if _NOW["suite"] == suite:
                EXECUTED[suite].add(name)
            return fn(*args, **kwargs)

        return run

    def recording_plan(name: str, plan):
        def planned(**constants):
            fn = plan(**constants)
            return None if fn is None else recording("mil", name, fn)

        planned.inputs = plan.inputs
        return planned

    _load_families()
    for name in OPS.names():
        impl = OPS.get(name)
        OPS._entries[name] = replace(impl, fn=recording("mil", name, impl.fn),
                                     plan=impl.plan and recording_plan(name, impl.plan))
    for name in LAYERS.names():
        LAYERS._entries[name] = recording("nn", name, LAYERS.get(name))


def pytest_configure(config):
    # every ML Program the suite runs on the compiled engine is also run on the reference
    # interpreter (the first run of each of its first three input shapes, in runner processes
    # too), and every package the Core ML runner reads with convbench's protobuf reader is also
    # loaded by coremltools: a bit that differs fails the test that ran it
    from convbench.mil.compiled import CHECK_ENV

    os.environ[CHECK_ENV] = "1"
    config.addinivalue_line("markers", "coverage_guard: checks what the other tests executed; "
                                       "runs last")
    config.addinivalue_line("markers", "solo: needs the machine to itself (asserts a quiet "
                                       "machine's figures); under xdist, no other test runs "
                                       "beside it")
    _record_executions()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Guards last; and which suites run whole (a guard over part of one would mislead)."""
    guards = [i for i in items if i.get_closest_marker("coverage_guard")]
    items[:] = [i for i in items if i not in guards] + guards
    files = {Path(str(i.path)) for i in items}
    config._whole_suites = {s for s, d in GUARD_SUITES.items()
                            if set(d.glob("test_*.py")) <= files}


# --- Running the suite on several workers (pytest-xdist, `-n 2 --dist loadgroup`) ------------
#
# Each test file runs whole on one worker (its module fixtures are built once), and the
# interpreter suites with their guards run on one worker (the guards read what that worker
# executed). A `solo` test takes the workers' lock exclusively and every other test takes it
# shared, so a solo test starts once the running tests end and none starts beside it.

def _group(item) -> str:
    path = Path(str(item.path))
    if any(d in path.parents for d in GUARD_SUITES.values()):
        return "interpreters"
    return path.relative_to(REPO).as_posix()


def pytest_itemcollected(item):
    # before xdist reads the groups (its collection hook runs before this file's trylast one)
    item.add_marker(pytest.mark.xdist_group(_group(item)))


@contextmanager
def _workers_lock(exclusive: bool):
    """The lock the xdist workers of one run share (a no-op without xdist). An exclusive taker
    holds the turnstile while it waits, and shared takers pass through it, so a solo test is
    not starved by the other workers' stream of tests."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield
        return
    d = Path(tempfile.gettempdir()) / f"convbench-tests-{run}"
    d.mkdir(exist_ok=True)
    lock, gate = (os.open(d / n, os.O_RDONLY | os.O_CREAT, 0o644) for n in ("run", "gate"))
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
        os.close(gate)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    with _workers_lock(exclusive=item.get_closest_marker("solo") is not None):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    path = Path(str(item.path))
    _NOW["suite"] = next((s for s, d in GUARD_SUITES.items() if d in path.parents), None)
    try:
        yield
    finally:
        _NOW["suite"] = None


@pytest.fixture
def executed(request):
    """`executed(suite)`: the names the tests of `suite` ran (skips unless the whole suite was
    collected, so running one test file does not fail the guard)."""

    def get(suite: str) -> set[str]:
        if suite not in getattr(request.config, "_whole_suites", set()):
            pytest.skip(f"run all of {GUARD_SUITES[suite]} to check what its tests execute")
        return EXECUTED[suite]

    return get


@dataclass
class Pair:
    """A zoo model (original) and its conversions, with rows of its dataset (NCHW)."""

    framework: str
    model: str
    original: Any
    converted: dict[str, Any]
    x: Any


EXPLAIN_TARGETS = ("onnx", "coreml-fp32", "coreml", "coreml-nn")


@pytest.fixture(scope="session")
def zoo_pairs(tmp_path_factory, trained) -> list[Pair]:
    """LeNet-5 (the suite's trained one) and ResNet-18 at a quarter width, each framework,
    converted to ONNX and Core ML ML Program FP32; and but for the Keras ResNet, to Core ML FP16
    and NeuralNetwork."""
    from convbench.convert import convert
    from convbench.training import preset_config, train
    from convbench.training.run import dataset_for

    out = tmp_path_factory.mktemp("explain")
    pairs = []
    for model in ("lenet5", "resnet18"):
        ds = dataset_for(model, "digits")
        x = ds.arrays("test", 200, 0)[0]
        for fw in ("torch", "keras"):
            if model == "lenet5":
                original = trained[fw].artifact
            else:
                cfg = preset_config("smoke", fw, model, "digits", epochs=1, lr=0.05,
                                    batch_size=32, n_train=128,
                                    model_options={"width": 0.25})
                original = train(cfg, out).artifact
            converted = {}
            # ResNet's FP16 and NeuralNetwork files of one framework are enough (the suite's time)
            for t in EXPLAIN_TARGETS[:2] if (model, fw) == ("resnet18", "keras") \
                    else EXPLAIN_TARGETS:
                c = convert(original, t, out)
                assert c.ok, f"{fw} {model} -> {t}: {c.message}"
                converted[t] = c.artifact
            pairs.append(Pair(fw, model, original, converted, x))
    return pairs
