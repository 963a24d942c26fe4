"""Licence-plate overlay: appearance matching, a blank-plate generator, and the overlay of
a replacement into a plate's quad (its geometry and warps: `bgr_core.functional.quad_warp`,
re-exported here).

Conventions: images are float tensors in [0, 1], channels first; a plate is a
quadrilateral ``quad`` (4, 2) of (x, y) pixel points, clockwise from the top-left corner,
with the origin at the top-left corner of the top-left pixel (pixel centres at +0.5, as
in `bgr_core.functional.geometry`). Per-plate functions take one image (C, H, W) and one
quad; dense work is torch and follows the input's device, the result has the input's
dtype (computation is in float32, float64 stays float64). `quad_iou` and `order_quad`
also accept numpy arrays (they are used by benchmarks and the classical detector).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .quad_warp import (apply_homography, get_perspective_transform, letterbox, order_quad, quad_aspect, quad_box,
                        quad_iou, quad_mask, warp_into_quad, work_dtype)

__all__ = [
    "order_quad",
    "quad_iou",
    "quad_aspect",
    "quad_box",
    "get_perspective_transform",
    "apply_homography",
    "warp_into_quad",
    "letterbox",
    "luminance",
    "estimate_plate_colour",
    "estimate_edge_sigma",
    "plate_shading",
    "blank_plate",
    "BLANK_COLOUR",
    "overlay_plate",
]

_LUMA = (0.299, 0.587, 0.114)


# a blank plate's paint: white with a hint of warmth, as real plates are
BLANK_COLOUR = (0.95, 0.95, 0.93)


# -- quadrilaterals ---------------------------------------------------------------------


# -- dense helpers --------------------------------------------------------------------


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (..., 1, H, W) of an RGB image (..., 3, H, W)."""
    w = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image[..., :3, :, :] * w).sum(-3, keepdim=True)


def _rounded_rect_alpha(h: int, w: int, radius: float, dtype, device, supersample: int = 4) -> torch.Tensor:
    """(1, h, w) anti-aliased coverage of a rectangle with corner `radius` (pixels)."""
    s = supersample
    ys = (torch.arange(h * s, dtype=dtype, device=device) + 0.5) / s
    xs = (torch.arange(w * s, dtype=dtype, device=device) + 0.5) / s
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    r = max(0.0, min(radius, h / 2, w / 2))
    cx = xx.clamp(r, w - r)
    cy = yy.clamp(r, h - r)
    inside = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r + 1e-9).to(dtype)
    return F.avg_pool2d(inside[None, None], s)[0]


