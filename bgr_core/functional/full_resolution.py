"""The working resolution: stages run on a bounded copy of the photo, and only the final
composite is made at the output size, band by band, from the full-resolution photo.

A 50 MP photo is 600 MB as one float image; every stage keeps a few such layers. Instead,
the pipeline reduces photos (and canvases) over `WORK_PIXELS` to a working copy, the
stages run there unchanged, and `compose_full` builds the output at full size:

- alpha: the guided-filter coefficients of the working matte, with the unedited working
  photo as guide, upsampled and applied to the full-resolution photo (He & Sun's fast
  guided upsampling): the edge follows the full photo, not a blurred copy of the matte;
- colour: the working foreground (edits and decontamination included) upsampled, plus
  the full photo's own detail (what the working copy cannot hold) scaled by `keep`: 1
  where no stage edited the photo, the darkening where the glass was tinted, 0 where a
  stage drew new content (a plate), so no detail of the old content shows through;
- background: white, a custom image sampled at full resolution, or a working layer
  (the generated background) upsampled; the shadow layer upsampled (it is smooth).

Nothing the size of the full canvas is ever held in float: each band of rows is sampled,
composed and written into one uint8 (H, W, C) buffer.

Coordinates: origin at the top-left corner of the top-left pixel, pixel centres at +0.5
(as `bgr_core.functional.geometry`). `Affine1D` pairs map a full-canvas coordinate to a
coordinate on another grid, per axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .compose import shadow_into_alpha
from .geometry import grown_bounds
from .guided_filter import guided_coefficients, guided_coefficients_on_tiles

__all__ = [
    "WORK_PIXELS",
    "BAND_PIXELS",
    "Affine1D",
    "work_scale",
    "area_reduced",
    "edit_keep",
    "guided_layers",
    "compose_full",
]

# photos and canvases above this many pixels are worked on at a reduced copy (about
# 2450 x 1630 px: the matte, glass and plates see no more detail than they use)
WORK_PIXELS = 4_000_000
# pixels per band of the final composite (sets the float temporaries: about 60 MB)
BAND_PIXELS = 1_000_000


@dataclass(frozen=True)
class Affine1D:
    """``u_other = scale * u_full + offset`` along one axis."""

    scale: float
    offset: float

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.scale + self.offset


def work_scale(pixels: float, work_pixels: int | None = WORK_PIXELS) -> float:
    """Linear scale (<= 1) that brings `pixels` down to `work_pixels` (None: no cap)."""
    if work_pixels is None or pixels <= work_pixels:
        return 1.0
    return math.sqrt(work_pixels / pixels)


def area_reduced(array: np.ndarray, scale: float) -> np.ndarray:
    """(H, W, C) uint8 reduced by `scale` (area average); `scale` >= 1 returns it as is."""
    if scale >= 1.0:
        return array
    import cv2

    h, w = array.shape[:2]
    return cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def edit_keep(photo: torch.Tensor, edited: torch.Tensor, glass: torch.Tensor | None, alpha: torch.Tensor,
              tol: float = 2 / 255) -> torch.Tensor:
    """How much of the full photo's fine detail to keep, per working pixel, (1, h, w).

    photo / edited: (3, h, w) in [0, 1], the working photo before and after the stages
    that draw on it (windows, plates); glass: (1, h, w) or None; alpha: (1, h, w).
    1 where nothing changed (within `tol`); inside the glass the tint's darkening
    (luma ratio, at most 1); elsewhere a stage drew new content: 0, one pixel grown so the
    old content's edges cannot show at the border of the new. Scaled by alpha: the soft
    edge takes its colour from the decontaminated foreground, not the old background's
    detail.
    """
    out = torch.zeros(alpha.shape, dtype=torch.promote_types(photo.dtype, alpha.dtype), device=alpha.device)
    # worked out on the box around alpha > 0 grown by a pixel (the growth of what was
    # drawn reaches one pixel): elsewhere the product with alpha is 0 anyway
    box = grown_bounds(alpha[0] > 0, 1)
    if box is None:
        return out
    y0, y1, x0, x1 = box
    photo, edited, alpha = photo[:, y0:y1, x0:x1], edited[:, y0:y1, x0:x1], alpha[:, y0:y1, x0:x1]
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=photo.dtype, device=photo.device)[:, None, None]
    changed = (edited - photo).abs().amax(0, keepdim=True) > tol
    ratio = ((edited * luma).sum(0, keepdim=True) / (photo * luma).sum(0, keepdim=True).clamp_min(1e-3)).clamp(0, 1)
    in_glass = glass[:, y0:y1, x0:x1] > 0 if glass is not None else torch.zeros_like(changed)
    drawn = _grown(changed & ~in_glass)
    keep = torch.where(changed & in_glass, ratio, torch.ones_like(ratio))
    keep = torch.where(drawn, torch.zeros_like(keep), keep)
    out[:, y0:y1, x0:x1] = keep * alpha.clamp(0, 1)
    return out


def guided_layers(photo: torch.Tensor, alpha: torch.Tensor, foreground: torch.Tensor, keep: torch.Tensor,
                  radius: int = 1, eps: float = 1e-4) -> torch.Tensor:
    """The working layers `compose_full` upsamples, stacked (8, h, w) float32.

    photo: (3, h, w) the unedited working photo on the canvas (the guide); alpha:
    (1, h, w); foreground: (3, h, w) the working foreground colour (edits and
    decontamination included); keep: (1, h, w) (`edit_keep`). Channels: the guided
    coefficients A (3) and b (1) of alpha on the photo (`radius` working pixels, `eps`),
    then ``foreground - keep * photo`` (3) and keep (1).
    """
    h, w = alpha.shape[-2:]
    out = torch.zeros(8, h, w, dtype=torch.float32, device=alpha.device)
    # Farther than 2 * radius from any alpha > 0 the coefficients are 0 (no covariance
    # and no mean of the matte in any window that reaches there): they are computed on
    # the box around the matte only, with a margin that keeps the windows clipped at the
    # box's edges out of that reach (the vehicle is a part of a large canvas).
    box = grown_bounds(alpha[0] > 0, 2 * radius + 2)
    if box is not None:
        y0, y1, x0, x1 = box
        a, b = _coefficients(photo[:, y0:y1, x0:x1], alpha[:, y0:y1, x0:x1], radius, eps)
        out[:3, y0:y1, x0:x1] = a
        out[3:4, y0:y1, x0:x1] = b
    torch.mul(keep, photo, out=out[4:7]).neg_().add_(foreground)
    out[7:8] = keep
    return out


# The guided coefficients are worked out in tiles of this side where the matte varies
# (its outline, soft glass), this many at a time; elsewhere they are A = 0, b = the matte.
COEFFICIENT_TILE = 16
_TILES_AT_ONCE = 2048


def _coefficients(photo: torch.Tensor, alpha: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`guided_coefficients` of alpha (1, h, w) on the photo (3, h, w) → A (3, h, w), b
    (1, h, w) float32, worked out only in the tiles where alpha varies (by more than
    1e-6) within 2 * radius of them: in a window of a constant matte the covariance is 0,
    so A = 0 and b is that constant."""
    tile, reach = COEFFICIENT_TILE, 2 * radius
    h, w = alpha.shape[-2:]
    if min(h, w) < tile:
        a, b = guided_coefficients(photo[None].float(), alpha[None].float(), radius, eps)
        return a[0, :, 0], b[0]
    p = alpha.float()
    pool = lambda x: F.max_pool2d(x[None], tile + 2 * reach, stride=tile, padding=reach, ceil_mode=True)[0, 0]  # noqa: E731
    high, low = pool(p), -pool(-p)
    nty, ntx = high.shape
    a = torch.zeros(3, nty * tile, ntx * tile, device=alpha.device)
    b = high.repeat_interleave(tile, 0).repeat_interleave(tile, 1)[None].contiguous()
    ty, tx = torch.nonzero(high - low > 1e-6, as_tuple=True)
    # each tile as its own block of the (padded) canvas: (nty, ntx, C, tile, tile) views
    a_tiles = a.view(3, nty, tile, ntx, tile).permute(1, 3, 0, 2, 4)
    b_tiles = b.view(1, nty, tile, ntx, tile).permute(1, 3, 0, 2, 4)
    for s in range(0, ty.numel(), _TILES_AT_ONCE):
        yy, xx = ty[s : s + _TILES_AT_ONCE], tx[s : s + _TILES_AT_ONCE]
        a_t, b_t = guided_coefficients_on_tiles(photo.float(), p, radius, eps, yy, xx, tile)
        a_tiles[yy, xx] = a_t
        b_tiles[yy, xx] = b_t
    return a[:, :h, :w], b[:, :h, :w]


