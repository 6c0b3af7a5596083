"""Resizing (iOS15/16 image_resizing.py) for the last two dims."""

from __future__ import annotations

import math

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import ints, scalar


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


def _grid(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """Input coordinates (float64) of `n_out` points along an axis of `n_in` for a sampling
    mode of resize_bilinear (iOS15 image_resizing.py's formulas), clamped into the axis."""
    return torch.clamp(sample_points(0.0, n_in - 1.0, n_out, mode), 0, n_in - 1)


def lerp(x, dim, grid):
    """Linear interpolation of x along `dim` at the coordinates `grid` (clamped into it)."""
    n = x.shape[dim]
    grid = grid.clamp(0, n - 1)
    lo = torch.floor(grid).long()
    hi = torch.clamp(lo + 1, max=n - 1)
    shape = [1] * x.dim()
    shape[dim] = -1
    frac = (grid - lo).to(x.dtype).reshape(shape)
    return x.index_select(dim, lo) * (1 - frac) + x.index_select(dim, hi) * frac


@op("resize_bilinear")
def resize_bilinear(x, target_size_height, target_size_width, sampling_mode):
    oh, ow = int(scalar(target_size_height)), int(scalar(target_size_width))
    x = lerp(x, x.dim() - 2, _grid(x.shape[-2], oh, sampling_mode))
    return lerp(x, x.dim() - 1, _grid(x.shape[-1], ow, sampling_mode))


@op("resize")
def resize(x, shape, resized_dims, interpolation_mode, sampling_mode):
    """iOS17: the last `resized_dims` dims of x take their sizes from the end of `shape` (0:
    keep x's); linear or nearest-neighbour along each."""
    k = int(scalar(resized_dims))
    sizes = ints(shape)[len(ints(shape)) - k:] if k else []
    for j, size in enumerate(sizes):
        dim = x.dim() - k + j
        size = x.shape[dim] if size == 0 else size
        if interpolation_mode == "NEAREST_NEIGHBOR":
            x = _nearest(x, dim, size, size / x.shape[dim])
        elif interpolation_mode == "LINEAR":
            x = lerp(x, dim, _grid(x.shape[dim], size, sampling_mode))
        else:
            raise ValueError(f"unknown interpolation_mode {interpolation_mode!r}")
    return x


@op("crop", moves=True)
def crop(x, crop_height, crop_width):
    (t, b), (left, r) = ints(crop_height), ints(crop_width)
    return x[..., t:x.shape[-2] - b, left:x.shape[-1] - r]


#: NeuralNetwork's SamplingMode methods under their MIL names
NN_SAMPLING = {"STRICT_ALIGN_ENDPOINTS_MODE": "STRICT_ALIGN_CORNERS",
               "ALIGN_ENDPOINTS_MODE": "ALIGN_CORNERS", "UPSAMPLE_MODE": "DEFAULT",
               "ROI_ALIGN_MODE": "OFFSET_CORNERS"}


def corners(boxes, mode: str):
    """[N, 4] boxes as (h0, w0, h1, w1) columns."""
    a, b, c, d = boxes.unbind(-1)
    if mode == "CORNERS_HEIGHT_FIRST":
        return a, b, c, d
    if mode == "CORNERS_WIDTH_FIRST":
        return b, a, d, c
    if mode == "CENTER_SIZE_HEIGHT_FIRST":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if mode == "CENTER_SIZE_WIDTH_FIRST":
        return b - d / 2, a - c / 2, b + d / 2, a + c / 2
    raise ValueError(f"unknown box_coordinate_mode {mode!r}")


def sample_points(start, end, n_out: int, mode: str) -> torch.Tensor:
    """`n_out` sampling points (float64) over [start, end] in a sampling mode: resize_bilinear's
    over [0, n_in - 1], crop_resize's over a box (NeuralNetwork's SamplingMode methods are the
    same formulas under other names: `NN_SAMPLING`)."""
    extent = float(end - start)
    i = torch.arange(n_out, dtype=torch.float64)
    if mode == "ALIGN_CORNERS" and n_out == 1:
        return torch.full((1,), float(start) + extent / 2, dtype=torch.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        rel = i * (extent / (n_out - 1) if n_out > 1 else 0.0)
    elif mode == "DEFAULT":
        rel = i * ((extent + 1 - (extent + 1) / n_out) / (n_out - 1) if n_out > 1 else 0.0)
    elif mode == "OFFSET_CORNERS":
        delta = max(1.0, extent) / n_out
        rel = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = (extent + 1) / n_out
        rel = i * spacing + 0.5 * spacing - 0.5
    else:
        raise ValueError(f"unknown sampling_mode {mode!r}")
    return float(start) + torch.clamp(rel, max=max(extent, 0.0))  # grid points <= X - 1


def _sample_axis(img, dim, grid, pad_value):
    """Linear interpolation along `dim` at `grid`; points outside [0, n - 1] take pad_value."""
    n = img.shape[dim]
    inside = (grid >= 0) & (grid <= n - 1)
    out = lerp(img, dim, grid.clamp(0, n - 1))
    shape = [1] * img.dim()
    shape[dim] = -1
    return torch.where(inside.reshape(shape), out, torch.as_tensor(pad_value, dtype=img.dtype))


@op("crop_resize")
def crop_resize(x, target_height, target_width, normalized_coordinates, spatial_scale,
                box_coordinate_mode, sampling_mode, roi=None, boxes=None, box_indices=None,
                pad_value=0.0):
    """Bilinear crops of x [B, C, H, W]: iOS15/16 `roi` [N, 1, 4|5, 1, 1] gives
    [N, B|1, C, h, w]; iOS17 `boxes` [N, 4] (+ `box_indices`) gives [N, C, h, w]."""
    th, tw = int(scalar(target_height)), int(scalar(target_width))
    h, w = x.shape[-2:]
    if roi is not None:
        r = roi.reshape(roi.shape[0], -1).double()
        indices = r[:, 0].long() if r.shape[1] == 5 else None
        coords = r[:, -4:]
    else:
        coords = boxes.double()
        indices = (box_indices.long() if box_indices is not None
                   else torch.arange(coords.shape[0]))
    h0, w0, h1, w1 = corners(coords, box_coordinate_mode)
    scale = float(scalar(spatial_scale))
    if scalar(normalized_coordinates):
        h0, h1, w0, w1 = h0 * (h - 1), h1 * (h - 1), w0 * (w - 1), w1 * (w - 1)
    pad = float(scalar(pad_value)) if pad_value is not None else 0.0
    crops = []
    for n in range(coords.shape[0]):
        gh = sample_points(h0[n] * scale, h1[n] * scale, th, sampling_mode)
        gw = sample_points(w0[n] * scale, w1[n] * scale, tw, sampling_mode)
        img = x if indices is None else x[indices[n]:indices[n] + 1]
        crops.append(_sample_axis(_sample_axis(img, 2, gh, pad), 3, gw, pad))
    out = torch.stack(crops)  # [N, B|1, C, h, w]
    return out if roi is not None else out[:, 0]


def _pixel(coord, size: int, mode: str, align: bool):
    """Pixel coordinates of `coord` under a resample coordinates_mode."""
    if mode == "unnormalized":
        return coord
    if mode == "normalized_minus_one_to_one":
        return (coord + 1) / 2 * (size - 1) if align else ((coord + 1) * size - 1) / 2
    if mode == "normalized_zero_to_one":
        return coord * (size - 1) if align else coord * size - 0.5
    raise ValueError(f"unknown coordinates_mode {mode!r}")


def _source(i, size: int, padding_mode: str):
    """Index i (any integer) mapped into [0, size) by a padding mode, and whether it is
    inside the image (False only under "constant")."""
    inside = (i >= 0) & (i < size)
    if padding_mode == "constant":
        return i.clamp(0, size - 1), inside
    if padding_mode == "border":
        return i.clamp(0, size - 1), torch.ones_like(inside)
    if padding_mode == "reflection":  # |1 2 3| -> 2 3 2 1 2 3 2 1 2 (the edge not repeated)
        period = max(2 * (size - 1), 1)
        j = torch.remainder(i, period)
        return torch.where(j >= size, period - j, j), torch.ones_like(inside)
    if padding_mode == "symmetric":  # |1 2 3| -> 3 2 1 1 2 3 3 2 1 (the edge repeated)
        j = torch.remainder(i, 2 * size)
        return torch.where(j >= size, 2 * size - 1 - j, j), torch.ones_like(inside)
    raise ValueError(f"unknown padding_mode {padding_mode!r}")


def _resample(x, px, py, sampling_mode, padding_mode, padding_value):
    """x [B, C, H, W] sampled at pixel coordinates px, py [B, H2, W2]."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    pad = torch.as_tensor(float(scalar(padding_value)), dtype=x.dtype)

    def take(ix, iy):
        sx, okx = _source(ix, w, padding_mode)
        sy, oky = _source(iy, h, padding_mode)
        idx = (sy * w + sx).reshape(b, 1, -1).expand(b, c, -1)
        got = torch.gather(flat, 2, idx).reshape(b, c, *ix.shape[1:])
        return torch.where((okx & oky).unsqueeze(1), got, pad)

    if sampling_mode == "nearest":
        return take(torch.floor(px + 0.5).long(), torch.floor(py + 0.5).long())
    if sampling_mode != "bilinear":
        raise ValueError(f"unknown sampling_mode {sampling_mode!r}")
    x0, y0 = torch.floor(px), torch.floor(py)
    fx, fy = (px - x0).to(x.dtype).unsqueeze(1), (py - y0).to(x.dtype).unsqueeze(1)
    x0, y0 = x0.long(), y0.long()
    top = take(x0, y0) * (1 - fx) + take(x0 + 1, y0) * fx
    bottom = take(x0, y0 + 1) * (1 - fx) + take(x0 + 1, y0 + 1) * fx
    return top * (1 - fy) + bottom * fy


@op("resample")
def resample(x, coordinates, sampling_mode, padding_mode, padding_value, coordinates_mode,
             align_corners):
    align = bool(scalar(align_corners))
    coords = coordinates.double()
    px = _pixel(coords[..., 0], x.shape[-1], coordinates_mode, align)
    py = _pixel(coords[..., 1], x.shape[-2], coordinates_mode, align)
    return _resample(x, px, py, sampling_mode, padding_mode, padding_value)


@op("affine")
def affine(x, transform_matrix, output_height, output_width, sampling_mode, padding_mode,
           padding_value, coordinates_mode, align_corners):
    """Output pixel (x, y), in the coordinates mode over the output's size, samples the input
    at (a0 x + a1 y + a2, b0 x + b1 y + b2) in that mode over the input's size."""
    oh, ow = int(scalar(output_height)), int(scalar(output_width))
    align = bool(scalar(align_corners))
    m = transform_matrix.double().reshape(-1, 6).expand(x.shape[0], 6)
    if coordinates_mode == "normalized_minus_one_to_one":
        ys = (torch.linspace(-1, 1, oh, dtype=torch.float64) if align
              else (2 * torch.arange(oh, dtype=torch.float64) + 1) / oh - 1)
        xs = (torch.linspace(-1, 1, ow, dtype=torch.float64) if align
              else (2 * torch.arange(ow, dtype=torch.float64) + 1) / ow - 1)
    elif coordinates_mode == "normalized_zero_to_one":
        ys = (torch.linspace(0, 1, oh, dtype=torch.float64) if align
              else (torch.arange(oh, dtype=torch.float64) + 0.5) / oh)
        xs = (torch.linspace(0, 1, ow, dtype=torch.float64) if align
              else (torch.arange(ow, dtype=torch.float64) + 0.5) / ow)
    else:
        ys, xs = torch.arange(oh, dtype=torch.float64), torch.arange(ow, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    a = m[:, :, None, None]
    sx = a[:, 0] * gx + a[:, 1] * gy + a[:, 2]
    sy = a[:, 3] * gx + a[:, 4] * gy + a[:, 5]
    px = _pixel(sx, x.shape[-1], coordinates_mode, align)
    py = _pixel(sy, x.shape[-2], coordinates_mode, align)
    return _resample(x, px, py, sampling_mode, padding_mode, padding_value)
