"""Shared fixtures: a private cache dir, the real data, small trained originals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("CONVBENCH_DATA", str(REPO.parent / "shared" / "data"))
DATA = Path(os.environ["CONVBENCH_DATA"])


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Trained models and conversions go to a per-session cache, not the user's."""
    if "CONVBENCH_CACHE" not in os.environ or not os.environ.get("CI"):
        os.environ["CONVBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


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