def _grown(mask: torch.Tensor) -> torch.Tensor:
    """(1, h, w) bool grown by one pixel (3x3), worked on the box around it only: what a
    stage drew (a plate) is a small part of the canvas."""
    out = torch.zeros_like(mask)
    box = grown_bounds(mask[0], 1)
    if box is not None:
        y0, y1, x0, x1 = box
        part = mask[None, :, y0:y1, x0:x1].float()
        out[:, y0:y1, x0:x1] = F.max_pool2d(part, 3, stride=1, padding=1)[0] > 0
    return out


def _rows_read(ys: torch.Tensor, h: int) -> tuple[int, int]:
    """The rows [r0, r1) of an h-row layer that bilinear samples at continuous rows `ys`
    read (with a row of margin); where every sample lies outside, the nearest edge row."""
    r0 = max(0, int(math.floor(float(ys.min()) - 1.5)))
    r1 = min(h, int(math.ceil(float(ys.max()) + 1.5)))
    if r1 <= r0:
        r0, r1 = (0, 1) if float(ys.max()) < 0 else (h - 1, h)
    return r0, r1


def _sample(layer: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Bilinear samples of `layer` (C, h, w) at continuous coordinates: rows `ys` (n,),
    columns `xs` (m,) → (C, n, m) float32. Only the rows the samples touch are read."""
    c, h, w = layer.shape
    r0, r1 = _rows_read(ys, h)
    rows = layer[:, r0:r1].float()
    gy = (ys - r0) / (r1 - r0) * 2 - 1
    gx = xs / w * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    return F.grid_sample(rows[None], grid, mode="bilinear", padding_mode=padding, align_corners=False)[0]


def _source_band(source: np.ndarray, ys: torch.Tensor, xs: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """(3, n, m) float32 in [0, 1] of the (H, W, 3) uint8 photo at continuous `ys` / `xs`;
    outside it 0 (`padding` ``"zeros"``) or the nearest edge (``"border"``). Where the samples fall on whole pixel centres of an unscaled photo the
    pixels are copied, not interpolated."""
    h, w = source.shape[:2]
    ystep = float(ys[1] - ys[0]) if ys.numel() > 1 else 1.0
    xstep = float(xs[1] - xs[0]) if xs.numel() > 1 else 1.0
    y0, x0 = float(ys[0]) - 0.5, float(xs[0]) - 0.5
    whole = abs(ystep - 1) < 1e-6 and abs(xstep - 1) < 1e-6 and abs(y0 - round(y0)) < 1e-4 and abs(x0 - round(x0)) < 1e-4
    inside = 0 <= round(y0) and round(y0) + ys.numel() <= h and 0 <= round(x0) and round(x0) + xs.numel() <= w
    if whole and (padding == "zeros" or inside):
        iy, ix = round(y0), round(x0)
        out = torch.zeros(3, ys.numel(), xs.numel())
        sy0, sx0 = max(0, iy), max(0, ix)
        sy1, sx1 = min(h, iy + ys.numel()), min(w, ix + xs.numel())
        if sy1 > sy0 and sx1 > sx0:
            block = torch.from_numpy(source[sy0:sy1, sx0:sx1]).permute(2, 0, 1).float().div_(255.0)
            out[:, sy0 - iy : sy1 - iy, sx0 - ix : sx1 - ix] = block
        return out
    r0, r1 = _rows_read(ys, h)
    if padding == "zeros" and (float(ys.max()) < -0.5 or float(ys.min()) > h + 0.5):
        return torch.zeros(3, ys.numel(), xs.numel())
    rows = torch.from_numpy(source[r0:r1]).permute(2, 0, 1).float().div_(255.0)
    return _sample(rows, ys - r0, xs, padding=padding)


def compose_full(
    source: np.ndarray,
    to_source: tuple[Affine1D, Affine1D],
    layers: torch.Tensor,
    to_work: tuple[Affine1D, Affine1D],
    size: tuple[int, int],
    *,
    shadow: torch.Tensor | None = None,
    background: str | torch.Tensor | np.ndarray = "white",
    to_background: tuple[Affine1D, Affine1D] | None = None,
    band_pixels: int = BAND_PIXELS,
) -> np.ndarray:
    """The final composite at full size, (H, W, 3) or (H, W, 4) uint8.

    source: (H0, W0, 3) uint8, the full-resolution photo; to_source: (y, x) maps from a
    full-canvas coordinate to the source's (where the photo is scaled down by more than
    1.5x on the canvas, pass a source reduced beforehand: samples are bilinear);
    layers: `guided_layers` on the working canvas, (8, h, w); to_work: (y, x) maps to
    the working canvas; size: the full canvas (H, W). shadow: (1, h, w) on the working
    canvas or None. background: ``"white"``, ``"transparent"`` (RGBA out: the shadow
    joins the alpha as black), a working layer (3, h, w) to upsample (a generated
    background), or, with `to_background`, an (hb, wb, 3) uint8 image sampled at full
    resolution (a custom background; the maps place it on the canvas; reduce it first
    where it is scaled down by more than 1.5x).
    """
    out_h, out_w = size
    transparent = isinstance(background, str) and background == "transparent"
    out = np.empty((out_h, out_w, 4 if transparent else 3), dtype=np.uint8)
    # the shadow is sampled on its own: joined to the layers it cost a copy of all of them
    shadow_f = shadow.float() if shadow is not None else None
    image_bg, layer_bg = None, None
    if isinstance(background, np.ndarray):
        if to_background is None:
            raise ValueError("a background image needs `to_background`")
        image_bg = background
    elif isinstance(background, torch.Tensor):
        layer_bg = background.float()
    rows = max(1, band_pixels // max(out_w, 1))
    xs_full = torch.arange(out_w, dtype=torch.float64) + 0.5
    xs_src, xs_work = to_source[1](xs_full).float(), to_work[1](xs_full).float()
    xs_bg = to_background[1](xs_full).float() if image_bg is not None else None
    ys_all = torch.arange(out_h, dtype=torch.float64) + 0.5
    # Over an opaque background only the box that the alpha's coefficients and the
    # shadow reach needs the photo and the layers: elsewhere alpha and shade are 0 and
    # the output is the background itself (most of a dealer photo's canvas). A
    # transparent output keeps the foreground's colour everywhere, so it samples all.
    plain = None
    if transparent:
        row_live = torch.ones(out_h, dtype=torch.bool)
        c0, c1 = 0, out_w
    else:
        live = _live(layers[:4], shadow)
        row_live = _reaches(to_work[0](ys_all).float(), live.any(1))
        col_live = torch.nonzero(_reaches(xs_work, live.any(0))).flatten()
        c0, c1 = (int(col_live[0]), int(col_live[-1]) + 1) if col_live.numel() else (0, 0)
        if c1 > c0:
            plain = _Plain.of(layers, live)
    # over white only the live box is composed: the rest of the canvas is set once
    white = not transparent and image_bg is None and layer_bg is None
    if white:
        out.fill(255)
    for top in range(0, out_h, rows):
        ys_full = ys_all[top : min(out_h, top + rows)]
        if transparent or white:
            bg = None
        elif image_bg is not None:
            bg = _source_band(image_bg, to_background[0](ys_full).float(), xs_bg, padding="border")
        else:
            bg = _sample(layer_bg, to_work[0](ys_full).float(), xs_work)
        band = bg
        live_rows = torch.nonzero(row_live[top : top + ys_full.numel()]).flatten()
        if live_rows.numel() and c1 > c0:
            r0, r1 = int(live_rows[0]), int(live_rows[-1]) + 1
            ys = ys_full[r0:r1]
            photo = _source_band(source, to_source[0](ys).float(), xs_src[c0:c1])
            ys_work = to_work[0](ys).float()
            shade = _sample(shadow_f, ys_work, xs_work[c0:c1]).clamp(0, 1) if shadow_f is not None else None
            if transparent:
                alpha, fg = _alpha_fg(_sample(layers, ys_work, xs_work[c0:c1]), photo)
                if shade is not None:
                    fg, alpha = shadow_into_alpha(fg, alpha, shade)
                inner = torch.cat([fg, alpha], dim=0)
            else:
                if white:
                    under = (1 - shade).expand(3, -1, -1) if shade is not None else torch.ones(3, r1 - r0, c1 - c0)
                else:
                    under = bg[:, r0:r1, c0:c1]
                    if shade is not None:
                        under = under * (1 - shade)
                inner = plain.compose(layers, photo, under, ys_work, xs_work[c0:c1])
            if white:
                _write(out[top + r0 : top + r1, c0:c1], inner)
                continue
            if band is None:  # transparent: every pixel was sampled
                band = inner
            else:
                band[:, r0:r1, c0:c1] = inner
        if band is not None:
            _write(out[top : top + band.shape[1]], band)
    return out


def _write(out: np.ndarray, values: torch.Tensor) -> None:
    """(C, n, m) float values in [0, 1] (clamped, changed in place) into `out`, an
    (n, m, C) uint8 view."""
    values = values.clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8)
    # torch's strided copy into the (rows, W, C) block: about 2.4x numpy's
    torch.from_numpy(out).copy_(values.permute(1, 2, 0))


def _alpha_fg(sampled: torch.Tensor, photo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layers (8, ...) sampled at some pixels and the photo (3, ...) there → their
    alpha (1, ...) and foreground colour (3, ...), each clamped to [0, 1]."""
    a, b, base, keep = sampled[0:3], sampled[3:4], sampled[4:7], sampled[7:8]
    alpha = ((a * photo).sum(0, keepdim=True) + b).clamp_(0, 1)
    return alpha, (base + keep * photo).clamp_(0, 1)


