"""`convbench assess`: convert a user's own model and measure what changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from convbench.cli.present import table
from convbench.records import Artifact, CellKey


def _input_shape(args) -> tuple[tuple[int, ...] | None, str]:
    """One sample's shape in the model's layout, and that layout."""
    if args.framework == "keras":
        from convbench.models.load import keras_config, keras_input_shape, load_keras

        # from its config: no TensorFlow needed, a Lambda layer refused as loading would
        declared = keras_input_shape(keras_config(args.model, args.trust_model))
        if declared is not None:
            return declared, "nhwc"
        model = load_keras(args.model, trust=args.trust_model)
        return tuple(int(d) for d in model.inputs[0].shape[1:]), "nhwc"
    if args.input_shape:
        try:
            return tuple(int(v) for v in args.input_shape.split(",")), "nchw"
        except ValueError:
            raise ValueError(f"--input-shape {args.input_shape!r}: give integers such as "
                             f"1,28,28") from None
    return None, "nchw"


def _data_options(args, shape, layout, memory: int | None) -> dict:
    """The dataset options that give the model's declared input; refused before any data is
    resized when the inputs would not fit the memory cap."""
    from convbench.data import get_dataset
    from convbench.limits import check_fits

    ds = get_dataset(args.dataset, args.data_dir)
    if ds.kind == "image" and shape is not None:
        c, h, w = (shape[2], shape[0], shape[1]) if layout == "nhwc" else shape
        if args.dataset == "digits":
            count = len(ds.arrays("test")[1])  # the whole split is resized, then subset
            check_fits(shape, count, 4, memory, f"the {count} test digits resized to it")
            return {"size": h, "channels": c}
        if tuple(ds.input_shape) != (c, h, w):
            raise ValueError(f"the model takes {c}x{h}x{w} images, {args.dataset} has "
                             f"{'x'.join(map(str, ds.input_shape))}; pick a dataset of that shape")
    elif ds.kind == "text" and shape is not None:
        check_fits(shape, args.n or 25_000, 8, memory, f"{args.dataset} padded to it")
        return {"maxlen": shape[0]}
    return {}


def _convert_options(args, fmt: str) -> dict:
    """Converter options for one target format from the command line."""
    common = {"factory": args.factory} if args.framework == "torch" else \
        {"trust_model": args.trust_model}
    if fmt == "onnx":
        extra = {"opset": args.opset}
        if args.framework == "torch":
            extra["exporter"] = args.exporter
    else:
        extra = {"minimum_deployment_target": args.coreml_target}
        if args.framework == "torch":
            extra["source"] = args.coreml_source
    return {**common, **{k: v for k, v in extra.items() if v is not None}}


def assess(args) -> int:
    from convbench.attacks import make_attack
    from convbench.cli.study_cmds import coreml_options
    from convbench.convert import resolve_target
    from convbench.data import get_dataset
    from convbench.files import check_model_path
    from convbench.files import size_text
    from convbench.limits import ASSESS_SECONDS, Limits, TimeLimitReached, memory_cap, time_limit
    from convbench.models import to_layout
    from convbench.runtimes import default_runtime
    from convbench.store import Store
    from convbench.study.cell import MeasureOptions, UserCell
    from convbench.study.display import output_to
    from convbench.study.executor import log_path, run_study

    from convbench.gate import parse

    gate = parse(args.fail_if) if args.fail_if else None  # a typo fails before any work
    path = Path(args.model)
    if not path.exists():
        raise ValueError(f"--model {path}: no such file")
    limits = Limits.from_options(args.memory_limit, args.time_limit, ASSESS_SECONDS)
    try:  # what this process reads of the model and the data, under the same limits
        with memory_cap(limits.memory_bytes), time_limit(limits.seconds):
            check_model_path(path, args.framework, args.trust_model)
            with output_to(log_path(CellKey(args.framework, path.name, "-", "-", "-"))):
                shape, layout = _input_shape(args)  # if it loads the model, to a log
            data_options = _data_options(args, shape, layout, limits.memory_bytes)
            ds = get_dataset(args.dataset, args.data_dir, **data_options)
            x, _, _ = ds.arrays("test", args.n)
    except TimeLimitReached:
        raise ValueError(f"{path}: reading the model's input and the data took past the time "
                         f"limit of {limits.seconds:g} s; raise --time-limit if the model is "
                         f"genuine") from None
    except MemoryError:
        raise ValueError(f"{path}: reading the model's input and the data ran out of memory "
                         f"under the cap of {size_text(limits.memory_bytes or 0)}; raise "
                         f"--memory-limit if the model is genuine") from None
    xs = to_layout(x[:1], "keras" if layout == "nhwc" else "torch")
    meta = {"layout": layout, "input_shape": list(xs.shape[1:]), "input_dtype": str(xs.dtype),
            "holds": "user model file", "factory": args.factory}
    original = Artifact.from_path(args.framework, path, **meta)
    measures = MeasureOptions(latency_batch_sizes=[int(b) for b in args.batch_sizes.split(",")],
                              memory=not args.no_memory, latency_wait=None)
    runtime_options = {"coreml": coreml_options(args)}
    if args.trust_model:
        runtime_options["keras"] = {"trust_model": True}
    attacks = [{"name": a, **make_attack(a).params} for a in args.attack.split(",") if a]
    cells = []
    for fmt in (f.strip() for f in args.to.split(",") if f.strip()):
        options = _convert_options(args, resolve_target(fmt)[0])
        digest = hashlib.sha256(json.dumps(
            [original.sha256, fmt, options, args.n, args.dataset, runtime_options, attacks,
             args.attack_n] + ([args.threads] if args.threads else []),
            sort_keys=True).encode()).hexdigest()[:16]
        key = CellKey(args.framework, path.name, args.dataset, fmt,
                      default_runtime(resolve_target(fmt)[0]), 0, digest)
        cells.append(UserCell(key, original, args.dataset, data_options, args.n, options,
                              measures, args.threads, args.data_dir, runtime_options, attacks,
                              args.attack_n))
    with Store(args.store) as store:  # each target in a process of its own, under the limits
        run_study(cells, store, "assess", force=True, executor="local", workers=1,
                  limits=limits, cell_threads=args.threads)
        stored = list(store.cells({c.key.id for c in cells}))
    print(table(stored))
    if not all(c.status.value == "ok" for c in stored):
        return 1
    return _gate(gate, stored) if gate else 0


#: `assess`'s exit status when a cell meets its `--fail-if` condition (1: a cell failed to
#: convert or run; 2: bad input).
GATE_FAILED = 3


def _gate(gate, cells) -> int:
    """Check every cell against the `--fail-if` condition; say which comparisons held."""
    import sys

    from convbench.gate import metric_values

    code = 0
    for c in cells:
        values = metric_values(c.metrics)
        if gate.holds(values):
            print(f"convbench: --fail-if met by {c.name}: {'; '.join(gate.because(values))}",
                  file=sys.stderr)
            code = GATE_FAILED
    if not code:
        print(f"--fail-if {gate.text!r}: no cell meets it", file=sys.stderr)
    return code
