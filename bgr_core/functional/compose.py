"""Compositing: foreground colour estimation (decontamination), cover resize, blending.

All functions take and return float tensors in [0, 1], (B, C, H, W), and follow the
input's device and dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .geometry import grown_bounds
from .guided_filter import box_filter, box_sum

__all__ = ["TILE", "TILES_AT_ONCE", "estimate_foreground", "cover_resize", "composite", "blur_fusion_radii", "shadow_into_alpha"]


def blur_fusion_radii(height: int, width: int) -> tuple[int, int]:
    """Radii of the coarse and fine blur-fusion passes for an (H, W) canvas.

    Germer et al. blur with 90 then 6 pixel wide boxes (radii 45 and 3) on photos of
    about 2 megapixels; the coarse radius scales with the diagonal so small and huge
    images behave alike.
    """
    diag = math.hypot(height, width)
    return max(6, round(diag * 45 / 2000)), max(2, round(diag * 3 / 2000))


# Blur fusion works out its estimates in square tiles of this side that hold soft-edge
# pixels (the rest of the canvas is the image or nothing), this many tiles at a time so
# that a matte soft all over stays within bounded memory.
TILE = 16
TILES_AT_ONCE = 2048
# Within this of 0 or 1 a matte value counts as 0 or 1: resampling a matte that is 1
# inside leaves 1 - 1 ulp in many pixels, which is opaque in any output.
_SURE = 1e-6


def _correct(image, alpha, blurred_fg, blurred_bg):
    """Blur fusion's foreground: the blurred one corrected by the compositing residual
    (broadcasting shapes)."""
    residual = image - alpha * blurred_fg - (1.0 - alpha) * blurred_bg
    return (blurred_fg + alpha * residual).clamp(0.0, 1.0)


def _blurred(mean_alpha, mean_fg, mean_bg, eps: float = 1e-5):
    """The blurred foreground and background from the window means of alpha, F alpha
    and B (1 - alpha)."""
    return mean_fg / (mean_alpha + eps), mean_bg / ((1.0 - mean_alpha) + eps)


def _coarse_factor(radius: int) -> int:
    """The side of the blocks the coarse pass runs on: about half the square root of its
    radius (1 below 9 px, 2 at 0.3 MP, 4 at 3 MP, 5 at 12 MP), so a block is 2-6 % of
    the pass's window and the pass costs 1/factor^2 of the full-size one."""
    return max(1, round(radius**0.5 / 2))


