"""The training loops (PyTorch and Keras) and how the trained original is saved."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from convbench.data import Dataset, get_dataset
from convbench.models import ZOO, build, to_layout
from convbench.records import Artifact, write_atomic
from convbench.training.config import TrainConfig, TrainResult


def dataset_for(model: str, dataset: str, data_dir=None, **options) -> Dataset:
    """The dataset shaped for a zoo model: digits become 32x32 RGB for the CIFAR-form models."""
    if dataset == "digits" and ZOO.get(model).kind == "image" and model != "lenet5":
        options = {"size": 32, "channels": 3, **options}
    return get_dataset(dataset, data_dir, **options)


def architecture(cfg: TrainConfig, ds: Dataset) -> dict:
    """What it takes to rebuild the model: the side record of a PyTorch state_dict."""
    return {"model": cfg.model, "input_shape": list(ds.input_shape),
            "num_classes": ds.num_classes, "vocab": getattr(ds, "num_words", None),
            "options": ZOO.get(cfg.model).options(**cfg.model_options)}


def train(cfg: TrainConfig, out_dir: str | Path, data_dir=None) -> TrainResult:
    """Train one model and save it in its framework's native format under `out_dir`."""
    ds = dataset_for(cfg.model, cfg.dataset, data_dir, **cfg.data_options)
    x, y, _ = ds.arrays("train", cfg.n_train, cfg.seed)
    arch = architecture(cfg, ds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fit = _train_torch if cfg.framework == "torch" else _train_keras
    artifact, history = fit(cfg, arch, to_layout(x, cfg.framework), y, out)
    return TrainResult(artifact, time.perf_counter() - t0, history)


def _io(x: np.ndarray) -> dict:
    """Artifact meta of the model's input: one sample's shape and the dtype."""
    return {"input_shape": list(x.shape[1:]), "input_dtype": str(x.dtype)}


def _progress(epoch: int, cfg: TrainConfig, steps: int):
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"{cfg.framework} {cfg.model} epoch {epoch + 1}/{cfg.epochs}",
                leave=False, file=sys.stderr, disable=None)


def _train_torch(cfg, arch, x, y, out):
    import torch

    torch.manual_seed(cfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build("torch", cfg.model, arch["input_shape"], arch["num_classes"],
                  vocab=arch["vocab"], **cfg.model_options).to(device)
    opt = (torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9) if cfg.optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=cfg.lr))
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(yt), generator=gen)
        steps = (len(yt) + cfg.batch_size - 1) // cfg.batch_size
        total, correct, seen = 0.0, 0, 0
        with _progress(epoch, cfg, steps) as bar:
            for i in range(steps):
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                xb, yb = xt[idx].to(device), yt[idx].to(device)
                logits = model.body(xb)
                loss = loss_fn(logits, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(yb)
                correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
                bar.update()
        history.append({"epoch": epoch + 1, "loss": total / seen, "accuracy": correct / seen})
    path = out / f"{cfg.model}-torch-{cfg.digest()}.pt"
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, path)
    write_atomic(str(path) + ".arch.json", json.dumps(arch, indent=1))
    return Artifact.from_path("torch", path, architecture=arch, layout="nchw", **_io(x),
                              holds="state_dict: weights and batch-norm statistics; no optimizer "
                                    "state; architecture in the side record .arch.json",
                              optimizer_state=False), history


def _train_keras(cfg, arch, x, y, out):
    import keras

    keras.utils.set_random_seed(cfg.seed)
    model = build("keras", cfg.model, arch["input_shape"], arch["num_classes"],
                  vocab=arch["vocab"], **cfg.model_options)
    opt = (keras.optimizers.SGD(cfg.lr, momentum=0.9) if cfg.optimizer == "sgd"
           else keras.optimizers.Adam(cfg.lr))
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    steps = (len(y) + cfg.batch_size - 1) // cfg.batch_size
    history = []
    for epoch in range(cfg.epochs):
        with _progress(epoch, cfg, steps) as bar:
            h = model.fit(x, y, batch_size=cfg.batch_size, epochs=1, verbose=0, shuffle=True,
                          callbacks=[keras.callbacks.LambdaCallback(
                              on_train_batch_end=lambda *a, **k: bar.update())])
        history.append({"epoch": epoch + 1, "loss": float(h.history["loss"][-1]),
                        "accuracy": float(h.history["accuracy"][-1])})
    # Save weights and architecture without optimizer state, so that sizes compare like for like.
    bare = build("keras", cfg.model, arch["input_shape"], arch["num_classes"],
                 vocab=arch["vocab"], **cfg.model_options)
    bare.set_weights(model.get_weights())
    path = out / f"{cfg.model}-keras-{cfg.digest()}.keras"
    bare.save(path)
    return Artifact.from_path("keras", path, architecture=arch, layout="nhwc", **_io(x),
                              holds=".keras zip: architecture (config.json) and weights; "
                                    "no optimizer state", optimizer_state=False), history
