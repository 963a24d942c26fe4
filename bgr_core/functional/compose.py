"""Compositing: foreground colour estimation (decontamination), cover resize, blending.

All functions take and return float tensors in [0, 1], (B, C, H, W), and follow the
input's device and dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .geometry import grown_bounds
from .guided_filter import box_filter

__all__ = ["estimate_foreground", "cover_resize", "composite", "blur_fusion_radii", "shadow_into_alpha"]


def blur_fusion_radii(height: int, width: int) -> tuple[int, int]:
    """Radii of the coarse and fine blur-fusion passes for an (H, W) canvas.

    Germer et al. blur with 90 then 6 pixel wide boxes (radii 45 and 3) on photos of
    about 2 megapixels; the coarse radius scales with the diagonal so small and huge
    images behave alike.
    """
    diag = math.hypot(height, width)
    return max(6, round(diag * 45 / 2000)), max(2, round(diag * 3 / 2000))


def _blur_fusion_step(
    image: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, alpha: torch.Tensor, radius: int
) -> tuple[torch.Tensor, torch.Tensor]:
    eps = 1e-5
    blurred_alpha = box_filter(alpha, radius)
    blurred_fg = box_filter(fg * alpha, radius) / (blurred_alpha + eps)
    blurred_bg = box_filter(bg * (1.0 - alpha), radius) / ((1.0 - blurred_alpha) + eps)
    residual = image - alpha * blurred_fg - (1.0 - alpha) * blurred_bg
    fg = (blurred_fg + alpha * residual).clamp(0.0, 1.0)
    return fg, blurred_bg


def estimate_foreground(
    image: torch.Tensor, alpha: torch.Tensor, radii: tuple[int, ...] | None = None
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
    fg, bg = crop_image, crop_image
    for radius in radii:
        fg, bg = _blur_fusion_step(crop_image, fg, bg, crop_alpha, radius)
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
