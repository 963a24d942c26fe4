"""Compositing: foreground colour estimation (decontamination), cover resize, blending.

All functions take and return float tensors in [0, 1], (B, C, H, W), and follow the
input's device and dtype.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .geometry import grown_bounds
from .guided_filter import box_filter

__all__ = ["SPARSE_PIXELS", "estimate_foreground", "cover_resize", "composite", "blur_fusion_radii", "shadow_into_alpha"]


# boxes around the matte from this many pixels work out the estimates near its soft edge only
SPARSE_PIXELS = 1_000_000


def blur_fusion_radii(height: int, width: int) -> tuple[int, int]:
    """Radii of the coarse and fine blur-fusion passes for an (H, W) canvas.

    Germer et al. blur with 90 then 6 pixel wide boxes (radii 45 and 3) on photos of
    about 2 megapixels; the coarse radius scales with the diagonal so small and huge
    images behave alike.
    """
    diag = math.hypot(height, width)
    return max(6, round(diag * 45 / 2000)), max(2, round(diag * 3 / 2000))


def _blur_fusion_step(
    image: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, alpha: torch.Tensor, radius: int,
    need: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of blur fusion; with `need` ((B, 1, H, W) bool) the estimates are worked
    out only at those pixels (the box means still see everything) and are 0 elsewhere."""
    eps = 1e-5
    blurred_alpha = box_filter(alpha, radius)
    sum_fg = box_filter(fg * alpha, radius)
    sum_bg = box_filter(bg * (1.0 - alpha), radius)
    if need is None:
        return _fuse(image, alpha, blurred_alpha, sum_fg, sum_bg, eps)
    out_fg, out_bg = torch.zeros_like(image), torch.zeros_like(image)
    for b in range(image.shape[0]):
        ys, xs = torch.nonzero(need[b, 0], as_tuple=True)  # gathers only these (no copy of a cropped view)
        f, g = _fuse(*(x[b][:, ys, xs] for x in (image, alpha, blurred_alpha, sum_fg, sum_bg)), eps)
        out_fg[b][:, ys, xs] = f
        out_bg[b][:, ys, xs] = g
    return out_fg, out_bg


def _fuse(image, alpha, blurred_alpha, sum_fg, sum_bg, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur fusion's estimates from the box means (any matching shapes, element-wise)."""
    blurred_fg = sum_fg / (blurred_alpha + eps)
    blurred_bg = sum_bg / ((1.0 - blurred_alpha) + eps)
    residual = image - alpha * blurred_fg - (1.0 - alpha) * blurred_bg
    fg = (blurred_fg + alpha * residual).clamp(0.0, 1.0)
    return fg, blurred_bg


def _reach(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, 1, H, W) bool grown by a (2 radius + 1)^2 square: the pixels whose box mean
    of that radius reads a True pixel."""
    if radius <= 0:
        return mask.clone()
    if mask.device.type != "cpu":
        return F.max_pool2d(mask.float(), 2 * radius + 1, stride=1, padding=radius) > 0
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    planes = mask.reshape(-1, *mask.shape[-2:]).to(torch.uint8).cpu().numpy()
    grown = np.stack([cv2.dilate(p, kernel) for p in planes]).astype(bool)
    return torch.from_numpy(grown).view(mask.shape).to(mask.device)


def estimate_foreground(
    image: torch.Tensor, alpha: torch.Tensor, radii: tuple[int, ...] | None = None, sparse: bool | None = None
) -> torch.Tensor:
    """Foreground colours F with ``image ≈ alpha * F + (1 - alpha) * B`` (no background halo).

    Approximate fast foreground colour estimation by blur fusion (Germer, Uelwer,
    Conrad, Harmeling, ICIP 2021): box-blurred foreground and background estimates,
    corrected by the compositing residual, coarse radius first then fine. Where
    ``alpha`` is 1 the result equals the image; in the soft edge the old background's
    colour is taken out, so no fringe of it remains on a new background.

    Args:
        image: (B, 3, H, W) in [0, 1].
        alpha: (B, 1, H, W) in [0, 1].
        radii: box radii of the passes; default `blur_fusion_radii` of the canvas.
        sparse: work out the estimates only near the soft edge (the same values); None:
            where the box around the matte has at least `SPARSE_PIXELS` pixels.
    Returns:
        (B, 3, H, W) in [0, 1].
    """
    if radii is None:
        radii = blur_fusion_radii(image.shape[-2], image.shape[-1])
    # Only the box around the matte (alpha > 0) is worked on: farther than the last
    # radius from it every estimate is 0 (nothing of the foreground within reach), and
    # a pixel's estimate reads the image no farther than the sum of the radii, so a
    # margin of twice that keeps the windows' clipping at the box's edges out of reach.
    bounds = grown_bounds((alpha > 0).any(dim=0).any(dim=0), 2 * sum(int(r) for r in radii) + 2)
    if bounds is None:
        return torch.where(alpha >= 1.0, image, torch.zeros_like(image))
    y0, y1, x0, x1 = bounds
    crop_image, crop_alpha = image[..., y0:y1, x0:x1], alpha[..., y0:y1, x0:x1]
    # On a large box each pass's estimates are worked out only where they are read: the
    # last pass's where the alpha is below 1 and within its radius of alpha > 0 (farther
    # out its box means hold no foreground and the estimate is 0; at alpha 1 the image is
    # kept), each earlier pass's within the next pass's radius of that: the same values,
    # 68 -> 60 ms a 2-3 MP photo. Below `SPARSE_PIXELS` finding those pixels costs what
    # it saves.
    needs: list[torch.Tensor | None] = [None] * len(radii)
    if sparse is None:
        sparse = crop_alpha.shape[-2] * crop_alpha.shape[-1] >= SPARSE_PIXELS
    if sparse:
        needs[-1] = (crop_alpha < 1.0) & _reach(crop_alpha > 0, int(radii[-1]))
        for k in range(len(radii) - 2, -1, -1):
            needs[k] = _reach(needs[k + 1], int(radii[k + 1]))
    fg, bg = crop_image, crop_image
    for radius, need in zip(radii, needs):
        fg, bg = _blur_fusion_step(crop_image, fg, bg, crop_alpha, radius, need)
    out = torch.zeros_like(image)
    out[..., y0:y1, x0:x1] = fg
    # keep the input exactly where the matte is opaque
    return torch.where(alpha >= 1.0, image, out)


def cover_resize(background: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Scale `background` (B, C, h, w) to cover `size` (H, W) without distortion, centre-cropped."""
    h, w = background.shape[-2:]
    out_h, out_w = size
    scale = max(out_h / h, out_w / w)
    new_h, new_w = max(out_h, math.ceil(h * scale - 1e-6)), max(out_w, math.ceil(w * scale - 1e-6))
    resized = F.interpolate(background, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return resized[..., top : top + out_h, left : left + out_w].clamp(0.0, 1.0)


def composite(foreground: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``alpha * foreground + (1 - alpha) * background``; shapes broadcast, (B, 3, H, W) out."""
    return torch.lerp(background, foreground, alpha)


def shadow_into_alpha(foreground: torch.Tensor, alpha: torch.Tensor, shadow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A black shadow joined to a transparent output: opacity ``alpha + (1 - alpha) *
    shadow`` and the foreground scaled so that, composited, the vehicle is unchanged and
    the shadow is black. Shapes broadcast ((B, 3|1, H, W) or (3|1, H, W))."""
    out_alpha = alpha + (1 - alpha) * shadow
    return foreground * (alpha / out_alpha.clamp_min(1e-6)), out_alpha
