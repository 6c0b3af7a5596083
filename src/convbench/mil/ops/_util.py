"""Small helpers shared by op families."""

from __future__ import annotations

import torch


def ints(v) -> list[int]:
    """A tensor, array or sequence of integers as a list of Python ints."""
    if isinstance(v, torch.Tensor):
        return [int(x) for x in v.reshape(-1).tolist()]
    if hasattr(v, "tolist"):
        v = v.tolist()
    return [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]


def scalar(v):
    """A 0-d or 1-element tensor as a Python number or bool."""
    return v.item() if isinstance(v, torch.Tensor) else v


def flags(v, n: int) -> list[bool]:
    """A boolean mask of length n (None: all False)."""
    if v is None:
        return [False] * n
    return [bool(x) for x in (v.reshape(-1).tolist() if isinstance(v, torch.Tensor) else v)]


def axis(a, rank: int) -> int:
    a = int(scalar(a))
    return a + rank if a < 0 else a


def spatial_pads(pad_type: str, pad, in_sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL's pad types.

    valid: none; custom: `pad` = [b0, e0, b1, e1, ...]; same / same_lower: output size
    ceil(in / stride), the total split evenly, the odd unit after (same) or before (same_lower).
    """
    n = len(in_sizes)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        p = ints(pad) if pad is not None else [0] * (2 * n)
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
            eff = (k - 1) * d + 1
            total = max((-(-size // s) - 1) * s + eff - size, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
        return out
    raise ValueError(f"unknown pad_type {pad_type!r}")


def torch_pad_arg(pads: list[tuple[int, int]]) -> list[int]:
    """F.pad's argument (last dim first) from per-dim (before, after) pairs."""
    out = []
    for b, e in reversed(pads):
        out += [b, e]
    return out