def _coarse_pass(image: torch.Tensor, alpha: torch.Tensor, radius: int) -> tuple[torch.Tensor, int]:
    """The first pass's blurred foreground and background, (1, 6, h, w) at 1/factor of
    (1, 3|1, H, W) `image` / `alpha` (`_coarse_factor`), and the factor."""
    factor = _coarse_factor(radius)
    if factor == 1:
        i_a, i, a = image * alpha, image, alpha
    else:
        # strips of rows, so that image * alpha never exists at full size (memory-bound);
        # the blocks cut by the far edges average what they hold (ceil_mode)
        strip = factor * max(1, 64 // factor)
        rows = range(0, image.shape[-2], strip)
        means = torch.cat([F.avg_pool2d(torch.cat([image[..., y:y + strip, :] * alpha[..., y:y + strip, :],
                                                   image[..., y:y + strip, :], alpha[..., y:y + strip, :]], 1),
                                        factor, ceil_mode=True) for y in rows], dim=-2)
        i_a, i, a = means[:, 0:3], means[:, 3:6], means[:, 6:7]
        radius = max(1, round(radius / factor))
    blurred = _blurred(box_filter(a, radius), box_filter(i_a, radius), box_filter(i - i_a, radius))
    return torch.cat(blurred, dim=1), factor


def _sample(maps: torch.Tensor, factor: int, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) block-mean maps read bilinearly at full-size rows `ys` (N, P) and
    columns `xs` (N, P) → (N, C, P, P); block j's mean sits at the centre of its pixels."""
    if factor == 1:
        return maps[0][:, ys[:, :, None], xs[:, None, :]].transpose(0, 1)
    h, w = maps.shape[-2:]
    gy = (ys.to(maps.dtype) + 0.5) / (factor * h) * 2 - 1
    gx = (xs.to(maps.dtype) + 0.5) / (factor * w) * 2 - 1
    n, p = ys.shape
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    out = F.grid_sample(maps, grid.reshape(1, n * p, p, 2), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.reshape(maps.shape[1], n, p, p).transpose(0, 1)


def _fine_pass(image, alpha, coarse, factor, radius, ty, tx) -> torch.Tensor:
    """Both passes' estimates on the tiles (`ty`, `tx`: (N,) tile rows and columns) of the
    (1, 3|1, H, W) `image` / `alpha`: the coarse pass read from its maps, the fine pass's
    window means over each tile grown by `radius` (pixels outside the canvas do not
    count, as in `box_filter`). Returns (N, 3, TILE, TILE)."""
    h, w = alpha.shape[-2:]
    dev = alpha.device
    offsets = torch.arange(TILE + 2 * radius, device=dev) - radius
    ys, xs = ty[:, None] * TILE + offsets, tx[:, None] * TILE + offsets  # (N, P)
    inside = (((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :])[:, None]
    ys, xs = ys.clamp(0, h - 1), xs.clamp(0, w - 1)
    patch = lambda x: x[0][:, ys[:, :, None], xs[:, None, :]].transpose(0, 1)  # noqa: E731
    im, a = patch(image), patch(alpha)
    blurred = _sample(coarse, factor, ys, xs)
    fg1, bg1 = _correct(im, a, blurred[:, :3], blurred[:, 3:]), blurred[:, 3:]
    stack = torch.cat([a, fg1 * a, bg1 * (1.0 - a), torch.ones_like(a)], dim=1) * inside.to(a.dtype)
    core = slice(radius, radius + TILE)
    sums = box_sum(stack, radius)[..., core, core]  # (N, 8, TILE, TILE)
    means = sums[:, :7] / sums[:, 7:]
    return _correct(im[..., core, core], a[..., core, core], *_blurred(means[:, 0:1], means[:, 1:4], means[:, 4:7]))


def estimate_foreground(
    image: torch.Tensor, alpha: torch.Tensor, radii: tuple[int, int] | None = None
) -> torch.Tensor:
    """Foreground colours F with ``image ≈ alpha * F + (1 - alpha) * B`` (no background halo).

    Approximate fast foreground colour estimation by blur fusion (Germer, Uelwer,
    Conrad, Harmeling, ICIP 2021): box-blurred foreground and background estimates,
    corrected by the compositing residual, coarse radius first then fine. Where
    ``alpha`` is 1 (within 1e-6) the result is the image, where it is 0 it is 0; in
    the soft edge the old background's colour is taken out, so no fringe of it remains
    on a new background.

    Only the soft edge is worked on: the coarse pass on block means of 2-6 % of its
    window (the full-size pass below a radius of 9; composited on white within 2 levels
    of 255 of the full-size passes on 0.3-3 MP photos), the fine pass in the
    `TILE`-pixel tiles that hold soft-edge pixels.

    Args:
        image: (B, 3, H, W) in [0, 1].
        alpha: (B, 1, H, W) in [0, 1].
        radii: box radii of the coarse and the fine pass; default `blur_fusion_radii`
            of the canvas.
    Returns:
        (B, 3, H, W) in [0, 1].
    """
    if radii is None:
        radii = blur_fusion_radii(image.shape[-2], image.shape[-1])
    coarse_r, fine_r = int(radii[0]), int(radii[-1])
    zero = torch.zeros((), dtype=image.dtype, device=image.device)
    # window sums in at least float32 (a half-precision cumulative sum would lose them)
    work = torch.promote_types(image.dtype, torch.float32)
    out = torch.where(alpha >= 1.0 - _SURE, image, zero)
    for b in range(image.shape[0]):
        # the box around the matte: farther than the coarse radius from it no window
        # holds foreground, and the margin keeps the box's edges out of every window
        # that a soft pixel's estimate reads (at most the sum of the radii away)
        bounds = grown_bounds(alpha[b, 0] > 0, 2 * (coarse_r + fine_r) + 2)
        if bounds is None:
            continue
        y0, y1, x0, x1 = bounds
        crop_image, crop_alpha = image[b:b + 1, :, y0:y1, x0:x1].to(work), alpha[b:b + 1, :, y0:y1, x0:x1].to(work)
        soft = (crop_alpha[0, 0] > _SURE) & (crop_alpha[0, 0] < 1.0 - _SURE)
        h, w = soft.shape
        tiles = F.max_pool2d(soft[None, None].to(work), TILE, ceil_mode=True)[0, 0] > 0
        ty, tx = torch.nonzero(tiles, as_tuple=True)
        if ty.numel() == 0:
            continue
        coarse, factor = _coarse_pass(crop_image, crop_alpha, coarse_r)
        span = torch.arange(TILE, device=image.device)
        for i in range(0, ty.numel(), TILES_AT_ONCE):
            cy, cx = ty[i:i + TILES_AT_ONCE], tx[i:i + TILES_AT_ONCE]
            fg = _fine_pass(crop_image, crop_alpha, coarse, factor, fine_r, cy, cx)
            rows = (cy[:, None, None] * TILE + span[None, :, None]).expand(-1, TILE, TILE)
            cols = (cx[:, None, None] * TILE + span[None, None, :]).expand(-1, TILE, TILE)
            keep = (rows < h) & (cols < w)
            keep &= soft[rows.clamp(max=h - 1), cols.clamp(max=w - 1)]
            out[b, :, y0 + rows[keep], x0 + cols[keep]] = fg.transpose(0, 1)[:, keep].to(out.dtype)
    return out


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
