"""MIL element types and their torch storage types."""

from __future__ import annotations

import numpy as np
import torch

STORAGE = {"fp16": torch.float16, "fp32": torch.float32, "fp64": torch.float64,
           "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
           "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}


def type_name(var) -> str:
    """'fp16', 'fp32', 'int32', 'bool', 'str', ... of a MIL Var's element type."""
    if hasattr(var, "mil_type"):  # read by `convbench.mil.reader`
        return var.mil_type
    from convbench.coreml_import import coremltools

    coremltools()  # its first import leaves out what convbench never uses
    from coremltools.converters.mil.mil import types

    if types.is_list(var.sym_type):
        return "list"
    return types.builtin_to_string(var.dtype)


def to_torch(value, dtype: torch.dtype | None = None):
    """A numpy array or scalar as a torch tensor (strings and None pass through)."""
    if value is None or isinstance(value, (str, torch.Tensor)):
        return value if dtype is None or not isinstance(value, torch.Tensor) else value.to(dtype)
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return str(arr.item()) if arr.ndim == 0 else arr
    if arr.dtype == np.uint16:
        arr = arr.astype(np.int32)
    # (np.ascontiguousarray would make a scalar a 1-element vector: shapes are semantics)
    t = torch.from_numpy(arr if arr.flags.c_contiguous and arr.ndim else np.array(arr, order="C"))
    return t.to(dtype) if dtype is not None else t
