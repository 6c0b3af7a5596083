"""Training configuration, presets and the result record."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from convbench.records import Artifact


@dataclass(frozen=True)
class TrainConfig:
    """How to train one zoo model once.

    `optimizer` is "sgd" (momentum 0.9) or "adam"; `n_train`/`n_test` take stratified seeded
    subsets (None: the whole split); `model_options` are the zoo's architecture options
    (width, hidden, ...); `data_options` the dataset's (image size, num_words, maxlen).
    """

    framework: str
    model: str
    dataset: str
    epochs: int
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.001
    seed: int = 0
    n_train: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        """Content hash of the configuration: the cache key of the trained model."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    artifact: Artifact
    seconds: float
    history: list[dict[str, float]]


# Presets. `paper` follows STUDY.md (50 epochs, 10 runs, the study's optimisers and full data);
# `quick` and `smoke` shrink data and epochs and raise learning rates so that a few epochs learn.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 2, "runs": 1, "n_train": 512, "n_test": 256,
              "lr": {"sgd": 0.05, "adam": 0.003},
              "model_options": {"resnet18": {"width": 0.125}, "vgg16": {"width": 0.125},
                                "lstm": {"hidden": 32, "embed": 16},
                                "gru": {"hidden": 32, "embed": 16}},
              "data_options": {"imdb": {"maxlen": 100}}},
    "quick": {"epochs": 5, "runs": 1, "n_train": 5000, "n_test": 1000,
              "lr": {"sgd": 0.02, "adam": 0.002},
              "model_options": {"resnet18": {"width": 0.25}, "vgg16": {"width": 0.25},
                                "lstm": {"hidden": 64}, "gru": {"hidden": 64}},
              "data_options": {"imdb": {"maxlen": 200}}},
    "paper": {"epochs": 50, "runs": 10, "n_train": None, "n_test": None, "lr": None,
              "model_options": {}, "data_options": {}},
}

#: The study's optimisers: SGD lr 0.001 momentum 0.9 (LeNet-5 lr 0.1); Adam lr 0.001 for RNNs.
STUDY_OPTIMIZER = {"lenet5": ("sgd", 0.1), "resnet18": ("sgd", 0.001), "vgg16": ("sgd", 0.001),
                   "lstm": ("adam", 0.001), "gru": ("adam", 0.001)}


def preset_config(preset: str, framework: str, model: str, dataset: str, seed: int = 0,
                  **overrides: Any) -> TrainConfig:
    """The TrainConfig a preset gives for one model; keyword overrides win."""
    if preset not in PRESETS:
        from convbench.registry import suggest

        raise ValueError(f"unknown preset {preset!r}.{suggest(preset, list(PRESETS))} "
                         f"Known: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    opt, lr = STUDY_OPTIMIZER.get(model, ("sgd", 0.01))
    if p["lr"]:
        lr = p["lr"][opt]
    cfg = dict(framework=framework, model=model, dataset=dataset, epochs=p["epochs"],
               optimizer=opt, lr=lr, seed=seed, n_train=p["n_train"],
               model_options=p["model_options"].get(model, {}),
               data_options=p["data_options"].get(dataset, {}))
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**cfg)
