"""One cell: obtain the original, convert it, run both on the same inputs, measure."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convbench.convert import Conversion, convert
from convbench.convert.base import Calibration, CalibrationSource
from convbench.data import DataError
from convbench.data.base import cache_dir
from convbench.measures import CostOptions, agreement, measure_cost
from convbench.measures.cost import Model
from convbench.measures.latency import LatencyOptions
from convbench.measures.machine import compute_phase
from convbench.models import to_layout
from convbench.records import (Artifact, Category, CellKey, CellResult, Metric, Metrics, Outcome,
                               Status, write_atomic)
from convbench.mil.errors import UnsupportedOpError
from convbench.progress import step
from convbench.runtimes import RuntimeUnavailable, default_runtime, open_runner
from convbench.training import TrainConfig, train
from convbench.training.run import dataset_for


@dataclass(frozen=True)
class MeasureOptions:
    """What a cell measures beyond its outputs (see `LatencyOptions` for the latency ones)."""

    latency_batch_sizes: list[int] = field(default_factory=lambda: [1, 32, 128])
    latency_warmup: int = 3
    latency_repeats: int = 20
    memory: bool = True
    latency_target_ci: float = 0.05
    latency_time_cap: float = 4.0
    # seconds timing waits for other cells' computing before it is put off to the study's
    # end (None: it waits, as a single assessment does, which has no end to put it off to)
    latency_wait: float | None = 10.0
    # explain the conversion op by op: False, True (always) or "on_flip"; samples traced
    explain: bool | str = False
    explain_samples: int = 8

    def cost(self) -> CostOptions:
        return CostOptions(LatencyOptions(
            tuple(self.latency_batch_sizes), self.latency_warmup, self.latency_repeats,
            target_ci=self.latency_target_ci, time_cap=self.latency_time_cap), self.memory,
            self.latency_wait)

    def digest(self) -> dict[str, Any]:
        """The options that enter a cell's hash: those of the first store schema always, newer
        ones only when set, so that cells stored by earlier versions are still found."""
        out, default = asdict(self), MeasureOptions()
        return {k: v for k, v in out.items() if k not in _NOT_HASHED and
                (k in _FIRST_MEASURES or v != getattr(default, k))}


_FIRST_MEASURES = ("latency_batch_sizes", "latency_warmup", "latency_repeats", "memory")
# explaining adds to a cell without changing its numbers: turned on later, the stored cells
# are explained as they are (`study.explain_later`), not run again
_NOT_HASHED = ("explain", "explain_samples")


@dataclass(frozen=True)
class Cell:
    key: CellKey
    train: TrainConfig
    n_test: int | None
    convert_options: dict[str, Any]
    measures: MeasureOptions
    threads: int | None = None
    data_dir: str | None = None
    runtime_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    attacks: list[dict[str, Any]] = field(default_factory=list)
    attack_n: int | None = 1000

    def run(self, log: str | None = None) -> CellResult:
        return run_cell(self, log)

    @property
    def builtin_dataset(self) -> str | None:
        """The built-in dataset the cell needs (checked present before a study runs)."""
        return self.train.dataset

    def inputs(self):
        """The test inputs the cell compares on (canonical layout)."""
        ds = dataset_for(self.train.model, self.train.dataset, self.data_dir,
                         **self.train.data_options)
        return ds.arrays("test", self.n_test, self.train.seed)[0]

    def untrained(self) -> str | None:
        """The digest of the original this cell still has to train (None once it is stored):
        cells sharing it wait for one another's training."""
        return None if _record(self.train).exists() else self.train.digest()

    def files(self) -> list[str]:
        """The model files known outside the cell: its original, once trained."""
        try:
            return [json.loads(_record(self.train).read_text())["artifact"]["path"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []


class CellFailure(Exception):
    """Ends a cell early with a category; the cell is stored as failed, the study goes on."""

    status = Status.FAILED

    def __init__(self, category: Category, message: str) -> None:
        super().__init__(message)
        self.category = category


class CellSkipped(CellFailure):
    """The cell cannot run on this machine (say, Core ML's native runtime on Linux)."""

    status = Status.SKIPPED


def original_for(cfg: TrainConfig, data_dir=None) -> tuple[Artifact, dict]:
    """The trained original for `cfg`, trained once and then reused (keyed by config hash).

    A lock file makes cells that need the same original in parallel processes wait for one
    training instead of writing the same file at once.
    """
    import fcntl

    record = _record(cfg)
    out = record.parent
    out.mkdir(parents=True, exist_ok=True)
    with open(record.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.exists():
            saved = json.loads(record.read_text())
            art = Artifact(**saved["artifact"])
            if Path(art.path).exists():
                return art, {**saved["train"], "cached": True}
        result = train(cfg, out, data_dir)
        info = {"seconds": result.seconds, "history": result.history, "config": asdict(cfg)}
        write_atomic(record, json.dumps({"artifact": asdict(result.artifact), "train": info}))
        return result.artifact, info


def _record(cfg: TrainConfig) -> Path:
    """Where the trained original for `cfg` is recorded."""
    return cache_dir() / "models" / f"{cfg.model}-{cfg.framework}-{cfg.digest()}.json"


def compare(original: Artifact, conversion: Conversion, x: np.ndarray, y: np.ndarray,
            measures: MeasureOptions, threads: int | None = None,
            converted_runtime: str | None = None,
            runtime_options: dict[str, dict[str, Any]] | None = None,
            log: str | None = None) -> tuple[Metrics, list[Outcome], dict[str, Any]]:
    """Run original and converted on the same `x` (NCHW/text); return (metrics, outcomes of
    the cost measures, info).

    `runtime_options` maps a runtime name to its runner options (engine, providers, ...).
    Raises `CellSkipped` when the converted model's runtime cannot run here, `CellFailure`
    when the converted model cannot be loaded or run, or its outputs do not have the
    original's shape. A cost measure that fails is an outcome; the other numbers stay.
    """
    runtime_options = runtime_options or {}
    # (a user's data, read on demand, was checked as it was prepared)
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())
        raise CellFailure(Category.DATA_ERROR, f"{bad} input(s) hold NaN or Inf values; "
                                               f"check the dataset files")
    converted = conversion.artifact
    metrics = Metrics([Metric("convert_time", conversion.seconds, "s"),
                       Metric("size", original.size_bytes, "bytes", role="original"),
                       Metric("size", converted.size_bytes, "bytes", role="converted")])
    info: dict[str, Any] = {"holds": {"original": original.meta.get("holds"),
                                      "converted": converted.meta.get("holds")}}
    models: dict[str, Model] = {}
    outputs = {}
    step("running both models")
    for role, art, runtime in (("original", original, None),
                               ("converted", converted, converted_runtime)):
        name = runner_name(art, runtime)
        options = runtime_options.get(name, {})
        xs = to_layout(x, "keras" if art.meta.get("layout") == "nhwc" else "torch")
        try:
            with compute_phase(), open_runner(art, name, threads=threads, **options) as runner:
                outputs[role] = runner.infer_all(xs)
                info[f"runner_{role}"] = runner.describe()
        except RuntimeUnavailable as e:
            raise CellSkipped(Category.UNAVAILABLE, str(e)) from e
        except Exception as e:
            if role == "original":
                raise
            category = (Category.UNSUPPORTED_OPERATOR if isinstance(e, UnsupportedOpError)
                        else Category.RUNTIME_ERROR)
            raise CellFailure(category, f"converted model fails in {name}: "
                                        f"{type(e).__name__}: {e}") from e
        models[role] = Model(art, name, xs, options)
    if outputs["original"].shape != outputs["converted"].shape:
        raise CellFailure(Category.RUNTIME_MISMATCH,
                          f"output shapes differ: original {outputs['original'].shape}, "
                          f"converted {outputs['converted'].shape}")
    metrics.extend(agreement(outputs["original"], outputs["converted"], y,
                             converted.meta.get("precision", "fp32")))
    explained = explain_cell(original, converted, x, outputs, metrics, measures, threads,
                             converted_runtime, runtime_options, info) \
        if measures.explain else []
    step("timing")
    cost, outcomes, info["cost"] = measure_cost(models, measures.cost(), threads, log)
    metrics.extend(cost)
    return metrics, outcomes + explained, info


def explain_cell(original: Artifact, converted: Artifact, x, outputs: dict, metrics: Metrics,
                 measures, threads, runtime: str | None, runtime_options: dict,
                 info: dict[str, Any]) -> list[Outcome]:
    """The cell's explanation (`explain: true`, or `on_flip` when a label flips or the
    outputs' mean relative error exceeds 1e-4) into `info["explanation"]`; its outcome. A
    failure to explain is an outcome: the cell keeps its numbers."""
    from convbench.explain import explain_models, wanted
    from convbench.explain.render import verdict_text

    if not wanted(measures.explain, int(metrics.get("label_flips") or 0),
                  metrics.get("rel_err", stat="mean", default=float("inf"))):
        return [Outcome("measure", "explain", Status.SKIPPED,
                        "no label flips and outputs within 1e-4 (explain: on_flip)")]
    step("explaining")
    try:
        with compute_phase():
            ex = explain_models(original, converted, x, samples=measures.explain_samples,
                                outputs=(outputs["original"], outputs["converted"]),
                                runtime=runtime, runtime_options=runtime_options,
                                threads=threads)
    except Exception as e:
        return [Outcome("measure", "explain", Status.FAILED, f"{type(e).__name__}: {e}"[:500])]
    info["explanation"] = ex.to_dict()
    return [Outcome("measure", "explain", Status.OK, verdict_text(ex).splitlines()[0])]



def runner_name(art: Artifact, runtime: str | None) -> str:
    return runtime or default_runtime(art.format)


def convert_and_compare(result: CellResult, original: Artifact, x: np.ndarray, y: np.ndarray,
                        convert_options: dict[str, Any], measures: MeasureOptions,
                        threads: int | None = None,
                        runtime_options: dict[str, dict[str, Any]] | None = None,
                        log: str | None = None,
                        calibration: CalibrationSource | None = None) -> None:
    """Convert `original` to the cell's format and fill `result` with what changed;
    `calibration` gives a quantising target its sample inputs.

    Raises `CellFailure` for a failed conversion or a converted model that does not run.
    """
    result.artifacts["original"] = original
    step("converting")
    with compute_phase():
        conv = convert(original, result.key.format, cache_dir() / "converted",
                       calibration=calibration, **convert_options)
    result.info["conversion"] = {k: v for k, v in asdict(conv).items() if k != "artifact"}
    if conv.category is Category.UNAVAILABLE:
        raise CellSkipped(conv.category, conv.message)
    if not conv.ok:
        raise CellFailure(conv.category, conv.message)
    result.artifacts["converted"] = conv.artifact
    metrics, outcomes, info = compare(original, conv, x, y, measures, threads,
                                      result.key.runtime, runtime_options, log)
    result.metrics.extend(metrics)
    result.outcomes += outcomes
    result.info.update(info)


def guarded(key: CellKey, body: Callable[[CellResult], None]) -> CellResult:
    """Run `body` on a fresh result; failures become a failed result with a category."""
    from convbench.limits import TimeLimitReached, time_message
    from convbench.models.load import ModelLoadError, forget_loaded
    from convbench.progress import current, reset, spent

    result = CellResult(key, started=time.time())
    forget_loaded()
    reset()
    try:
        body(result)
    except CellFailure as f:
        result.status, result.category, result.message = f.status, f.category, str(f)
    except TimeLimitReached as e:
        result.status, result.category = Status.FAILED, Category.TIMEOUT
        result.message = time_message(e.seconds, current(), model_files(result))
    except ModelLoadError as e:  # the original cannot be (safely) loaded
        result.status, result.category, result.message = (Status.FAILED,
                                                          Category.MODEL_LOAD_ERROR, str(e))
    except Exception as e:  # a bug or an unforeseen failure: recorded, the study goes on
        result.status, result.category = Status.FAILED, Category.INTERNAL_ERROR
        result.message = f"{type(e).__name__}: {e}"
    finally:
        forget_loaded()
    result.finished = time.time()
    result.info["step_seconds"] = spent()  # where the cell's time went, step by step
    return result


def model_files(result: CellResult) -> list[str]:
    """The model files a cell had reached, for messages that say which file."""
    return [a.path for a in result.artifacts.values() if a is not None]


def contained(result: CellResult, memory_limit: int | None) -> CellResult:
    """A failure that running out of memory caused, said as such: category `out_of_memory`,
    the step the cell was in, its model files and the cap."""
    from convbench.limits import memory_message, out_of_memory
    from convbench.progress import current

    # under a cap, a C function that fails without setting an exception failed to allocate;
    # CPython words it "returned NULL without setting an exception" or "error return without
    # exception set", depending on where the failure surfaced
    text = result.message.lower()
    null = memory_limit is not None and any(
        s in text for s in ("without setting an exception", "without exception set"))
    if (result.status is Status.FAILED and result.category is not Category.TIMEOUT
            and (out_of_memory(result.message) or null)):
        result.category = Category.OUT_OF_MEMORY
        result.message = memory_message(memory_limit, current(), model_files(result),
                                         result.message)
    return result


def run_cell(cell: Cell, log: str | None = None) -> CellResult:
    """Run one study cell (train or reuse the original, convert, compare, attack) to a
    `CellResult`; the runtimes' own processes write their output to `log`."""

    def body(result: CellResult) -> None:
        try:
            with compute_phase():
                step("training")
                original, train_info = original_for(cell.train, cell.data_dir)
                ds = dataset_for(cell.train.model, cell.train.dataset, cell.data_dir,
                                 **cell.train.data_options)
                x, y, _ = ds.arrays("test", cell.n_test, cell.train.seed)
        except DataError as e:
            raise CellFailure(Category.DATA_ERROR, str(e)) from e
        except Exception as e:
            raise CellFailure(Category.TRAINING_ERROR, f"{type(e).__name__}: {e}") from e
        result.info["train"] = train_info
        if "seconds" in train_info:
            result.metrics.add("train_time", train_info["seconds"], "s", role="original")
        seed = cell.train.seed

        def calibration(n: int) -> Calibration:  # quantising targets: training inputs
            x = ds.arrays("train", n, seed)[0].copy()
            ds.forget("train")  # not held through the cell (CIFAR-10's is 600 MB as float)
            return Calibration(x, "train", seed)

        convert_and_compare(result, original, x, y, cell.convert_options, cell.measures,
                            cell.threads, cell.runtime_options, log, calibration)
        if cell.attacks:
            from convbench.attacks.protocol import attack_cell

            with compute_phase():
                attack_cell(result, original, result.artifacts["converted"], x, y,
                            cell.attacks, cell.attack_n, cell.train.seed, ds.num_classes,
                            getattr(ds, "vocabulary", lambda: None)(), cell.threads,
                            cell.runtime_options)

    return guarded(cell.key, body)
