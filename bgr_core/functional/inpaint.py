"""Pieces of background inpainting around a matted vehicle: the model's canvas, the
mask to repaint, and pasting the vehicle back.

(B, C, H, W) float tensors in [0, 1]; results follow the input's device and dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["model_canvas", "to_canvas", "from_canvas", "background_mask", "paste_vehicle"]


def model_canvas(height: int, width: int, size: int, multiple: int = 8) -> tuple[tuple[int, int], tuple[int, int]]:
    """((h, w), (ph, pw)): the image scaled so its long side is `size` (up or down:
    diffusion models work best near their training size), and that size padded up to a
    multiple of `multiple` (what the VAE and UNet need) — padding, not squashing, so
    the aspect is kept."""
    scale = size / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    return (h, w), (math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple)


def to_canvas(x: Tensor, size: tuple[int, int], padded: tuple[int, int], fill: float | None = None) -> Tensor:
    """(B, C, H, W) → (B, C, ph, pw): resized to `size` (bilinear, antialiased when
    shrinking), then padded at the right and bottom with its edge pixels (`fill` None)
    or with the constant `fill`."""
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    pad = (0, padded[1] - size[1], 0, padded[0] - size[0])
    if fill is None:
        return F.pad(y, pad, mode="replicate")
    return F.pad(y, pad, value=fill)


def from_canvas(x: Tensor, size: tuple[int, int], out: tuple[int, int]) -> Tensor:
    """Inverse of `to_canvas`: the padding cut away, then resized to `out` (H, W)."""
    y = x[..., : size[0], : size[1]]
    shrink = size[0] > out[0] or size[1] > out[1]
    return F.interpolate(y, size=out, mode="bilinear", align_corners=False, antialias=shrink)


def background_mask(alpha: Tensor, grow: int = 4, opaque: float = 0.99) -> Tensor:
    """(B, 1, H, W) matte → (B, 1, H, W) {0, 1} mask of what to repaint: everything not
    opaque vehicle, grown `grow` pixels into the vehicle, so the soft edge gets a new
    background to blend with and the model has room to meet the vehicle's outline."""
    mask = (alpha < opaque).to(alpha.dtype)
    if grow > 0:
        mask = F.max_pool2d(mask, kernel_size=2 * grow + 1, stride=1, padding=grow)
    return mask


def paste_vehicle(image: Tensor, foreground: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """``alpha * foreground + (1 - alpha) * background``, and exactly `image` where
    ``alpha == 1`` (the vehicle's own pixels, bit for bit). (B, 3, H, W) out."""
    blended = torch.lerp(background, foreground, alpha)
    return torch.where(alpha >= 1.0, image, blended)
