"""`--repair weights`: a copy of the converted model with the source's weights put back where
the explanation found them altered, and the label flips before and after on the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convbench.records import Artifact


def _default_out(path: str) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}-repaired{p.suffix}"))


def repair_weights(ex, original: Artifact, converted: Artifact, x, out: str | None = None
                   ) -> dict[str, Any]:
    """Write the repaired copy of `converted` to `out`; re-measure it against `original` on `x`."""
    restore = ex.restore
    out = out or _default_out(converted.path)
    if not restore:
        return {"ops": [], "path": None, "flips_before": None, "flips_after": None,
                "rows": 0, "note": "no weight was found altered: nothing to put back"}
    if Path(out).resolve() == Path(converted.path).resolve():
        raise ValueError(f"--repair-out {out} is the converted model itself: give another "
                         f"path (the converted file is kept as it is)")
    if converted.format not in ("onnx", "coreml"):
        raise ValueError(f"--repair weights rewrites ONNX and Core ML files, not "
                         f"{converted.format} ones; the explanation above says which weights "
                         f"differ")
    if converted.format == "onnx":
        _onnx(converted.path, restore, out)
    elif Path(converted.path).suffix == ".mlmodel":
        _neuralnetwork(converted.path, restore, out)
    else:
        _mlprogram(converted.path, restore, out)
    repaired = Artifact.from_path(converted.format, out, **converted.meta)
    flips = [_flips(original, c, x) for c in (converted, repaired)]
    return {"ops": [r.op for r in restore], "path": out, "flips_before": flips[0],
            "flips_after": flips[1], "rows": int(len(x))}


def _flips(original: Artifact, converted: Artifact, x) -> int:
    from convbench.explain import _outputs
    from convbench.runtimes.base import default_runtime

    a = _outputs(original, x, default_runtime(original.format), {}, None)
    b = _outputs(converted, x, default_runtime(converted.format), {}, None)
    if a is None or b is None:
        return -1
    return int((a.reshape(len(a), -1).argmax(1) != b.reshape(len(b), -1).argmax(1)).sum())


def _onnx(path: str, restore, out: str) -> None:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    inits = {t.name: t for t in m.graph.initializer}
    constants = {n.output[0]: n for n in m.graph.node if n.op_type == "Constant"}
    for r in restore:
        if r.source in inits:
            t = inits[r.source]
        else:  # a Constant node's value
            t = next(a.t for a in constants[r.source].attribute if a.name == "value")
        t.CopyFrom(numpy_helper.from_array(r.value.astype(numpy_helper.to_array(t).dtype),
                                           t.name))
    onnx.save(m, out)


def _neuralnetwork(path: str, restore, out: str) -> None:
    from convbench.mil.program import load_spec

    spec = load_spec(path)
    layers = {layer.name: layer for layer in spec.neuralNetwork.layers}
    for r in restore:
        op, source, value = r.op, r.source, r.value
        kind, field = source.split(".", 1)
        params = getattr(layers[op], kind)
        for part in field.split(".")[:-1]:
            params = getattr(params, part)
        w = getattr(params, field.split(".")[-1])
        w.ClearField("float16Value")
        w.ClearField("rawValue")
        del w.floatValue[:]
        w.floatValue.extend(np.asarray(value, np.float32).reshape(-1).tolist())
    Path(out).write_bytes(spec.SerializeToString())


def _mlprogram(path: str, restore, out: str) -> None:
    from convbench.coreml_import import coremltools
    from convbench.mil import load_program

    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    prog = load_program(path)
    block = prog.functions["main"]
    ops = {op.name: op for op in block.operations}
    with block:
        for r in restore:
            op_name, role, value = r.op, r.role, r.value
            op = ops[op_name]
            old = getattr(op, role)
            dtype = old.val.dtype if old.val is not None else np.float32
            new = mb.const(val=value.astype(dtype), before_op=op,
                           name=f"{op_name}_{role}_restored")
            op.set_inputs(**{role: new})
    model = ct.convert(prog, convert_to="mlprogram", pass_pipeline=ct.PassPipeline.EMPTY,
                       compute_precision=ct.precision.FLOAT32,
                       minimum_deployment_target=ct.target.iOS15)
    model.save(out)
