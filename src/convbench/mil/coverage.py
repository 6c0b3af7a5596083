"""What convbench's Core ML interpreters implement, against what Core ML defines and what
coremltools' converters emit (`convbench coreml ops --all`).

Defined: every core MIL op of the opsets iOS15-iOS18 (coremltools' op registry) and every layer
kind of NeuralNetwork.proto. Emitted: the MIL ops coremltools' PyTorch and TensorFlow/Keras
frontends, graph passes and ML Program backend build (`mb.<op>(` in their source: the backend
adds `classify` to classifiers), plus the stateful-model op the
program file stores (coreml_update_state), and the layers its MIL-to-NeuralNetwork backend adds
(the `add_*` builder methods it calls, mapped to the layer each sets). Read from the installed
coremltools, so the lists follow its version.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

#: ops that carry no computation of their own: consts are read at load
STRUCTURAL = {"const", "_const_symbolic"}
#: what no interpreter can run: its code ships with the app, not the model
UNIMPLEMENTABLE = {"custom": "a custom layer's code ships with the app, not the model"}


@dataclass(frozen=True)
class Entry:
    name: str
    implemented: bool
    emitted: bool
    opsets: tuple[str, ...] = ()  # MIL ops: the iOS opsets that define them
    note: str = ""


def _root() -> Path:
    from convbench.coreml_import import coremltools

    return Path(coremltools().__file__).parent


def _sources(*folders: str) -> str:
    root = _root()
    return "\n".join(p.read_text(errors="replace") for folder in folders
                     for p in sorted((root / folder).rglob("*.py")) if "test" not in p.parts)


@functools.cache
def mil_ops() -> tuple[Entry, ...]:
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    from convbench.mil.ops import OPS

    ios = {6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18"}
    defined = {name: tuple(ios[int(t.value)] for t in versions if int(t.value) in ios)
               for name, versions in SSAOpRegistry.core_ops.items()}
    defined = {n: v for n, v in defined.items() if v}
    defined["coreml_update_state"] = ("iOS18",)
    text = _sources("converters/mil/frontend", "converters/mil/mil/passes",
                    "converters/mil/mil/ops/defs", "converters/mil/backend/mil")
    emitted = set(re.findall(r"\bmb\.(\w+)\(", text)) | {"coreml_update_state"}
    have = set(OPS.names()) | STRUCTURAL
    return tuple(Entry(n, n in have, n in emitted, defined[n], UNIMPLEMENTABLE.get(n, ""))
                 for n in sorted(defined))


@functools.cache
def nn_layers() -> tuple[Entry, ...]:
    from coremltools.proto import NeuralNetwork_pb2

    from convbench.nn.layers import LAYERS

    kinds = [f.name for f in
             NeuralNetwork_pb2.NeuralNetworkLayer.DESCRIPTOR.oneofs_by_name["layer"].fields]
    builder = (_root() / "models/neural_network/builder.py").read_text()
    sets: dict[str, set[str]] = {}
    for m in re.finditer(r"\n    def (add_\w+)\(", builder):
        end = builder.find("\n    def ", m.end())
        sets[m.group(1)] = set(re.findall(r"spec_layer\.(\w+)", builder[m.end():end])) \
            & set(kinds)
    backend = _sources("converters/mil/backend/nn")
    emitted = {k for call in re.findall(r"builder\.(add_\w+)\(", backend)
               for k in sets.get(call, ())} | {"branch", "loop"}
    have = set(LAYERS.names())
    return tuple(Entry(k, k in have, k in emitted, (), UNIMPLEMENTABLE.get(k, "")) for k in kinds)


def summary(entries: tuple[Entry, ...]) -> str:
    done = sum(e.implemented for e in entries)
    emitted = [e for e in entries if e.emitted]
    return (f"{done} of {len(entries)} implemented; {sum(e.implemented for e in emitted)} of "
            f"the {len(emitted)} the converters emit")
