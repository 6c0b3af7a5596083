import json
import zipfile

import numpy as np

from convbench.models.load import load_keras, load_torch
from convbench.training import preset_config


def test_training_learns_and_records_what_the_file_holds(trained, digits_test):
    x, y = digits_test
    t, k = trained["torch"], trained["keras"]
    assert t.history[-1]["accuracy"] > 0.8 and k.history[-1]["accuracy"] > 0.6
    assert t.history[-1]["loss"] < t.history[0]["loss"]
    assert t.artifact.meta["optimizer_state"] is False
    arch = json.loads(open(t.artifact.path + ".arch.json").read())
    assert arch["model"] == "lenet5" and arch["input_shape"] == [1, 28, 28]
    # the .keras file holds architecture and weights, no optimizer variables
    names = zipfile.ZipFile(k.artifact.path).namelist()
    assert "config.json" in names and "model.weights.h5" in names
    import h5py

    with h5py.File(zipfile.ZipFile(k.artifact.path).open("model.weights.h5")) as h:
        assert "optimizer" not in h
    model = load_torch(t.artifact.path)
    import torch

    with torch.no_grad():
        acc = (model(torch.from_numpy(x)).numpy().argmax(1) == y).mean()
    assert acc > 0.8
    km = load_keras(k.artifact.path)
    assert (np.asarray(km(x.transpose(0, 2, 3, 1))).argmax(1) == y).mean() > 0.6


def test_training_is_seeded(tmp_path):
    from convbench.training import train

    cfg = preset_config("smoke", "torch", "lenet5", "digits", epochs=1, n_train=200)
    a, b = train(cfg, tmp_path / "a"), train(cfg, tmp_path / "b")
    assert a.artifact.sha256 == b.artifact.sha256


def test_presets_follow_the_study():
    paper = preset_config("paper", "keras", "lenet5", "mnist")
    assert (paper.epochs, paper.optimizer, paper.lr, paper.n_train) == (50, "sgd", 0.1, None)
    rnn = preset_config("paper", "torch", "lstm", "imdb")
    assert (rnn.optimizer, rnn.lr, rnn.batch_size) == ("adam", 0.001, 128)
    assert preset_config("smoke", "torch", "vgg16", "cifar10").model_options == {"width": 0.125}
