"""The `convbench` command line. Sub-commands import their (heavy) modules only when run."""

from __future__ import annotations

import argparse
import importlib
import sys


def _common_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="convbench.db", help="SQLite results store "
                   "(default: convbench.db in the working directory)")


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where datasets live (default: $CONVBENCH_DATA, then the "
                   "user cache dir)")


def _targets_help() -> str:
    """Each conversion target and what it is, from the format plug-ins."""
    from convbench.formats import targets

    return ", ".join(f"{name} ({t.about})" if t.about else name
                     for name, (_, t) in targets().items())


def _coreml_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coreml-engine", choices=["native", "interpreter", "compiled"],
                   help="run Core ML models with Apple's runtime (macOS), convbench's "
                   "op-by-op interpreter, or the same ops compiled into one function at load "
                   "(default: native on macOS, compiled elsewhere)")
    p.add_argument("--coreml-arith", choices=["fp32", "fp16"], default="fp32",
                   help="interpreter: arithmetic inside each op (storage follows the model)")


def _limits(p: argparse.ArgumentParser, what: str, seconds: str) -> None:
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help=f"seconds per {what} (default {seconds}; 0: none); a {what} past it is "
                   f"stopped and stored as a timeout")
    p.add_argument("--memory-limit", type=float, metavar="GIB",
                   help=f"GiB of memory per {what} (default 75%% of physical memory; 0: none); "
                   f"an allocation past it fails and the {what} is stored as out_of_memory")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="convbench", description="Convert a deep-learning model, "
                                 "run original and converted side by side, measure what changed.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="digits, LeNet-5 in PyTorch and Keras -> ONNX, a table")
    _common_store(p)
    p.set_defaults(handler="convbench.cli.study_cmds:demo")

    p = sub.add_parser("run", help="run a study spec (YAML)")
    p.add_argument("spec")
    _common_store(p)
    _data_dir(p)
    p.add_argument("--force", action="store_true", help="rerun cells already in the store")
    p.add_argument("--retry-noisy", action="store_true",
                   help="time again the stored cells whose latency figures are marked noisy "
                   "(only their latency is replaced)")
    p.add_argument("--executor", choices=["serial", "local", "ray"], default="serial",
                   help="serial: in this process; local: each cell in a process of its own; "
                   "ray: each cell a Ray task")
    p.add_argument("--workers", type=int, default=1, help="local, ray: cells run at once")
    p.add_argument("--address", help="ray: the cluster's address (default: a local Ray)")
    _limits(p, "cell", "43200 (12 h)")
    _coreml_runtime(p)
    p.add_argument("--trust-model", action="store_true",
                   help="allow the spec's `file:` entries marked trust_model: true (files that "
                   "run their own code as they load)")
    p.set_defaults(handler="convbench.cli.study_cmds:run")

    p = sub.add_parser("assess", help="convert and measure your own model")
    p.add_argument("--model", required=True,
                   help="a PyTorch state_dict (.pt, with --factory), TorchScript (.pt/.ts) or "
                   "ExportedProgram (.pt2) file; a Keras .keras or .h5 file or a TensorFlow "
                   "SavedModel folder; or an ONNX file")
    p.add_argument("--framework", choices=["torch", "keras", "onnx"],
                   help="checked against what the file holds (read from it by default)")
    p.add_argument("--factory", help="MODULE:FUNCTION or FILE.py:FUNCTION returning the "
                   "nn.Module the state_dict belongs to (torch models outside the zoo)")
    p.add_argument("--custom-objects", metavar="MODULE",
                   help="a module or .py file registering your Keras classes (a subclassed "
                   "model, custom layers), imported before the model loads")
    g = p.add_argument_group("data (one of --dataset, --data, --synthetic)")
    g.add_argument("--dataset", help="built in: digits, mnist, cifar10, imdb")
    g.add_argument("--data", metavar="FILE|DIR", help="an .npz (arrays x and optional y), a "
                   ".csv (feature columns and a label column) or a folder of images in class "
                   "subfolders (resized to the model's input as read)")
    g.add_argument("--synthetic", type=int, metavar="N", help="N random inputs drawn from the "
                   "model's input signature (no labels: agreement metrics only)")
    g.add_argument("--synthetic-range", metavar="LOW,HIGH", help="range of synthetic values "
                   "(default 0,1; token ids: integers in [LOW, HIGH))")
    g.add_argument("--label-column", help="the CSV's label column (default: label, target, "
                   "class or y when present)")
    g.add_argument("--scale", type=float, help="multiply the data's values (default: 1/255 "
                   "for 8-bit images, else 1)")
    g.add_argument("--mean", help="per-channel mean subtracted after scaling, e.g. "
                   "0.485,0.456,0.406")
    g.add_argument("--std", help="per-channel std divided by after the mean, e.g. "
                   "0.229,0.224,0.225")
    g.add_argument("--data-layout", choices=["nchw", "nhwc"],
                   help="layout of the .npz's image arrays (default: read from their shape)")
    p.add_argument("--input-shape", help="one sample's shape in the model's layout, e.g. "
                   "3,224,224, when the model does not declare it (digits are resized to it)")
    p.add_argument("--spec-out", metavar="FILE", help="also write the study spec of this "
                   "assessment, to rerun it with `convbench run FILE`")
    p.add_argument("--to", default="onnx", help="targets, comma-separated: " + _targets_help())
    p.add_argument("--n", type=int, default=None, help="test subset size (default: all)")
    p.add_argument("--opset", type=int, default=None)
    p.add_argument("--exporter", choices=["dynamo", "torchscript"],
                   help="PyTorch -> ONNX exporter (default dynamo)")
    p.add_argument("--coreml-source", choices=["trace", "export"],
                   help="PyTorch -> Core ML: traced TorchScript (default) or torch.export")
    p.add_argument("--ort-optimization", choices=["basic", "extended", "all"],
                   help="an ONNX source: the ONNX Runtime graph optimisation level whose "
                   "optimised graph is compared with the source (default all)")
    p.add_argument("--coreml-target", help="minimum deployment target, e.g. iOS15, iOS17")
    _coreml_runtime(p)
    p.add_argument("--batch-sizes", default="1,32,128", help="latency sweep (none: no "
                   "latency, a quick check of the outputs)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    p.add_argument("--threads", type=int, help="compute threads of every runtime (default: "
                   "every CPU); 1 gives the most reproducible latency on a shared machine")
    p.add_argument("--attack", default="", help="RQ3 attacks, comma-separated: fgsm, pgd, "
                   "boundary, hopskipjump (images), genetic (text)")
    p.add_argument("--attack-n", type=int, default=1000,
                   help="inputs both models classify correctly to attack (default 1000)")
    p.add_argument("--trust-model", action="store_true",
                   help="load files that run their own code as they load (Keras Lambda "
                   "layers, TorchScript, ExportedProgram, SavedModel) and follow links that "
                   "lead out of the model")
    p.add_argument("--explain", nargs="?", const="always", choices=["always", "on_flip"],
                   help="explain each conversion op by op (where and why it departs; "
                   "on_flip: only targets with a label flip or outputs apart beyond 1e-4)")
    p.add_argument("--explain-samples", type=int, default=8,
                   help="rows traced op by op when explaining (default 8)")
    _limits(p, "target", "3600")
    p.add_argument("--fail-if", metavar="CONDITION",
                   help="exit with status 3 when a converted model meets it, e.g. "
                   "\"label_flip_rate > 0.001 or abs_err_max > 1e-4\" (metric names as in "
                   "convbench.gate; comparisons joined by and, or, not)")
    _common_store(p)
    _data_dir(p)
    p.set_defaults(handler="convbench.cli.assess_cmd:assess")

    p = sub.add_parser("explain", help="where and why a converted model departs from its "
                       "original, op by op")
    p.add_argument("--cell", metavar="ID", help="a stored cell: its id (or a unique start of "
                   "it, `convbench results --format json`) or its name as `results` shows it")
    p.add_argument("--original", metavar="MODEL", help="the original model file (as `assess "
                   "--model` takes it)")
    p.add_argument("--converted", metavar="FILE", help="the converted .onnx, .mlpackage or "
                   ".mlmodel (made by convbench or by any other tool)")
    p.add_argument("--framework", choices=["torch", "keras", "onnx"])
    p.add_argument("--factory", help="MODULE:FUNCTION or FILE.py:FUNCTION building the "
                   "nn.Module of a state_dict")
    p.add_argument("--custom-objects", metavar="MODULE")
    p.add_argument("--trust-model", action="store_true")
    p.add_argument("--input-shape")
    g = p.add_argument_group("data (a stored zoo cell's own dataset by default)")
    g.add_argument("--dataset", help="built in: digits, mnist, cifar10, imdb")
    g.add_argument("--data", metavar="FILE|DIR", help="an .npz, a .csv or a folder of images")
    g.add_argument("--synthetic", type=int, metavar="N", help="N random inputs")
    g.add_argument("--scale", type=float)
    g.add_argument("--data-layout", choices=["nchw", "nhwc"])
    p.add_argument("--n", type=int, help="rows run through both models to find the flipped "
                   "and worst ones (default 1000)")
    p.add_argument("--samples", type=int, help="rows traced op by op, the flipped and "
                   "worst-error first (default 8; a stored explanation is shown as it is "
                   "unless this or the data is given)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--all-ops", action="store_true", help="list ops without a float value "
                   "(shape arithmetic) too")
    p.add_argument("--plot", metavar="PNG", help="write the error-through-depth plot")
    p.add_argument("--repair", choices=["weights"], help="write a copy of the converted model "
                   "with the source's weights put back where they were altered, and re-measure")
    p.add_argument("--repair-out", metavar="FILE", help="where the repaired copy goes "
                   "(default: beside the converted file, '-repaired' added)")
    p.add_argument("--threads", type=int)
    _common_store(p)
    _data_dir(p)
    p.set_defaults(handler="convbench.cli.explain_cmd:explain")

    p = sub.add_parser("coreml", help="inspect Core ML models")
    csub = p.add_subparsers(dest="coreml_command", required=True, metavar="ACTION")
    q = csub.add_parser("ops", help="list a model's ops (or layers) and whether convbench's "
                        "interpreter supports each")
    q.add_argument("model", nargs="?", help="an .mlpackage or .mlmodel")
    q.add_argument("--all", action="store_true",
                   help="instead: every MIL op (iOS15-iOS18) and NeuralNetwork layer Core ML "
                   "defines, whether the interpreters implement it and whether coremltools' "
                   "converters emit it")
    q.add_argument("--trust-model", action="store_true",
                   help="follow links that lead out of the package")
    q.set_defaults(handler="convbench.cli.coreml_cmd:ops")

    p = sub.add_parser("report", help="write report.md and a self-contained report.html")
    _common_store(p)
    p.add_argument("--out", default="convbench-report", help="output directory "
                   "(default: convbench-report)")
    p.set_defaults(handler="convbench.cli.study_cmds:report")

    p = sub.add_parser("results", help="show stored results")
    _common_store(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(handler="convbench.cli.study_cmds:results")

    p = sub.add_parser("train", help="train a zoo model and save it")
    p.add_argument("--framework", required=True, choices=["torch", "keras"])
    p.add_argument("--model", required=True)
    p.add_argument("--dataset")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "paper"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--n-train", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".", help="directory for the model file")
    _data_dir(p)
    p.set_defaults(handler="convbench.cli.data_cmds:train")

    p = sub.add_parser("data", help="fetch datasets or list what is present")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = dsub.add_parser("fetch", help="download a dataset's official files (needs the network)")
    q.add_argument("name")
    _data_dir(q)
    q.set_defaults(handler="convbench.cli.data_cmds:fetch")
    q = dsub.add_parser("info", help="list datasets and whether they are present")
    _data_dir(q)
    q.set_defaults(handler="convbench.cli.data_cmds:info")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, _, func = args.handler.partition(":")
    from convbench.data import DataError
    from convbench.mil.errors import MilError
    from convbench.models.load import ModelLoadError
    from convbench.registry import UnknownNameError
    from convbench.store import StoreError
    from convbench.study import SpecError

    try:
        return getattr(importlib.import_module(module), func)(args) or 0
    except (DataError, ModelLoadError, StoreError, SpecError, UnknownNameError, MilError,
            ValueError) as e:
        print(f"convbench: error: {e}", file=sys.stderr)
        return 2
