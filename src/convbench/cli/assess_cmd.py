"""`convbench assess`: convert a user's own model and measure what changed."""

from __future__ import annotations

from pathlib import Path

from convbench.cli.present import table
from convbench.records import CellKey


def assess_spec(args) -> dict:
    """The one-entry study spec the command line describes (what `--spec-out` writes)."""
    from convbench.attacks import make_attack
    from convbench.cli.study_cmds import coreml_options

    entry: dict = {"file": str(Path(args.model).resolve()) if Path(args.model).exists()
                   else args.model}
    if args.framework:
        entry["framework"] = args.framework
    for key in ("factory", "custom_objects"):
        if getattr(args, key, None):
            entry[key] = _absolute_code(getattr(args, key))
    if args.trust_model:
        entry["trust_model"] = True
    if args.input_shape:
        try:
            entry["input_shape"] = [int(v) for v in args.input_shape.split(",")]
        except ValueError:
            raise ValueError(f"--input-shape {args.input_shape!r}: give integers such as "
                             f"3,224,224 (one sample, in the model's layout)") from None
    given = [k for k in ("dataset", "data", "synthetic") if getattr(args, k, None)]
    if len(given) != 1:
        raise ValueError("give one of --dataset NAME (built in), --data FILE|DIR (an .npz, a "
                         ".csv or a folder of images) or --synthetic N"
                         + (f"; got {', '.join('--' + g for g in given)}" if given else ""))
    if args.dataset:
        misplaced = [f"--{k.replace('_', '-')}" for k in ("scale", "mean", "std", "data_layout",
                                                           "label_column", "synthetic_range")
                     if getattr(args, k, None) is not None]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} apply to your own data (--data, "
                             f"--synthetic); a built-in dataset comes as convbench's other "
                             f"cells see it (images in [0, 1])")
        entry["dataset"] = args.dataset
    else:
        data: dict = ({"path": str(Path(args.data).resolve())} if args.data
                      else {"synthetic": args.synthetic})
        if args.synthetic_range:
            data["range"] = _floats(args.synthetic_range, "--synthetic-range", 2)
        for key in ("label_column", "scale", "layout", "seed"):
            value = getattr(args, "data_" + key if key == "layout" else key, None)
            if value is not None:
                data[key] = value
        for key in ("mean", "std"):
            if getattr(args, key, None):
                data[key] = _floats(getattr(args, key), "--" + key)
        entry["data"] = data
    convert: dict = {}
    for fmt in (f.strip() for f in args.to.split(",") if f.strip()):
        convert[fmt] = _convert_options(args, fmt)
    runtime_options = {"coreml": coreml_options(args)} if coreml_options(args) else {}
    return {"name": "assess", "models": [entry], "formats": list(convert),
            "n_test": args.n if args.n else "all",
            "convert": {k: v for k, v in convert.items() if v},
            "measures": {"latency_batch_sizes": _batch_sizes(args.batch_sizes),
                         "memory": not args.no_memory, "latency_wait": None},
            **({"threads": args.threads} if args.threads else {}),
            "runtime_options": runtime_options,
            "attacks": [{"name": a, **make_attack(a).params}
                        for a in args.attack.split(",") if a],
            "attack_n": args.attack_n,
            **({"explain": True if args.explain == "always" else args.explain,
                "explain_samples": args.explain_samples}
               if getattr(args, "explain", None) else {})}


def _absolute_code(spec: str) -> str:
    """A --factory or --custom-objects naming a .py file, with that file's absolute path (the
    written spec runs from any directory); a module name as given."""
    target, sep, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if target.endswith(".py") and Path(target).exists():
        target = str(Path(target).resolve())
    return f"{target}{sep}{attr}"


def _batch_sizes(text: str) -> list[int]:
    """`--batch-sizes`: sizes to time, or none (no latency: a quick check of the outputs)."""
    if text.strip().lower() in ("none", "0", ""):
        return []
    try:
        return [int(b) for b in text.split(",")]
    except ValueError:
        raise ValueError(f"--batch-sizes {text!r}: give sizes such as 1,32,128, or none") \
            from None