@dataclass(frozen=True)
class _Plain:
    """Where an opaque composite needs none of the working layers: (h, w) bool maps of
    the working pixels whose whole 3x3 neighbourhood (every bilinear tap of a full-size
    pixel near them) is the unedited opaque vehicle (alpha 1 whatever the photo, base 0,
    keep 1: the output is the full photo) or background (alpha 0 whatever the photo: the
    output is what lies under the vehicle), within `TOL`. Most of a vehicle is the first;
    only the soft edge, the tinted glass and drawn content are sampled."""

    vehicle: torch.Tensor
    background: torch.Tensor

    # a level moves by at most a quarter; the guided coefficients of a flat matte over a
    # flat photo are themselves that far from 0 (float32 cancellation over eps = 1e-4)
    TOL = 1e-3

    @classmethod
    def of(cls, layers: torch.Tensor, live: torch.Tensor) -> "_Plain":
        """layers: `guided_layers` (8, h, w); live: (h, w) bool (`_live`), outside which
        both maps stay False (the composite does not read there)."""
        h, w = live.shape
        vehicle = torch.zeros(h, w, dtype=torch.bool)
        background = torch.zeros(h, w, dtype=torch.bool)
        box = grown_bounds(live, 1)
        if box is not None:
            y0, y1, x0, x1 = box
            part = layers[:, y0:y1, x0:x1]
            # the alpha A . photo + b over any photo in [0, 1] lies between these
            low = part[3] + part[:3].clamp(max=0).sum(0)
            high = part[3] + part[:3].clamp(min=0).sum(0)
            opaque = (low >= 1 - cls.TOL) & ((part[7] - 1).abs() <= cls.TOL)
            opaque &= part[4:7].abs().amax(0) <= cls.TOL
            vehicle[y0:y1, x0:x1] = _eroded(opaque)
            background[y0:y1, x0:x1] = _eroded(high <= cls.TOL)
        return cls(vehicle, background)

    def compose(self, layers: torch.Tensor, photo: torch.Tensor, under: torch.Tensor, ys: torch.Tensor,
                xs: torch.Tensor) -> torch.Tensor:
        """The opaque composite (3, n, m) of the full-size pixels at working coordinates
        rows `ys` (n,) and columns `xs` (m,), given the photo and what lies under the
        vehicle there (each (3, n, m)): plain pixels from those, the others through the
        layers (`layers` (8, h, w), sampled at those pixels only)."""
        h, w = self.vehicle.shape
        iy = ys.floor().long().clamp_(0, h - 1)
        ix = xs.floor().long().clamp_(0, w - 1)
        opaque = self.vehicle[iy][:, ix]
        mixed = ~(opaque | self.background[iy][:, ix])
        out = torch.where(opaque, photo, under)
        rows, cols = torch.nonzero(mixed, as_tuple=True)
        if rows.numel():
            sampled = _sample_points(layers, ys[rows], xs[cols])
            alpha, fg = _alpha_fg(sampled, photo[:, rows, cols])
            out[:, rows, cols] = torch.lerp(under[:, rows, cols], fg, alpha)
        return out


