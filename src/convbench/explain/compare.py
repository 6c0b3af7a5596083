"""Comparing two tensors across layouts, and how much error a format's precision explains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Relative error one op may add in each storage precision (the rounding of its output and the
#: order of its sums): fp32 ~1e-6, fp16 ~1e-3; weights quantised to 8 bits or fewer ~3e-2.
GROWTH = {"float32": 1e-6, "float64": 1e-9, "float16": 1e-3, "bfloat16": 8e-3,
          "quantized": 3e-2}


def precision_of(dtype: str | None, weights_dtype: str | None) -> str:
    """The coarsest precision a converted op stores its output or its weights in."""
    kinds = [k for k in (dtype, weights_dtype) if k in GROWTH]
    return max(kinds, key=GROWTH.get) if kinds else "float32"


#: How many ops' worth of growth a tensor may carry beyond its depth (sums over long rows).
SLACK = 4


def tolerance(precision: str, depth: int) -> float:
    """The relative error that rounding explains after `depth` ops in `precision` (it grows at
    most linearly with depth)."""
    return GROWTH.get(precision, GROWTH["float32"]) * (SLACK + depth)


def layouts(src_shape: tuple, dst_shape: tuple) -> list[tuple[int, ...]]:
    """The layouts under which `src_shape` becomes `dst_shape`: the same axes, or the channel
    axis moved last or first (NCHW <-> NHWC, NCL <-> NLC); never another transpose, which
    would hide one a conversion inserted."""
    r = len(src_shape)
    if r != len(dst_shape) or src_shape[:1] != dst_shape[:1]:
        return []
    perms = [tuple(range(r))]
    if r >= 3:
        perms += [(0, *range(2, r), 1), (0, r - 1, *range(1, r - 1))]
    return list(dict.fromkeys(p for p in perms
                              if tuple(src_shape[i] for i in p) == tuple(dst_shape)))


@dataclass
class Error:
    """How far a converted tensor is from the original's, after the best layout permutation."""

    max_abs: float
    rel: float  # ||c - o|| / ||o||
    snr_db: float
    psnr_db: float
    cosine: float
    perm: tuple[int, ...] | None  # how the original's axes map onto the converted tensor's
    shape_differs: bool = False

    def to_dict(self) -> dict:
        return {"max_abs": self.max_abs, "rel": self.rel, "snr_db": self.snr_db,
                "psnr_db": self.psnr_db, "cosine": self.cosine,
                "layout": list(self.perm) if self.perm else None,
                "shape_differs": self.shape_differs}


SHAPE_DIFFERS = Error(float("inf"), float("inf"), float("-inf"), float("-inf"), 0.0, None, True)


def _finite(v: float) -> float:
    return float(v) if np.isfinite(v) else (float("inf") if v > 0 else float("-inf"))


def error(orig: np.ndarray, conv: np.ndarray) -> Error:
    """The error of `conv` against `orig` under the layout that fits best."""
    best = None
    for perm in layouts(orig.shape, conv.shape):
        o = orig.transpose(perm) if perm != tuple(range(orig.ndim)) else orig
        diff = conv.astype(np.float64) - o
        norm = float(np.sqrt(np.sum(np.square(o, dtype=np.float64))))
        dnorm = float(np.sqrt(np.sum(np.square(diff))))
        rel = dnorm / norm if norm > 0 else (0.0 if dnorm == 0 else float("inf"))
        if best is None or rel < best[0]:
            best = (rel, perm, o, diff, norm, dnorm)
    if best is None:
        return SHAPE_DIFFERS
    rel, perm, o, diff, norm, dnorm = best
    if not np.isfinite(diff).all():
        return Error(float("inf"), float("inf"), float("-inf"), float("-inf"), 0.0, perm)
    peak = float(np.max(np.abs(o))) if o.size else 0.0
    rmse = dnorm / np.sqrt(max(o.size, 1))
    cnorm = float(np.sqrt(np.sum(np.square(conv, dtype=np.float64))))
    with np.errstate(divide="ignore"):
        snr = 20 * np.log10(norm / dnorm) if dnorm else float("inf")
        psnr = 20 * np.log10(peak / rmse) if rmse else float("inf")
    cos = float(np.sum(o * conv, dtype=np.float64) / (norm * cnorm)) if norm and cnorm else \
        (1.0 if norm == cnorm else 0.0)
    return Error(float(np.max(np.abs(diff))) if diff.size else 0.0, rel, _finite(snr),
                 _finite(psnr), cos, perm)


def same_values(orig: np.ndarray, conv: np.ndarray, tol: float) -> bool:
    """Whether each sample of `conv` holds the original's values in another order (a layout
    transpose missing or added before a flatten)."""
    if orig.shape[:1] != conv.shape[:1] or orig.size != conv.size:
        return False
    a = np.sort(orig.reshape(len(orig), -1), axis=1)
    b = np.sort(conv.reshape(len(conv), -1), axis=1)
    norm = np.linalg.norm(a)
    return bool(np.linalg.norm(a - b) <= tol * max(norm, 1e-30))
