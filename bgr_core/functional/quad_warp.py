"""Quadrilaterals and perspective warps for plates (torch; `order_quad` and `quad_iou` also
take numpy): ordering, overlap, homographies, and an anti-aliased warp of a texture into
a quad.

Conventions: a quad is (4, 2) (x, y) pixel points, clockwise from the top-left corner,
origin at the top-left corner of the top-left pixel (pixel centres at +0.5, as in
`bgr_core.functional.geometry`); images are float tensors in [0, 1], channels first; the
result has the input's dtype (computation in float32, float64 stays float64).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["order_quad", "quad_iou", "quad_aspect", "quad_box", "get_perspective_transform", "apply_homography",
           "quad_mask", "warp_into_quad", "letterbox", "work_dtype"]


def work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def order_quad(points):
    """The 4 points (4, 2) reordered clockwise (on screen, y down) from the top-left one.

    "Top-left" is the point with the smallest ``x + y`` among the two upper points, so a
    plate seen level or tilted by less than 45 degrees keeps its natural corner names.
    Accepts a numpy array or a tensor and returns the same kind.
    """
    is_tensor = isinstance(points, torch.Tensor)
    p = points.detach().cpu().double().numpy() if is_tensor else np.asarray(points, np.float64)
    c = p.mean(0)
    ang = np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0])  # y down: increasing angle is clockwise
    p = p[np.argsort(ang)]
    # start at the upper-left: the smallest x + y among the two points with the smallest y
    upper = np.argsort(p[:, 1])[:2]
    start = upper[np.argmin(p[upper, 0] + p[upper, 1])]
    p = np.roll(p, -start, axis=0)
    if is_tensor:
        return torch.as_tensor(p, dtype=points.dtype, device=points.device)
    return p.astype(np.asarray(points).dtype if np.asarray(points).dtype.kind == "f" else np.float64)


def quad_iou(a, b) -> float:
    """Intersection over union of two convex quadrilaterals (4, 2) (tensors or arrays)."""
    import cv2

    pa = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, np.float32).reshape(-1, 2)
    pb = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, np.float32).reshape(-1, 2)
    pa = cv2.convexHull(pa)
    pb = cv2.convexHull(pb)
    area_a, area_b = abs(cv2.contourArea(pa)), abs(cv2.contourArea(pb))
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    inter = max(0.0, float(inter))
    return inter / max(area_a + area_b - inter, 1e-9)


def quad_aspect(quad) -> float:
    """Apparent width / height of a quad: mean of top and bottom over mean of left and right."""
    q = quad.detach().cpu().double().numpy() if isinstance(quad, torch.Tensor) else np.asarray(quad, np.float64)
    width = (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
    height = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    return float(width / max(height, 1e-9))


def quad_box(quad: torch.Tensor, size: tuple[int, int], margin: float = 0.0) -> tuple[int, int, int, int] | None:
    """Integer pixel box (x0, y0, x1, y1) covering `quad` plus `margin` pixels, clipped to
    the canvas (H, W); None when it lies outside."""
    h, w = size
    q = quad.detach().cpu().double()
    x0 = max(0, math.floor(float(q[:, 0].min()) - margin))
    y0 = max(0, math.floor(float(q[:, 1].min()) - margin))
    x1 = min(w, math.ceil(float(q[:, 0].max()) + margin))
    y1 = min(h, math.ceil(float(q[:, 1].max()) + margin))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def get_perspective_transform(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The homography (..., 3, 3) that maps the 4 points `src` (..., 4, 2) onto `dst`.

    Direct linear transform with ``h33 = 1``, solved in float64 on the inputs' device;
    returned in float64 (cast it where you use it).
    """
    src = src.to(torch.float64)
    dst = dst.to(torch.float64, device=src.device) if dst.device != src.device else dst.to(torch.float64)
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=-2)  # (..., 8, 8)
    b = torch.cat([u, v], dim=-1)[..., None]  # (..., 8, 1)
    h = torch.linalg.solve(a, b)[..., 0]
    h = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
    return h.reshape(*h.shape[:-1], 3, 3)