def _floats(text: str, option: str, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or (count and len(values) != count):
        raise ValueError(f"{option} {text!r}: give {count or 'one or more'} comma-separated "
                         f"numbers")
    return values


def _convert_options(args, target: str) -> dict:
    """Converter options for one target from the command line: the arguments its format's
    plug-in maps to options (those of another source framework are ignored by its converter)."""
    from convbench.convert import resolve_target
    from convbench.formats import FORMATS

    fmt = FORMATS.get(resolve_target(target)[0])  # an unknown target: an error naming them
    extra = {option: getattr(args, arg, None) for option, arg in fmt.cli.items()}
    return {k: v for k, v in extra.items() if v is not None}


def assess(args) -> int:
    import yaml

    from convbench.gate import parse
    from convbench.limits import ASSESS_SECONDS, Limits
    from convbench.store import Store
    from convbench.study.executor import run_study
    from convbench.study.spec import parse_spec

    gate = parse(args.fail_if) if args.fail_if else None  # a typo fails before any work
    if not Path(args.model).exists():
        raise ValueError(f"--model {args.model}: no such file or folder")
    raw = assess_spec(args)
    spec = parse_spec(raw, "the command line")
    limits = Limits.from_options(args.memory_limit, args.time_limit, ASSESS_SECONDS)
    cells = _planned(spec, args, limits)
    if args.spec_out:
        Path(args.spec_out).write_text(yaml.safe_dump(raw, sort_keys=False))
        trust = " --trust-model" if args.trust_model else ""
        print(f"spec written to {args.spec_out}: rerun it with `convbench run "
              f"{args.spec_out}{trust}`")
    with Store(args.store) as store:  # each target in a process of its own, under the limits
        run_study(cells, store, "assess", force=True, executor="local", workers=1,
                  limits=limits, cell_threads=args.threads)
        stored = list(store.cells({c.key.id for c in cells}))
    print(table(stored))
    _explanations(stored)
    if not all(c.status.value == "ok" for c in stored):
        return 1
    return _gate(gate, stored) if gate else 0


def _explanations(cells) -> None:
    """Each explained cell's verdict and where to read the rest."""
    explained = [c for c in cells if "explanation" in c.info]
    for c in explained:
        v = c.info["explanation"]["verdict"]
        where = f" at {v['op_type']} {v['op']!r}" if v.get("op") else ""
        layer = f" (original: {v['layer_type']} {v['layer']!r})" if v.get("layer") else ""
        print(f"\nexplained {c.name}: {v['fault'] or 'no fault'}{where}{layer}\n  {v['detail']}")
    if explained:
        print(f"\nthe op-by-op tables: `convbench explain --cell ID` (ids: `convbench results "
              f"--format json`)")


def _planned(spec, args, limits) -> list:
    """The spec's cells, with the model read and the data prepared in this process under
    the limits: bad input is an error here, before any conversion."""
    from convbench.files import size_text
    from convbench.limits import TimeLimitReached, memory_cap, time_limit
    from convbench.study.display import output_to
    from convbench.study.executor import log_path
    from convbench.study.plan import plan

    path = Path(args.model)
    try:
        with memory_cap(limits.memory_bytes), time_limit(limits.seconds):
            with output_to(log_path(CellKey("user", path.name, "-", "-", "-"))):
                cells = plan(spec, args.data_dir, limits.memory_bytes)  # may load the model
                if cells:
                    info = cells[0].load_data()[4]
    except TimeLimitReached:
        raise ValueError(f"{path}: reading the model's input and the data took past the time "
                         f"limit of {limits.seconds:g} s; raise --time-limit if the model is "
                         f"genuine") from None
    except MemoryError:
        raise ValueError(f"{path}: reading the model's input and the data ran out of memory "
                         f"under the cap of {size_text(limits.memory_bytes or 0)}; raise "
                         f"--memory-limit if the model is genuine") from None
    if cells and info.get("skipped"):
        import sys

        print(f"convbench: {info['skipped']} unreadable file(s) skipped in --data, e.g. "
              f"{info['skipped_files'][0]}", file=sys.stderr)
    return cells


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
