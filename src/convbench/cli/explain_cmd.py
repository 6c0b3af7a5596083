"""`convbench explain`: where and why a converted model departs from its original, op by op;
for a stored cell (`--cell`) or any pair of files (`--original` and `--converted`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from convbench.records import Artifact, Outcome, Status

#: Rows run through both models to find the flipped and worst ones (when --n is not given).
DEFAULT_ROWS = 1000
#: The converted files `explain` reads, by suffix.
SUFFIXES = {".onnx": "onnx", ".mlpackage": "coreml", ".mlmodel": "coreml",
            ".tflite": "litert"}


def explain(args) -> int:
    from convbench.explain import SAMPLES, ExplainError, explain_models
    from convbench.explain.render import table

    if bool(args.cell) == bool(args.original or args.converted):
        raise ValueError("give --cell ID (a stored cell, see `convbench results`) or "
                         "--original MODEL and --converted FILE")
    if args.cell and _show_stored(args):
        return 0
    runtime, options = None, {}
    if args.cell:
        cell, original, converted, x = _stored(args)
        runtime, options = _runner_of(cell)
    else:
        if not (args.original and args.converted):
            raise ValueError("give both --original MODEL and --converted FILE")
        cell = None
        original, x = _user_original(args)
        converted = _converted_artifact(args.converted, original)
    try:
        samples = SAMPLES if args.samples is None else args.samples
        ex = explain_models(original, converted, x, samples=samples, threads=args.threads,
                            runtime=runtime,
                            runtime_options={runtime: options} if runtime else None)
    except ExplainError as e:
        raise ValueError(str(e)) from None
    if args.repair:
        from convbench.explain.repair import repair_weights

        ex.repair = repair_weights(ex, original, converted, x, args.repair_out)
    if args.plot:
        from convbench.report.plots import depth

        Path(args.plot).write_bytes(depth(ex.depth_profile(), ex.verdict.first_divergent,
                                          Path(converted.path).name))
    if cell is not None:
        _store(args.store, cell, ex)
    if args.format == "json":
        print(json.dumps(ex.to_dict(), indent=1, allow_nan=False))
    else:
        print(table(ex, all_ops=args.all_ops))
        if getattr(ex, "repair", None):
            r = ex.repair
            print(f"\nrepaired weights of {len(r['ops'])} op(s) -> {r['path']}: "
                  f"{r['flips_before']} -> {r['flips_after']} label flip(s) on the "
                  f"{r['rows']} row(s) run")
        if args.plot:
            print(f"\nerror through depth: {args.plot}")
    return 0


def _runner_of(cell) -> tuple[str | None, dict]:
    """The runtime and runner options the cell ran its converted model with."""
    desc = cell.info.get("runner_converted", {})
    options = {k: desc[k] for k in ("engine", "arith", "compute_units", "providers")
               if desc.get(k)}
    return desc.get("runtime") or cell.key.runtime, options


def _show_stored(args) -> bool:
    """A cell explained as it ran (`explain:` in its study, `assess --explain`): its stored
    explanation, unless the command asks for something new (data, samples, a plot, a repair)."""
    from convbench.explain import Explanation
    from convbench.explain.render import table
    from convbench.store import Store

    if args.dataset or args.data or args.synthetic or args.repair or args.samples is not None \
            or args.n:
        return False
    with Store(args.store) as store:
        c = _find(store, args.cell)
    if "explanation" not in c.info:
        return False
    ex = Explanation.from_dict(c.info["explanation"])
    if args.plot:
        from convbench.report.plots import depth

        Path(args.plot).write_bytes(depth(ex.depth_profile(), ex.verdict.first_divergent,
                                          c.name))
    print(json.dumps(c.info["explanation"], indent=1) if args.format == "json"
          else f"{c.name} (as stored)\n{table(ex, all_ops=args.all_ops)}")
    return True


def _find(store, ref: str):
    cells = list(store.cells())
    hits = [c for c in cells if c.id == ref or c.name == ref] or \
        [c for c in cells if c.id.startswith(ref)]
    if len(hits) != 1:
        known = "; ".join(f"{c.id[:12]} ({c.name})" for c in (hits or cells)[:12])
        raise ValueError(f"--cell {ref!r}: {'no' if not hits else len(hits)} stored cell(s) "
                         f"match in {store.path}; give a cell's id (or a unique start of it) "
                         f"or its name, e.g. {known or 'none stored: run a study first'}")
    return hits[0]


def _stored(args):
    """A stored cell, its two models and the rows to explain it on."""
    from convbench.store import Store

    with Store(args.store) as store:
        c = _find(store, args.cell)
    if c.status is not Status.OK or "converted" not in c.artifacts:
        raise ValueError(f"cell {c.name} {c.status.value} ({c.category.value}): there is no "
                         f"converted model to explain; {c.message[:200]}")
    original, converted = c.artifacts["original"], c.artifacts["converted"]
    for role, a in (("original", original), ("converted", converted)):
        if not Path(a.path).exists():
            raise ValueError(f"cell {c.name}: its {role} model {a.path} is gone (a cleared "
                             f"cache?); rerun the cell with `convbench run SPEC --force`, or "
                             f"explain the files with --original and --converted")
    if args.dataset or args.data or args.synthetic:
        return c, original, converted, _user_original(args, original.path)[1]
    train = c.info.get("train", {}).get("config")
    if not train:
        raise ValueError(f"cell {c.name} was assessed on data its record does not hold: "
                         f"give the data again with --dataset or --data")
    from convbench.training.run import dataset_for

    ds = dataset_for(train["model"], train["dataset"], args.data_dir,
                     **train.get("data_options", {}))
    x = ds.arrays("test", args.n or DEFAULT_ROWS, train.get("seed", 0))[0]
    return c, original, converted, x


def _user_original(args, path: str | None = None):
    """The original as `convbench assess` reads it, and the rows of --dataset/--data."""
    from convbench.cli.assess_cmd import assess_spec
    from convbench.study.plan import plan
    from convbench.study.spec import parse_spec

    model = path or args.original
    if not Path(model).exists():
        raise ValueError(f"--original {model}: no such file or folder")
    fields = dict(model=model, framework=getattr(args, "framework", None),
                  factory=getattr(args, "factory", None),
                  custom_objects=getattr(args, "custom_objects", None),
                  trust_model=getattr(args, "trust_model", False),
                  input_shape=getattr(args, "input_shape", None), dataset=args.dataset,
                  data=args.data, synthetic=args.synthetic, synthetic_range=None,
                  label_column=None, scale=getattr(args, "scale", None), mean=None, std=None,
                  data_layout=getattr(args, "data_layout", None), to="onnx", n=args.n,
                  batch_sizes="none", no_memory=True, threads=None, attack="", attack_n=1,
                  coreml_engine=None, coreml_arith=None, opset=None, exporter=None,
                  coreml_source=None, ort_optimization=None, coreml_target=None)
    spec = parse_spec(assess_spec(SimpleNamespace(**fields)), "the command line")
    cells = plan(spec, args.data_dir)
    x = cells[0].load_data()[0]
    n = args.n or DEFAULT_ROWS
    x = x[:n] if isinstance(x, np.ndarray) else np.asarray(x[np.arange(min(n, len(x)))])
    return cells[0].original, x


def _declared_input(path: str, fmt: str) -> list[int] | None:
    """One sample's input shape as the converted file declares it (None when not fixed)."""
    if fmt not in ("onnx", "coreml"):
        return None
    try:
        if fmt == "onnx":
            import onnx

            g = onnx.load(path, load_external_data=False).graph
            inits = {t.name for t in g.initializer}
            first = next(i for i in g.input if i.name not in inits)
            dims = [d.dim_value if d.HasField("dim_value") else None
                    for d in first.type.tensor_type.shape.dim]
        else:
            from convbench.mil.program import load_spec

            dims = list(load_spec(path).description.input[0].type.multiArrayType.shape)
    except Exception:
        return None
    return dims[1:] if dims and all(d for d in dims[1:]) else None


