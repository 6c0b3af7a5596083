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
        from convbench.models.load import load_keras

        model = load_keras(args.model, trust=args.trust_model)
        return tuple(int(d) for d in model.inputs[0].shape[1:]), "nhwc"
    if args.input_shape:
        try:
            return tuple(int(v) for v in args.input_shape.split(",")), "nchw"
        except ValueError:
            raise ValueError(f"--input-shape {args.input_shape!r}: give integers such as "
                             f"1,28,28") from None
    return None, "nchw"


def _dataset(args, shape, layout):
    from convbench.data import get_dataset

    ds = get_dataset(args.dataset, args.data_dir)
    if ds.kind == "image" and shape is not None:
        c, h, w = (shape[2], shape[0], shape[1]) if layout == "nhwc" else shape
        if args.dataset == "digits":
            ds = get_dataset("digits", args.data_dir, size=h, channels=c)
        elif tuple(ds.input_shape) != (c, h, w):
            raise ValueError(f"the model takes {c}x{h}x{w} images, {args.dataset} has "
                             f"{'x'.join(map(str, ds.input_shape))}; pick a dataset of that shape")
    elif ds.kind == "text" and shape is not None:
        ds = get_dataset(args.dataset, args.data_dir, maxlen=shape[0])
    return ds


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
    from convbench.attacks.protocol import attack_cell
    from convbench.cli.study_cmds import coreml_options
    from convbench.convert import resolve_target
    from convbench.models import to_layout
    from convbench.progress import listening
    from convbench.runtimes import default_runtime
    from convbench.store import Store
    from convbench.study.cell import MeasureOptions, convert_and_compare, guarded
    from convbench.study.display import StudyDisplay, console_stream, output_to
    from convbench.study.executor import log_path

    path = Path(args.model)
    if not path.exists():
        raise ValueError(f"--model {path}: no such file")
    with output_to(log_path(CellKey(args.framework, path.name, "-", "-", "-"))):
        shape, layout = _input_shape(args)  # loading it, the framework talks: to a log
    ds = _dataset(args, shape, layout)
    x, y, _ = ds.arrays("test", args.n)
    xs = to_layout(x, "keras" if layout == "nhwc" else "torch")
    meta = {"layout": layout, "input_shape": list(xs.shape[1:]), "input_dtype": str(xs.dtype),
            "holds": "user model file", "factory": args.factory}
    original = Artifact.from_path(args.framework, path, **meta)
    measures = MeasureOptions(latency_batch_sizes=[int(b) for b in args.batch_sizes.split(",")],
                              memory=not args.no_memory, latency_wait=None)
    runtime_options = {"coreml": coreml_options(args)}
    if args.trust_model:
        runtime_options["keras"] = {"trust_model": True}
    attacks = [{"name": a, **make_attack(a).params} for a in args.attack.split(",") if a]
    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    cells = []
    display = StudyDisplay(len(formats), "assess", console_stream())
    with Store(args.store) as store:
        for fmt in formats:
            options = _convert_options(args, resolve_target(fmt)[0])
            digest = hashlib.sha256(json.dumps(
                [original.sha256, fmt, options, args.n, args.dataset, runtime_options, attacks,
                 args.attack_n] + ([args.threads] if args.threads else []),
                sort_keys=True).encode()).hexdigest()[:16]
            key = CellKey(args.framework, path.name, args.dataset, fmt,
                          default_runtime(resolve_target(fmt)[0]), 0, digest)
            log = log_path(key)

            def body(r, options=options, log=log):
                convert_and_compare(r, original, x, y, options, measures, args.threads,
                                    runtime_options=runtime_options, log=log)
                if attacks:
                    attack_cell(r, original, r.artifacts["converted"], x, y, attacks,
                                args.attack_n, 0, ds.num_classes,
                                getattr(ds, "vocabulary", lambda: None)(), args.threads,
                                runtime_options=runtime_options)

            store.begin(key.id)
            display.start(key)
            with output_to(log), listening(lambda text, k=key: display.step(k, text)):
                result = guarded(key, body)
            result.info["log"] = log
            store.put(result, "assess")
            display.finish(result)
            cells += store.cells({key.id})
    display.close()
    print(table(cells))
    return 0 if all(c.status.value == "ok" for c in cells) else 1
