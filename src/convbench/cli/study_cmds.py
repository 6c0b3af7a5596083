"""`convbench demo`, `run` and `results`."""

from __future__ import annotations

from convbench.cli.present import table
from convbench.report import build_report
from convbench.store import Store
from convbench.study import SpecError, load_spec, parse_spec, plan, run_study

#: The demo study (also in examples/demo.yaml): real digits, LeNet-5 in both frameworks -> ONNX
#: and Core ML.
DEMO = {
    "name": "demo",
    "preset": "smoke",
    "frameworks": ["torch", "keras"],
    "models": [{"model": "lenet5", "dataset": "digits"}],
    "formats": ["onnx", "coreml"],
    "runs": 1,
    "n_test": "all",
    "train": {"epochs": 15, "lr": 0.05, "batch_size": 32, "n_train": 2000},
    "attacks": [{"name": "fgsm", "eps": 0.3}],
    "attack_n": 200,
    "threads": 1,  # one compute thread per runtime: latency that a shared machine reproduces
}


def _run(spec, store_path: str, data_dir=None, force: bool = False, **execution) -> int:
    cells = plan(spec, data_dir)
    preflight(cells)
    with Store(store_path) as store:
        run_study(cells, store, spec.name, force=force, **execution)
        mine = list(store.cells({c.key.id for c in cells}))
    print(table(mine))
    print(f"\n{len(mine)} cell(s) in {store_path}; `convbench results --store {store_path}` "
          f"shows them again")
    return 0 if all(c.status.value != "failed" for c in mine) else 1


def preflight(cells) -> None:
    """Refuse a study whose datasets are absent before any cell runs."""
    from convbench.data import DataError, get_dataset

    problems = []
    needed = {(c.builtin_dataset, c.data_dir) for c in cells if c.builtin_dataset}
    for name, data_dir in sorted(needed, key=lambda t: (t[0], str(t[1]))):
        try:
            get_dataset(name, data_dir).check()
        except DataError as e:
            problems.append(str(e))
    if problems:
        raise SpecError("the study needs data that is not here, so nothing was run:\n  "
                        + "\n  ".join(problems))


def demo(args) -> int:
    code = _run(parse_spec(DEMO, "demo"), args.store)
    _, html = build_report(args.store, "convbench-report")
    print(f"report: {html.resolve()} (and report.md beside it)")
    return code


def report(args) -> int:
    md, html = build_report(args.store, args.out)
    print(f"{md}\n{html}")
    return 0


def run(args) -> int:
    spec = load_spec(args.spec)
    trusting = [e.file for e in spec.models if getattr(e, "trust_model", False)]
    if trusting and not args.trust_model:  # a spec file alone does not grant trust
        raise SpecError(f"{args.spec}: trust_model is set for {', '.join(trusting)} (files "
                        f"that run their own code as they load); pass --trust-model to run "
                        f"them, only if you trust their author")
    coreml = coreml_options(args)
    if coreml:  # the command line wins over the spec
        merged = {**spec.runtime_options, "coreml": {**spec.runtime_options.get("coreml", {}),
                                                     **coreml}}
        spec = spec.model_copy(update={"runtime_options": merged})
    from convbench.limits import STUDY_SECONDS, Limits

    limits = Limits.from_options(args.memory_limit, args.time_limit, STUDY_SECONDS,
                                 args.workers if args.executor != "serial" else 1)
    return _run(spec, args.store, args.data_dir, args.force, executor=args.executor,
                workers=args.workers, limits=limits,
                address=args.address, retry_noisy=args.retry_noisy)


def coreml_options(args) -> dict:
    """The Core ML runner options given on the command line."""
    out = {}
    if getattr(args, "coreml_engine", None):
        out["engine"] = args.coreml_engine
    if getattr(args, "coreml_arith", "fp32") != "fp32":
        out["arith"] = args.coreml_arith
    return out


def results(args) -> int:
    from convbench.results import to_csv, to_json

    with Store(args.store) as store:
        cells = list(store.cells())
    print({"table": table, "csv": to_csv, "json": to_json}[args.format](cells))
    return 0
