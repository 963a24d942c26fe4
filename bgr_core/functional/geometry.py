"""Geometry that carries its canvas: scale-and-place of layers, boxes and quadrilaterals.

A `Placement` maps input pixel coordinates to output pixel coordinates,
``x_out = scale * x_in + offset_x`` (same for y), onto an output canvas
(H_out, W_out). Coordinates have their origin at the top-left corner of the
top-left pixel, x to the right, y down; pixel centres are at +0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Placement", "place_layer", "place_points", "place_box", "union_box", "grown_bounds"]


@dataclass(frozen=True)
class Placement:
    scale: float
    offset_x: float
    offset_y: float
    out_size: tuple[int, int]  # (H, W)

    @staticmethod
    def identity(size: tuple[int, int]) -> "Placement":
        return Placement(1.0, 0.0, 0.0, (int(size[0]), int(size[1])))

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.offset_x == 0.0 and self.offset_y == 0.0


def place_layer(layer: torch.Tensor, placement: Placement, fill: float = 0.0) -> torch.Tensor:
    """Resample `layer` (B, C, H, W) onto the placement's canvas (B, C, H_out, W_out).

    Scaling is antialiased when shrinking. With whole-pixel offsets the layer is
    resampled once, at exactly the scale, and pasted (the layout places on whole pixels);
    otherwise the offset is split into an integer paste and a sub-pixel shift folded
    into a second, bilinear resampling. Layers placed with the same Placement stay
    aligned to the pixel. Areas the layer does not cover get `fill`.
    """
    b, c, h, w = layer.shape
    out_h, out_w = placement.out_size
    s = placement.scale
    if placement.is_identity and (h, w) == (out_h, out_w):
        return layer.clone()
    # the scaled layer spans [offset, offset + s*size) in output pixels
    x0, y0 = placement.offset_x, placement.offset_y
    ix0, iy0 = math.floor(x0), math.floor(y0)
    new_w = max(1, math.ceil(x0 + s * w) - ix0)
    new_h = max(1, math.ceil(y0 + s * h) - iy0)
    whole = x0 == ix0 and y0 == iy0
    scaled = None
    if whole and s != 1.0 and math.floor(s * h) >= 1 and math.floor(s * w) >= 1:
        # on whole pixels one resampling at exactly the scale places the layer (output
        # pixel i samples input (i + 0.5) / s - 0.5): its whole pixels, floor(s * size);
        # the layer's own border is not faded
        scaled = F.interpolate(layer, scale_factor=(s, s), recompute_scale_factor=False, mode="bilinear",
                               align_corners=False, antialias=s < 1.0)
        new_h, new_w = scaled.shape[-2:]
    # only the part of that block that lands on the canvas is worked out
    bx0, by0 = max(ix0, 0), max(iy0, 0)
    bx1, by1 = min(ix0 + new_w, out_w), min(iy0 + new_h, out_h)
    out = torch.empty((b, c, out_h, out_w), dtype=layer.dtype, device=layer.device)
    if bx1 <= bx0 or by1 <= by0:
        return out.fill_(fill)
    if s == 1.0 and whole:
        block = layer[..., by0 - iy0 : by1 - iy0, bx0 - ix0 : bx1 - ix0]
    elif scaled is not None:
        block = scaled[..., by0 - iy0 : by1 - iy0, bx0 - ix0 : bx1 - ix0]
    else:
        # resample so that output pixel i (of the pasted block) samples input
        # coordinate ((ix0 + i + 0.5) - x0) / s - 0.5
        src = layer
        if s < 1.0:
            # antialiased shrink to (close to) the final scale, then an exact bilinear shift
            src = F.interpolate(layer, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                                align_corners=False, antialias=True)
        sh, sw = src.shape[-2:]
        kx, ky = sw / w, sh / h  # input -> src pixel scale
        cols = torch.arange(bx0 - ix0, bx1 - ix0, device=layer.device, dtype=torch.float32)
        rows = torch.arange(by0 - iy0, by1 - iy0, device=layer.device, dtype=torch.float32)
        xs = ((cols + ix0 + 0.5 - x0) / s) * kx
        ys = ((rows + iy0 + 0.5 - y0) / s) * ky
        gx = xs / sw * 2 - 1
        gy = ys / sh * 2 - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None].expand(b, -1, -1, -1)
        block = F.grid_sample(src.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # zeros padding fades the layer's own border over one pixel; beyond it: fill (the
        # rows and columns outside are the ends of monotonic ranges: set only those)
        outside_x, outside_y = (xs < -0.5) | (xs > sw + 0.5), (ys < -0.5) | (ys > sh + 0.5)
        if bool(outside_x.any()):
            block[..., outside_x] = fill
        if bool(outside_y.any()):
            block[..., outside_y, :] = fill
        block = block.to(layer.dtype)
    out[..., by0:by1, bx0:bx1] = block
    # the canvas around the block
    out[..., :by0, :] = fill
    out[..., by1:, :] = fill
    out[..., by0:by1, :bx0] = fill
    out[..., by0:by1, bx1:] = fill
    return out


def place_points(points: torch.Tensor, placement: Placement) -> torch.Tensor:
    """Move points (..., 2) as (x, y) pixels with the placement."""
    offset = torch.tensor([placement.offset_x, placement.offset_y], dtype=points.dtype, device=points.device)
    return points * placement.scale + offset


def place_box(box: torch.Tensor, placement: Placement) -> torch.Tensor:
    """Move an XYXY box (4,) and clip it to the output canvas."""
    moved = place_points(box.reshape(2, 2), placement).reshape(4)
    out_h, out_w = placement.out_size
    limits = torch.tensor([out_w, out_h, out_w, out_h], dtype=moved.dtype, device=moved.device)
    return torch.minimum(moved.clamp_min(0), limits)


def union_box(*boxes: torch.Tensor | None) -> torch.Tensor:
    """The XYXY box around every given (4,) box."""
    given = torch.stack([b for b in boxes if b is not None])
    return torch.cat([given[:, :2].min(0).values, given[:, 2:].max(0).values])


def grown_bounds(mask: torch.Tensor, margin: int) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1), ends exclusive: the rows and columns of the True pixels of `mask`
    (H, W), grown by `margin` pixels on every side and clipped to the mask; None when it
    is empty. The window that a local operation (box filters, blurs) needs around a
    sparse layer."""
    rows = torch.nonzero(mask.any(1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(mask.any(0)).flatten()
    h, w = mask.shape
    return (max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin),
            max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin))
