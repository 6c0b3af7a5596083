"""Zoo models trained briefly on digits in both frameworks and converted for real: the files
`convbench explain` is tested on (faults are injected into copies of them)."""

from __future__ import annotations

import pytest
from explaincheck import TARGETS, Pair


@pytest.fixture(scope="session")
def zoo_pairs(tmp_path_factory, trained) -> list[Pair]:
    """LeNet-5 (the suite's trained one) and ResNet-18 at a quarter width, each framework,
    converted to ONNX and Core ML (ML Program FP32 and FP16, NeuralNetwork)."""
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
            for t in TARGETS:
                c = convert(original, t, out)
                assert c.ok, f"{fw} {model} -> {t}: {c.message}"
                converted[t] = c.artifact
            pairs.append(Pair(fw, model, original, converted, x))
    return pairs