def blank_plate(
    aspect: float,
    height: int = 96,
    colour: Sequence[float] = (0.93, 0.93, 0.91),
    border: Sequence[float] | None = (0.12, 0.12, 0.12),
    border_width: float = 0.035,
    corner_radius: float = 0.08,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A clean plate without text, RGBA (4, height, round(height * aspect)).

    `colour` fills it; a thin `border` line (None for none) of `border_width` × height
    runs inside its edge, a small inset away; corners are rounded with `corner_radius` ×
    height (0 for square corners), transparent outside the rounding (anti-aliased).
    """
    h = max(8, int(height))
    w = max(8, int(round(h * aspect)))
    col = torch.as_tensor(colour, dtype=dtype, device=device).reshape(3, 1, 1)
    rgb = col.expand(3, h, w).clone()
    radius = corner_radius * h
    alpha = _rounded_rect_alpha(h, w, radius, dtype, device)
    if border is not None and border_width > 0:
        bw = max(1.0, border_width * h)
        inset = max(1, int(0.6 * bw))
        pad = inset + max(1, int(round(bw)))
        # the line is the difference of two rounded rectangles, each placed on the full canvas
        outer = torch.zeros(1, h, w, dtype=dtype, device=device)
        outer[:, inset : h - inset, inset : w - inset] = _rounded_rect_alpha(
            h - 2 * inset, w - 2 * inset, max(0.0, radius - inset), dtype, device)
        inner = torch.zeros(1, h, w, dtype=dtype, device=device)
        if min(h, w) - 2 * pad > 0:
            inner[:, pad : h - pad, pad : w - pad] = _rounded_rect_alpha(
                h - 2 * pad, w - 2 * pad, max(0.0, radius - pad), dtype, device)
        ring = (outer - inner).clamp(0, 1)
        bcol = torch.as_tensor(border, dtype=dtype, device=device).reshape(3, 1, 1)
        rgb = rgb * (1 - ring) + bcol * ring
    return torch.cat([rgb, alpha], dim=0)


# -- appearance of the original plate ----------------------------------------------------


def _region(image: torch.Tensor, quad: torch.Tensor, shrink: float) -> torch.Tensor | None:
    """Pixels (N, C) of `image` (C, H, W) inside `quad` shrunk by `shrink`."""
    box = quad_box(quad, image.shape[-2:])
    if box is None:
        return None
    x0, y0, x1, y1 = box
    mask = quad_mask(quad.to(image.device), box, shrink)
    if int(mask.sum()) < 4:
        mask = quad_mask(quad.to(image.device), box, 0.0)
        if int(mask.sum()) < 1:
            return None
    return image[:, y0:y1, x0:x1][:, mask].T


def _two_class_split(lum: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the larger of two luminance classes (Otsu split) among `lum` (N,)."""
    v = lum.float().clamp(0, 1)
    hist = torch.histc(v, bins=64, min=0.0, max=1.0)
    p = hist / hist.sum().clamp_min(1)
    centres = (torch.arange(64, dtype=torch.float32, device=v.device) + 0.5) / 64
    w0 = torch.cumsum(p, 0)
    mu = torch.cumsum(p * centres, 0)
    mu_t = mu[-1]
    between = (mu_t * w0 - mu) ** 2 / (w0 * (1 - w0)).clamp_min(1e-9)
    t = float(centres[int(torch.argmax(between))]) + 0.5 / 64
    low = v < t
    return low if int(low.sum()) * 2 > v.numel() else ~low


def estimate_plate_colour(image: torch.Tensor, quad: torch.Tensor, shrink: float = 0.15) -> torch.Tensor:
    """The plate's background colour (3,): inside the quad (shrunk by `shrink` to skip its
    border), the median colour of the larger of two luminance classes (the plate's paint,
    not its characters). Falls back to white when the quad is off the canvas."""
    pix = _region(image, quad, shrink)
    if pix is None:
        return torch.ones(3, dtype=image.dtype, device=image.device)
    lum = (pix[:, :3] * torch.tensor(_LUMA, dtype=pix.dtype, device=pix.device)).sum(1)
    spread = float(lum.max() - lum.min()) if lum.numel() else 0.0
    if spread > 0.15 and lum.numel() >= 8:
        pix = pix[_two_class_split(lum)]
    return pix[:, :3].median(dim=0).values


def estimate_edge_sigma(image: torch.Tensor, quad: torch.Tensor, default: float = 0.8) -> float:
    """Blur (Gaussian sigma, pixels) of the plate's outline in `image` (3, H, W).

    Across each side, a blurred step of height ``h`` has a largest slope ``h / (sigma
    sqrt(2 pi))``: sigma is the median of that ratio over profiles with a clear step,
    clamped to [0.4, 4]; `default` when no side has one.
    """
    q = quad.detach().to(torch.float64).cpu()
    lum = luminance(image.detach().to(work_dtype(image)))[0].cpu()
    h, w = lum.shape
    sides = []
    span = 4.0
    steps = torch.arange(-span, span + 0.01, 0.5, dtype=torch.float64)
    for i in range(4):
        a, b = q[i], q[(i + 1) % 4]
        d = b - a
        length = float(torch.linalg.norm(d))
        if length < 6:
            continue
        n = torch.tensor([d[1], -d[0]], dtype=torch.float64) / length  # outward for clockwise order
        ts = torch.linspace(0.2, 0.8, 9, dtype=torch.float64)
        pts = a[None] + ts[:, None] * d[None]  # (9, 2)
        prof_pts = pts[:, None, :] + steps[None, :, None] * n[None, None, :]  # (9, S, 2)
        gx = prof_pts[..., 0] / w * 2 - 1
        gy = prof_pts[..., 1] / h * 2 - 1
        grid = torch.stack([gx, gy], -1).to(lum.dtype)[None]
        prof = F.grid_sample(lum[None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0]
        sides.append(prof.double())
    if not sides:
        return default
    prof = torch.cat(sides, 0)  # (P, S)
    step_h = (prof[:, -3:].mean(1) - prof[:, :3].mean(1)).abs()
    slope = (prof[:, 1:] - prof[:, :-1]).abs().max(1).values / 0.5
    ok = step_h > 0.08
    if int(ok.sum()) < 3:
        return default
    sigma = step_h[ok] / (slope[ok] * math.sqrt(2 * math.pi)).clamp_min(1e-6)
    return float(sigma.median().clamp(0.4, 4.0))


def plate_shading(image: torch.Tensor, quad: torch.Tensor, box: tuple[int, int, int, int], shrink: float = 0.12,
                  limits: tuple[float, float] = (0.75, 1.25)) -> torch.Tensor:
    """Smooth lighting across the plate: a plane ``a + b x + c y`` fitted to the
    luminance of the plate's background pixels (the larger luminance class), divided by
    its mean, clamped to `limits`; returned on the pixel box (1, bh, bw)."""
    x0, y0, x1, y1 = box
    dtype = work_dtype(image)
    ones = torch.ones((1, y1 - y0, x1 - x0), dtype=dtype, device=image.device)
    qbox = quad_box(quad, image.shape[-2:])
    if qbox is None:
        return ones
    qx0, qy0, qx1, qy1 = qbox
    mask = quad_mask(quad.to(image.device), qbox, shrink)
    if int(mask.sum()) < 12:
        return ones
    lum = luminance(image[:, qy0:qy1, qx0:qx1].to(dtype))[0]
    yy, xx = torch.meshgrid(torch.arange(qy0, qy1, dtype=dtype, device=image.device) + 0.5,
                            torch.arange(qx0, qx1, dtype=dtype, device=image.device) + 0.5, indexing="ij")
    v, px, py = lum[mask], xx[mask], yy[mask]
    if float(v.max() - v.min()) > 0.15:
        keep = _two_class_split(v)
        v, px, py = v[keep], px[keep], py[keep]
    if v.numel() < 12 or float(v.mean()) < 1e-3:
        return ones
    cx, cy = px.mean(), py.mean()
    a = torch.stack([torch.ones_like(px), px - cx, py - cy], 1).double()
    coef = torch.linalg.lstsq(a, v.double()[:, None]).solution[:, 0].to(dtype)
    yy2, xx2 = torch.meshgrid(torch.arange(y0, y1, dtype=dtype, device=image.device) + 0.5,
                              torch.arange(x0, x1, dtype=dtype, device=image.device) + 0.5, indexing="ij")
    plane = coef[0] + coef[1] * (xx2 - cx) + coef[2] * (yy2 - cy)
    return (plane / coef[0].clamp_min(1e-3)).clamp(*limits)[None]


# -- overlay --------------------------------------------------------------------------------


def overlay_plate(
    image: torch.Tensor,
    quad: torch.Tensor,
    plate: torch.Tensor | None = None,
    *,
    fill: str | Sequence[float] = "plate",
    match: bool = True,
    blank_colour: Sequence[float] | None = None,
    supersample: int = 4,
    colour_quad: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`image` (3, H, W) with `plate` (3|4, h, w) warped into `quad`, or a blank plate.

    - The plate keeps its aspect ratio: it is letterboxed to the quad's apparent aspect,
      the bars (and any transparency) filled with `fill`: ``"plate"`` (the original
      plate's estimated background colour), ``"white"`` or an RGB triple.
    - ``plate=None`` draws a blank plate (`blank_plate`) in `blank_colour`, by default a
      clean near-white plate with a thin dark border, only dimmed (to 0.82 at most) where
      the original plate is in shadow, never grey.
    - `colour_quad`: where the original plate's colour, lighting and sharpness are read
      (default `quad`; give the detected plate when `quad` is its grown outline, whose
      rim and banner would mislead them).
    - With `match`, the replacement is lit like the original: its background is scaled
      to the original's background luminance, a plane fitted to the original's lighting
      shades it, and it is blurred to the sharpness measured on the original's outline.
    - Edges are anti-aliased (supersampled coverage); pixels farther than about three
      blur sigmas (plus one pixel) outside the quad are unchanged.

    Returns ``(new_image, footprint)``: the footprint (1, H, W) in [0, 1] is how much of
    each pixel now comes from the new plate.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W) but is {tuple(image.shape)}")
    dtype = work_dtype(image)
    dev = image.device
    img = image.to(dtype)
    quad = quad.to(device=dev, dtype=torch.float64)
    h, w = img.shape[-2:]
    aspect = quad_aspect(quad)
    if not math.isfinite(aspect) or aspect <= 0.05:
        return image.clone(), image.new_zeros((1, h, w))
    read = quad if colour_quad is None else colour_quad.to(device=dev, dtype=torch.float64)
    bg = estimate_plate_colour(img, read).to(dtype)
    bg_lum = float((bg * torch.tensor(_LUMA, dtype=dtype, device=dev)).sum())
    gain = 1.0
    if plate is None:
        if blank_colour is not None:
            colour = torch.as_tensor(blank_colour, dtype=dtype, device=dev)
        else:  # a clean plate, as bright as the old plate's paint allows, never grey
            colour = torch.tensor(BLANK_COLOUR, dtype=dtype, device=dev) * max(0.82, min(1.0, bg_lum / 0.8))
        # the blank's colour is already as lit on the canvas: no gain
        texture = blank_plate(aspect, height=max(32, int(math.ceil(_quad_height(quad) * 2))), colour=colour.tolist(),
                              border=(colour * 0.15).tolist(), dtype=dtype, device=dev)
        # opaque to the corners: outside the rounding the border colour, as a plate holder,
        # so nothing of the old plate shows at its corners
        frame_c = (colour * 0.15).view(3, 1, 1)
        texture = torch.cat([texture[:3] * texture[3:] + frame_c * (1 - texture[3:]), torch.ones_like(texture[3:])])
    else:
        if plate.ndim != 3 or plate.shape[0] not in (3, 4):
            raise ValueError(f"plate image must be (3|4, h, w) but is {tuple(plate.shape)}")
        rep = plate.to(device=dev, dtype=dtype)
        rep_bg = _dominant_colour(rep)
        rep_lum = float((rep_bg * torch.tensor(_LUMA, dtype=dtype, device=dev)).sum())
        if match:
            gain = min(1.3, max(0.35, bg_lum / max(rep_lum, 1e-3)))
        if isinstance(fill, str):
            if fill == "plate":
                fill_c = bg / gain  # after the gain the bars have the original plate's colour
            elif fill == "white":
                fill_c = torch.ones(3, dtype=dtype, device=dev)
            else:
                raise ValueError(f"fill must be 'plate', 'white' or an RGB triple, got {fill!r}")
        else:
            fill_c = torch.as_tensor(fill, dtype=dtype, device=dev)
        texture = letterbox(rep, aspect, fill_c)
    pre, cov, box = warp_into_quad(texture, quad, (h, w), supersample=supersample)
    if box is None:
        return image.clone(), image.new_zeros((1, h, w))
    sigma = estimate_edge_sigma(img, read) if match else 0.0
    extra = math.sqrt(max(sigma * sigma - 0.35 * 0.35, 0.0))
    pad = int(math.ceil(3 * extra)) + 1 if extra > 0.05 else 0
    x0, y0, x1, y1 = box
    # grow the box so the blurred plate has room; the layer is zero outside the quad
    gx0, gy0, gx1, gy1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    full_pre = img.new_zeros((3, gy1 - gy0, gx1 - gx0))
    full_cov = img.new_zeros((1, gy1 - gy0, gx1 - gx0))
    full_pre[:, y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0] = pre
    full_cov[:, y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0] = cov
    gbox = (gx0, gy0, gx1, gy1)
    if match:
        full_pre = full_pre * (gain * plate_shading(img, read, gbox))
    if extra > 0.05:
        full_pre = _blur_zero_padded(full_pre, extra)
        full_cov = _blur_zero_padded(full_cov, extra)
    full_cov = full_cov.clamp(0, 1)
    out = img.clone()
    under = out[:, gy0:gy1, gx0:gx1]
    out[:, gy0:gy1, gx0:gx1] = (full_pre + under * (1 - full_cov)).clamp(0, 1)
    footprint = img.new_zeros((1, h, w))
    footprint[:, gy0:gy1, gx0:gx1] = full_cov
    return out.to(image.dtype), footprint.to(image.dtype)


def _quad_height(quad: torch.Tensor) -> float:
    return float((torch.linalg.norm(quad[3] - quad[0]) + torch.linalg.norm(quad[2] - quad[1])) / 2)


def _dominant_colour(texture: torch.Tensor) -> torch.Tensor:
    """The background colour of a plate image (3|4, h, w): the median colour of its
    larger luminance class (RGBA composited over white), e.g. the white of a dealer plate."""
    tex = texture
    if tex.shape[0] == 4:
        a = tex[3:4].clamp(0, 1)
        tex = tex[:3] * a + (1 - a)
    step = max(1, int(math.sqrt(tex.shape[1] * tex.shape[2] / 20000)))
    pix = tex[:, ::step, ::step].reshape(3, -1).T
    lum = (pix * torch.tensor(_LUMA, dtype=pix.dtype, device=pix.device)).sum(1)
    if float(lum.max() - lum.min()) > 0.15:
        pix = pix[_two_class_split(lum)]
    return pix.median(dim=0).values


def _blur_zero_padded(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a layer that is zero beyond its box (zero, not reflected, borders)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[0]
    y = F.conv2d(x[None], k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)
    return y[0]