def _converted_artifact(path: str, original: Artifact) -> Artifact:
    """A converted file given on the command line, with the layout it takes its input in (the
    original's, unless its declared input is the other layout's)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"--converted {path}: no such file or folder")
    fmt = "openvino" if (p / "model.xml").exists() else SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"--converted {path}: convbench explains ONNX (.onnx), Core ML "
                         f"(.mlpackage, .mlmodel), LiteRT (.tflite) and OpenVINO (a folder "
                         f"with model.xml) files; ExecuTorch programs do not expose their "
                         f"intermediate tensors here")
    layout = original.meta.get("layout", "nchw")
    shape = list(original.meta.get("input_shape") or [])
    declared = _declared_input(str(p), fmt)
    if declared and len(shape) == 3 and declared != shape:
        moved = [shape[2], shape[0], shape[1]] if layout == "nhwc" else \
            [shape[1], shape[2], shape[0]]
        if declared == moved:
            layout = "nchw" if layout == "nhwc" else "nhwc"
    return Artifact.from_path(fmt, p, layout=layout)


def _store(path: str, cell, ex) -> None:
    from convbench.explain.render import verdict_text
    from convbench.store import Store

    with Store(path) as store:
        store.replace_measures(cell.id, ("explain",), [], [
            Outcome("measure", "explain", Status.OK, verdict_text(ex).splitlines()[0])],
            info={"explanation": ex.to_dict()})
    print(f"explanation stored with cell {cell.name} in {path}", file=sys.stderr)
