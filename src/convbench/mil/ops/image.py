"""Resizing (iOS15/16 image_resizing.py) for the last two dims."""

from __future__ import annotations

import math

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import scalar


def _nearest(x, dim, out_size, scale):
    idx = torch.clamp(torch.floor(torch.arange(out_size) / scale).long(), max=x.shape[dim] - 1)
    return x.index_select(dim, idx)


@op("upsample_nearest_neighbor")
def upsample_nearest_neighbor(x, scale_factor_height, scale_factor_width):
    sh, sw = float(scalar(scale_factor_height)), float(scalar(scale_factor_width))
    h, w = x.shape[-2:]
    x = _nearest(x, x.dim() - 2, math.floor(h * sh), sh)
    return _nearest(x, x.dim() - 1, math.floor(w * sw), sw)


def _linear(x, dim, out_size, align_corners, half_pixel):
    """Linear interpolation along one dim at MIL's grid points (see upsample_bilinear)."""
    n = x.shape[dim]
    i = torch.arange(out_size, dtype=torch.float64)
    if align_corners:
        grid = i * ((n - 1) / (out_size - 1) if out_size > 1 else 0.0)
    else:
        spacing = n / out_size
        grid = i * spacing + (0.5 * spacing - 0.5 if half_pixel else 0.0)
    grid = torch.clamp(grid, 0, n - 1)
    lo = torch.floor(grid).long()
    hi = torch.clamp(lo + 1, max=n - 1)
    frac = (grid - lo).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = -1
    frac = frac.reshape(shape)
    return x.index_select(dim, lo) * (1 - frac) + x.index_select(dim, hi) * frac


@op("upsample_bilinear")
def upsample_bilinear(x, scale_factor_height, scale_factor_width, align_corners,
                      half_pixel_centers=None):
    ac = bool(scalar(align_corners))
    half = (not ac) if half_pixel_centers is None else bool(scalar(half_pixel_centers))
    h, w = x.shape[-2:]
    x = _linear(x, x.dim() - 2, math.floor(h * float(scalar(scale_factor_height))), ac, half)
    return _linear(x, x.dim() - 1, math.floor(w * float(scalar(scale_factor_width))), ac, half)


@op("resize_nearest_neighbor")
def resize_nearest_neighbor(x, target_size_height, target_size_width):
    oh, ow = int(scalar(target_size_height)), int(scalar(target_size_width))
    h, w = x.shape[-2:]
    x = _nearest(x, x.dim() - 2, oh, oh / h)
    return _nearest(x, x.dim() - 1, ow, ow / w)