def apply_homography(hom: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Map points (..., N, 2) with a homography (3, 3); returns (..., N, 2) in the points' dtype."""
    p = points.to(hom.dtype)
    ph = torch.cat([p, torch.ones_like(p[..., :1])], dim=-1) @ hom.transpose(-1, -2)
    return (ph[..., :2] / ph[..., 2:3]).to(points.dtype)


def quad_mask(quad: torch.Tensor, box: tuple[int, int, int, int], shrink: float = 0.0) -> torch.Tensor:
    """Boolean (h, w) mask of pixel centres inside `quad` (shrunk towards its centre by
    `shrink` of its size) on the pixel box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    q = quad.to(torch.float64)
    if shrink > 0:
        c = q.mean(0, keepdim=True)
        q = c + (q - c) * (1.0 - shrink)
    ys = torch.arange(y0, y1, dtype=torch.float64, device=quad.device) + 0.5
    xs = torch.arange(x0, x1, dtype=torch.float64, device=quad.device) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    inside = torch.ones_like(xx, dtype=torch.bool)
    # signed area > 0 for clockwise-on-screen order; test every edge with the same sign
    area = 0.0
    for i in range(4):
        a, b = q[i], q[(i + 1) % 4]
        area += float(a[0] * b[1] - b[0] * a[1])
    sign = 1.0 if area > 0 else -1.0
    for i in range(4):
        a, b = q[i], q[(i + 1) % 4]
        cross = (b[0] - a[0]) * (yy - a[1]) - (b[1] - a[1]) * (xx - a[0])
        inside &= cross * sign >= 0
    return inside


def warp_into_quad(
    texture: torch.Tensor,
    quad: torch.Tensor,
    size: tuple[int, int],
    supersample: int = 4,
    max_samples: int = 6_000_000,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, int] | None]:
    """Warp `texture` (C, h, w) (RGB or RGBA) so that its rectangle lands on `quad`.

    Each output pixel is the average of ``supersample²`` samples taken through the inverse
    homography (bilinear in a texture pre-shrunk with antialiasing when it is larger than
    its footprint), so the plate's edges are anti-aliased and its inside is not aliased.

    Returns ``(colour, coverage, box)``: `colour` (3, bh, bw) premultiplied by `coverage`
    (1, bh, bw) in [0, 1] (the share of the pixel covered by the plate, times the
    texture's alpha when it has one), both on the pixel box ``box = (x0, y0, x1, y1)`` of
    the canvas (H, W) `size`; ``box`` is None (and the tensors empty) when the quad is
    outside the canvas.
    """
    if texture.ndim != 3 or texture.shape[0] not in (1, 3, 4):
        raise ValueError(f"texture must be (3|4, h, w) but is {tuple(texture.shape)}")
    dtype = work_dtype(texture)
    dev = texture.device
    quad = quad.to(device=dev, dtype=torch.float64)
    box = quad_box(quad, size, margin=1.0)
    if box is None:
        empty = texture.new_zeros((3, 0, 0))
        return empty, texture.new_zeros((1, 0, 0)), None
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    s = max(1, int(supersample))
    while s > 1 and bw * bh * s * s > max_samples:
        s -= 1
    tex = texture.to(dtype)
    c, th, tw = tex.shape
    # footprint of the quad in supersampled pixels: pre-shrink a much larger texture
    top = float(torch.linalg.norm(quad[1] - quad[0]))
    bottom = float(torch.linalg.norm(quad[2] - quad[3]))
    left = float(torch.linalg.norm(quad[3] - quad[0]))
    right = float(torch.linalg.norm(quad[2] - quad[1]))
    foot_w = max(top, bottom) * s
    foot_h = max(left, right) * s
    if tw > 1.5 * foot_w or th > 1.5 * foot_h:
        new_w = max(2, min(tw, int(math.ceil(foot_w * 1.25))))
        new_h = max(2, min(th, int(math.ceil(foot_h * 1.25))))
        tex = F.interpolate(tex[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)[0]
        c, th, tw = tex.shape
    rect = torch.tensor([[0.0, 0.0], [tw, 0.0], [tw, th], [0.0, th]], dtype=torch.float64, device=dev)
    hom_inv = get_perspective_transform(quad, rect)  # canvas -> texture pixels
    # supersample positions (pixel-edge coordinates of the canvas)
    offs = (torch.arange(s, dtype=torch.float64, device=dev) + 0.5) / s
    xs = (torch.arange(x0, x1, dtype=torch.float64, device=dev)[:, None] + offs[None]).reshape(-1)
    ys = (torch.arange(y0, y1, dtype=torch.float64, device=dev)[:, None] + offs[None]).reshape(-1)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    den = hom_inv[2, 0] * xx + hom_inv[2, 1] * yy + hom_inv[2, 2]
    u = (hom_inv[0, 0] * xx + hom_inv[0, 1] * yy + hom_inv[0, 2]) / den
    v = (hom_inv[1, 0] * xx + hom_inv[1, 1] * yy + hom_inv[1, 2]) / den
    # the sign of the homogeneous coordinate inside the quad (its centre) rejects points
    # beyond the horizon line that would otherwise map into the rectangle
    centre = quad.mean(0)
    den_c = hom_inv[2, 0] * centre[0] + hom_inv[2, 1] * centre[1] + hom_inv[2, 2]
    inside = (u >= 0) & (u <= tw) & (v >= 0) & (v <= th) & (den * den_c > 0)
    grid = torch.stack([u / tw * 2 - 1, v / th * 2 - 1], dim=-1).to(dtype)[None]
    # border padding: samples on the rectangle's edge take the edge texel, not black
    sampled = F.grid_sample(tex[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    inside_f = inside.to(dtype)[None]
    if c == 4:
        weight = inside_f * sampled[3:4].clamp(0, 1)
        rgb = sampled[:3]
    elif c == 1:
        weight, rgb = inside_f, sampled.expand(3, -1, -1)
    else:
        weight, rgb = inside_f, sampled
    pre = rgb * weight
    if s > 1:
        pre = F.avg_pool2d(pre[None], s)[0]
        weight = F.avg_pool2d(weight[None], s)[0]
    return pre.clamp_min(0), weight.clamp(0, 1), box


def letterbox(texture: torch.Tensor, aspect: float, fill: Sequence[float] | torch.Tensor = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """Pad `texture` (3|4, h, w) to the width/height ratio `aspect`, centred, keeping its
    own aspect. An alpha channel is composited over `fill`, which also fills the bars:
    the result is opaque RGB (3, H', W')."""
    if texture.ndim != 3 or texture.shape[0] not in (3, 4):
        raise ValueError(f"plate image must be (3|4, h, w) but is {tuple(texture.shape)}")
    dtype = work_dtype(texture)
    tex = texture.to(dtype)
    fill_t = torch.as_tensor(fill, dtype=dtype, device=tex.device).reshape(3, 1, 1)
    if tex.shape[0] == 4:
        a = tex[3:4].clamp(0, 1)
        tex = tex[:3] * a + fill_t * (1 - a)
    _, h, w = tex.shape
    if aspect <= 0 or not math.isfinite(aspect):
        raise ValueError(f"aspect must be positive, got {aspect}")
    if w / h < aspect:  # too narrow: bars left and right
        new_w, new_h = max(w, int(round(h * aspect))), h
    else:
        new_w, new_h = w, max(h, int(round(w / aspect)))
    out = fill_t.expand(3, new_h, new_w).clone()
    top, left = (new_h - h) // 2, (new_w - w) // 2
    out[:, top : top + h, left : left + w] = tex
    return out
