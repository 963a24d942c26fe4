"""Window correction as pure tensor functions: what the glass shows after the tint or
with the new background seen through it.

All work on (B, C, H, W) tensors on the input's device and dtype, and only on the
bounding box of the glass: pixels where ``glass == 0`` are returned bit-identical.

- `glass_tone`: a dark neutral glass colour with a vertical gradient per window;
- `glass_structure`: the fine structure of what the glass shows (seats, headrests, the
  steering wheel, reflections): luminance minus its local mean inside the glass;
- `tint_glass`: the glass's colour and brightness replaced by the tone, its structure
  kept at a reduced contrast, so tinted glass reads as darker glass with the interior
  behind it, not as an opaque slab;
- `see_through_alpha`: the matte lowered inside the glass, so a new background shows
  through it, dimmed by the tinted glass in front.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

from .guided_filter import box_filter

__all__ = [
    "GLASS_TOP",
    "GLASS_BOTTOM",
    "glass_tone",
    "crisp_glass",
    "glass_structure",
    "tint_glass",
    "see_through_alpha",
]


GLASS_TOP = (0.25, 0.27, 0.30)
GLASS_BOTTOM = (0.05, 0.055, 0.065)


def glass_tone(
    glass: Tensor,
    top: tuple[float, float, float] = GLASS_TOP,
    bottom: tuple[float, float, float] = GLASS_BOTTOM,
    *,
    level: float = 0.5,
    gamma: float = 0.8,
) -> Tensor:
    """A clean glass colour, (B, 3, H, W): `top` at the top edge of each window, `bottom`
    at its lower edge (per column, from where ``glass >= level``), smooth in between.

    Columns without glass get the mid colour (they are masked out by the caller anyway).
    """
    b, _, h, w = glass.shape
    dtype = glass.dtype if glass.is_floating_point() else torch.float32
    work = torch.promote_types(dtype, torch.float32)
    mask = glass[:, 0] >= level
    rows = torch.arange(h, device=glass.device, dtype=work)[None, :, None].expand(b, h, w)
    big = torch.tensor(float(h), device=glass.device, dtype=work)
    first = torch.where(mask, rows, big).amin(1)  # (B, W)
    last = torch.where(mask, rows, -big).amax(1)
    has = last >= first
    # smooth the window outline along x so the gradient has no jaggies (over ~2 % of the
    # glass's width, so that a crop around the glass gives the same tone)
    k = max(1, int(has.sum(1).max()) // 50)
    weight = has.to(work)[:, None]
    def smooth(x: Tensor) -> Tensor:
        num = F.avg_pool1d((x * weight[:, 0])[:, None], 2 * k + 1, 1, k, count_include_pad=False)
        den = F.avg_pool1d(weight, 2 * k + 1, 1, k, count_include_pad=False)
        return (num / den.clamp_min(1e-6))[:, 0]
    first, last = smooth(torch.where(has, first, 0)), smooth(torch.where(has, last, 0))
    span = (last - first).clamp_min(1.0)
    t = ((rows - first[:, None]) / span[:, None]).clamp(0, 1) ** gamma
    t = torch.where(has[:, None].expand(b, h, w), t, torch.full_like(t, 0.5))[:, None]
    top_t = torch.tensor(top, device=glass.device, dtype=work).view(1, 3, 1, 1)
    bottom_t = torch.tensor(bottom, device=glass.device, dtype=work).view(1, 3, 1, 1)
    return torch.lerp(top_t, bottom_t, t).to(dtype)


def _glass_box(glass: Tensor) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) around every pixel with ``glass > 0`` over the batch, or None."""
    any_glass = (glass > 0).flatten(0, 1).any(0)  # (H, W)
    rows = torch.nonzero(any_glass.any(1))[:, 0]
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(any_glass.any(0))[:, 0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crisp_glass(glass: Tensor, low: float = 0.2, high: float = 0.8) -> Tensor:
    """The glass weight with a steeper edge: smoothstep of `glass` between `low` and
    `high` (0 stays 0, 1 stays 1), so the tint follows the window frame instead of
    fading over several pixels onto pillars and seals."""
    t = ((glass - low) / (high - low)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def glass_structure(image: Tensor, glass: Tensor, radius: int | None = None) -> Tensor:
    """Fine structure of what the glass shows, (B, 1, H, W): the luminance minus its mean
    over the glass within `radius` pixels (a box mean normalised by the glass, so pillars
    and body around the window do not leak in). Default radius: 4 % of the glass box's
    larger side. 0 where there is no glass."""
    box = _glass_box(glass)
    out = torch.zeros_like(glass[:, :1], dtype=image.dtype)
    if box is None:
        return out
    y0, y1, x0, x1 = box
    g = (glass[:, :1, y0:y1, x0:x1] > 0).to(torch.float32)
    img = image[:, :, y0:y1, x0:x1].to(torch.float32)
    lum = (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]) * g
    r = radius if radius is not None else max(2, round(0.04 * max(y1 - y0, x1 - x0)))
    mean = box_filter(lum, r) / box_filter(g, r).clamp_min(1e-6)
    out[:, :, y0:y1, x0:x1] = ((lum - mean) * g).to(image.dtype)
    return out


def tint_glass(
    image: Tensor,
    glass: Tensor,
    *,
    strength: float = 1.0,
    top: tuple[float, float, float] = GLASS_TOP,
    bottom: tuple[float, float, float] = GLASS_BOTTOM,
    detail: Tensor | float = 0.0,
    tone: Tensor | None = None,
) -> Tensor:
    """The image with its glass tinted, (B, 3, H, W).

    ``target = tone + detail * glass_structure(image, glass)`` and
    ``out = lerp(image, target, crisp_glass(glass) * strength)``: the colour and the
    brightness of what the glass showed become the tone (B, 3, H, W; default
    ``glass_tone(glass, top, bottom)``), its fine structure stays at `detail` of its
    contrast (a float or (B, 1, H, W) in [0, 1]; 0: one even tone). Pixels where
    ``glass == 0`` are returned bit-identical; the work is done on the glass's bounding
    box only.
    """
    box = _glass_box(glass)
    if box is None:
        return image.clone()
    y0, y1, x0, x1 = box
    g = glass[..., y0:y1, x0:x1]
    img = image[..., y0:y1, x0:x1]
    tone = glass_tone(g, top, bottom) if tone is None else tone[..., y0:y1, x0:x1]
    target = tone.to(image.dtype).expand_as(img)
    if not (isinstance(detail, (int, float)) and detail == 0):
        gain = detail if isinstance(detail, (int, float)) else detail[..., y0:y1, x0:x1].to(image.dtype)
        structure = glass_structure(img, g)
        target = (target + gain * structure).clamp(0, 1)
    weight = (crisp_glass(g.to(image.dtype)) * float(strength)).clamp(0, 1)
    tinted = torch.lerp(img, target, weight.expand_as(img))
    out = image.clone()
    out[..., y0:y1, x0:x1] = torch.where(g > 0, tinted, img)
    return out


def see_through_alpha(alpha: Tensor, glass: Tensor, opacity: float | Tensor = 0.4) -> Tensor:
    """The matte with its glass made semi-transparent: ``lerp(alpha, opacity,
    crisp_glass(glass))``.

    `opacity`: the glass's alpha, a float or (B, 1, H, W) (e.g. higher where the glass
    shows the interior, which stands in front of the new background). Inside fully
    detected glass the alpha becomes `opacity` (also where the matte had a hole); pixels
    where ``glass == 0`` are returned bit-identical.
    """
    target = torch.full_like(alpha, float(opacity)) if isinstance(opacity, (int, float)) else opacity.to(alpha.dtype)
    out = torch.lerp(alpha, target, crisp_glass(glass.to(alpha.dtype)))
    return torch.where(glass > 0, out, alpha)
