"""Training zoo models in either framework, seeded, with the study's optimisers.

`train(TrainConfig, dataset, out_dir) -> TrainResult` saves the original model in its native
format and returns its `Artifact` (with what the file holds) and the training history.
"""

from convbench.training.config import PRESETS, TrainConfig, TrainResult, preset_config
from convbench.training.run import train

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "preset_config", "train"]