def _eroded(mask: torch.Tensor) -> torch.Tensor:
    """(h, w) bool → True where the whole 3x3 neighbourhood (within the array) is True:
    two passes of shifted ANDs (a float min-pool over a 4 MP canvas costs 10x more)."""
    rows = mask.clone()
    rows[:, 1:] &= mask[:, :-1]
    rows[:, :-1] &= mask[:, 1:]
    out = rows.clone()
    out[1:] &= rows[:-1]
    out[:-1] &= rows[1:]
    return out


def _sample_points(layer: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of `layer` (C, h, w) at the points (`ys`[k], `xs`[k]) (continuous
    working coordinates, (N,) each; border padding) → (C, N) float32."""
    c, h, w = layer.shape
    r0, r1 = _rows_read(ys, h)
    rows = layer[:, r0:r1].float()
    grid = torch.stack([xs / w * 2 - 1, (ys - r0) / (r1 - r0) * 2 - 1], dim=-1)[None, None]
    return F.grid_sample(rows[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0]


def _live(coefficients: torch.Tensor, shadow: torch.Tensor | None, tol: float = 1e-4) -> torch.Tensor:
    """(h, w) bool: where the working alpha's guided coefficients A, b (4, h, w) or the
    shadow (1, h, w) can move the output; elsewhere the composite shows the background
    alone. Below `tol` (the box filters' running sums leave ~1e-8 far from the car) the
    alpha (at most sum|A| + |b|) and the shade move a level by at most 0.03."""
    live = coefficients.abs().sum(0) > tol
    if shadow is not None:
        live |= shadow[0] > tol
    return live


def _reaches(u: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """(n,) bool: which full-canvas coordinates `u` (on a working axis, centres at +0.5)
    read a live working index through their two bilinear taps (border padding clamps
    beyond the first and last index)."""
    idx = torch.nonzero(live).flatten()
    if idx.numel() == 0:
        return torch.zeros(u.numel(), dtype=torch.bool)
    lo, hi = int(idx[0]), int(idx[-1])
    low = -math.inf if lo == 0 else lo - 1.0
    high = math.inf if hi == live.numel() - 1 else hi + 2.0
    pos = u - 0.5  # index space: taps floor(pos) and floor(pos) + 1
    return (pos > low) & (pos < high)
