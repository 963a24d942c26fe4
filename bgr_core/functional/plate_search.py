"""Plate candidate search on a working canvas: where a plate may be (numpy / OpenCV, CPU).

`prepare_work` crops and scales the image around the vehicle into a `PlateWork`;
`find_candidates` proposes quads (MSER regions, closed outlines, rectangle searches,
character strokes); `refine_quad` refits a quad's sides to the plate border. Quads are
(4, 2) float64 work pixels, clockwise from the top-left, pixel-edge coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from .plate_geometry import (best_rects, fit_side, is_convex, line_intersection, quad_from_points, quad_values,
                             side_lengths, to_uint8_rgb)
from .quad_warp import order_quad

__all__ = ["PlateWork", "prepare_work", "size_ok", "find_candidates", "box_search", "flat_search", "sample",
           "quad_sides", "refine_quad", "outline_positions", "gradient_sums", "BOX_WIDTH"]

# the rectangle search runs where the vehicle is at most this wide (work pixels)
BOX_WIDTH = 320.0


@dataclass
@dataclass
class PlateWork:
    """The plate search's working canvas: a crop of the image around the vehicle, scaled."""

    gray: np.ndarray  # (h, w) uint8
    chroma: np.ndarray  # (h, w) uint8, the a* (green-red) channel of CIELAB: coloured plates
    smooth: np.ndarray  # (h, w) float32, lightly blurred gray
    gx: np.ndarray  # (h, w) float32 Sobel x of `smooth` (grey levels per pixel)
    gy: np.ndarray
    alpha: np.ndarray | None  # (h, w) float32 in [0, 1]
    x0: float  # crop origin in image pixels
    y0: float
    scale: float  # work pixels per image pixel
    vehicle: tuple[float, float, float, float]  # vehicle box in work pixels (or the whole canvas)
    has_box: bool
    rgb: np.ndarray | None = None  # (h, w, 3) uint8, the colour crop (for learned scorers)

    def to_image(self, q: np.ndarray) -> np.ndarray:
        return q / self.scale + np.array([self.x0, self.y0])


def prepare_work(image: Tensor, alpha: Tensor | None, box: Tensor | None, work_size: int = 640) -> PlateWork | None:
    """The working canvas around the vehicle: the box (from `box`, else `alpha`, else the
    whole image) without its top fifth, with a small margin, scaled so its long side is
    about `work_size` pixels; None when too small."""
    if image.ndim != 3 or image.shape[0] < 3:
        raise ValueError(f"image must be (3, H, W) but is {tuple(image.shape)}")
    h, w = image.shape[-2:]
    rgb = to_uint8_rgb(image)
    a = None
    if alpha is not None:
        a = alpha.detach().float().reshape(h, w).cpu().numpy()
    vb = None
    if box is not None:
        vb = [float(v) for v in torch.as_tensor(box).reshape(4)]
    elif a is not None and (a > 0.5).any():
        ys, xs = np.nonzero(a > 0.5)
        vb = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    has_box = vb is not None and (vb[2] - vb[0]) >= 8 and (vb[3] - vb[1]) >= 8
    if not has_box:
        vb = [0.0, 0.0, float(w), float(h)]
    bw, bh = vb[2] - vb[0], vb[3] - vb[1]
    cx0 = max(0, int(math.floor(vb[0] - 0.04 * bw)))
    cy0 = max(0, int(math.floor(vb[1] + (0.2 * bh if has_box else 0.0))))
    cx1 = min(w, int(math.ceil(vb[2] + 0.04 * bw)))
    cy1 = min(h, int(math.ceil(vb[3] + 0.04 * bh)))
    if cx1 - cx0 < 16 or cy1 - cy0 < 8:
        return None
    scale = work_size / max(cx1 - cx0, (cy1 - cy0) * 1.25)
    scale = min(1.25, max(0.1, scale))
    crop = rgb[cy0:cy1, cx0:cx1]
    size = (max(1, int(round((cx1 - cx0) * scale))), max(1, int(round((cy1 - cy0) * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    crop = cv2.resize(crop, size, interpolation=interp)
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    chroma = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)[..., 1]
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.8)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    wa = None
    if a is not None:
        wa = cv2.resize(a[cy0:cy1, cx0:cx1], size, interpolation=interp)
    s = (size[0] / (cx1 - cx0) + size[1] / (cy1 - cy0)) / 2
    vehicle = ((vb[0] - cx0) * s, (vb[1] - cy0) * s, (vb[2] - cx0) * s, (vb[3] - cy0) * s)
    return PlateWork(gray, chroma, smooth, gx, gy, wa, float(cx0), float(cy0), s, vehicle, has_box, crop)


def size_ok(work: PlateWork, bw: float, bh: float) -> bool:
    """Whether a candidate box of `bw` x `bh` work pixels may be a plate on this vehicle."""
    vw = work.vehicle[2] - work.vehicle[0]
    lo = 0.04 if work.has_box else 0.012
    if bw < max(14, lo * vw) or bh < 7:
        return False
    if bw > 0.7 * vw or bh > 0.45 * (work.vehicle[3] - work.vehicle[1]):
        return False
    return 0.45 <= bw / bh <= 9.0


def find_candidates(work: PlateWork, flat: bool = True, box_width: float = BOX_WIDTH) -> list[tuple[np.ndarray, str]]:
    """Candidate quads and the search that found each (see `ContourPlateDetector`, step 2)."""
    h, w = work.gray.shape
    out: list[tuple[np.ndarray, str]] = []
    seen: set[tuple[int, int, int, int]] = set()

    def add(points: np.ndarray, source: str, quad: np.ndarray | None = None) -> None:
        x, y = points[:, 0], points[:, 1]
        bx0, by0, bx1, by1 = float(x.min()), float(y.min()), float(x.max() + 1), float(y.max() + 1)
        if not size_ok(work, bx1 - bx0, by1 - by0):
            return
        key = (int(bx0 // 3), int(by0 // 3), int(bx1 // 3), int(by1 // 3))
        if key in seen:
            return
        seen.add(key)
        if quad is None:
            quad = quad_from_points(points)
        if quad is not None:
            out.append((quad, source))

    area = h * w
    mser = cv2.MSER_create(delta=3, min_area=max(60, int(area * 0.0004)), max_area=int(area * 0.08),
                           max_variation=0.5, min_diversity=0.05)
    sources = [(work.gray, "mser-"), (255 - work.gray, "mser+")]
    if float(work.chroma.std()) >= 3:  # some colour in the scene: red, yellow, blue plates
        sources += [(work.chroma, "mser-a"), (255 - work.chroma, "mser+a")]
    for src, name in sources:
        regions, bboxes = mser.detectRegions(src)
        for reg, (bx, by, bw, bh) in zip(regions, bboxes):
            if size_ok(work, bw, bh) and len(reg) >= 0.2 * bw * bh:
                add(reg, name)
    # closed outlines in the edge map
    mag = np.hypot(work.gx, work.gy)
    hi = max(float(np.percentile(mag, 90)), 4.0)
    edges = cv2.Canny(work.gray, 0.5 * hi * 8, hi * 8, L2gradient=True)  # Canny's Sobel is 8x ours
    edges = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    for c in contours:
        pts = c.reshape(-1, 2)
        if len(pts) >= 4:
            add(pts, "edge")
    # rectangles whose four sides all carry a consistent step or line (faint outlines)
    for quad in box_search(work, box_width=box_width):
        add(quad, "box", quad)
    # smooth rectangles with a consistent outline (blank or blurred plates, faint borders)
    if flat:
        for quad in flat_search(work):
            add(quad, "flat", quad)
    # strokes of characters: dark on light and light on dark
    kh = max(3, int(round(h * 0.035)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kh * 2 + 1, kh + 1))
    for op, name in ((cv2.MORPH_BLACKHAT, "text-"), (cv2.MORPH_TOPHAT, "text+")):
        strokes = cv2.morphologyEx(work.gray, op, kernel)
        sx = np.abs(cv2.Sobel(strokes, cv2.CV_32F, 1, 0, ksize=3))
        sx = cv2.GaussianBlur(sx, (0, 0), 1.5)
        if sx.max() <= 0:
            continue
        thr = max(float(np.percentile(sx, 97)), 30.0)
        mask = (sx > thr).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (kh * 3 + 1, 3)))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
        cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in cs:
            pts = c.reshape(-1, 2).astype(np.float64)
            if len(pts) < 4:
                continue
            # the characters fill the middle of the plate: grow the blob to its likely outline
            (cx, cy), (rw, rh), ang = cv2.minAreaRect(pts.astype(np.float32))
            if rw < rh:
                rw, rh, ang = rh, rw, ang + 90
            grown = cv2.boxPoints(((cx, cy), (rw * 1.12 + 4, rh * 1.5 + 4), ang)).astype(np.float64)
            add(grown, name, order_quad(grown))
    return out


def box_search(work: PlateWork, keep: int = 60, box_width: float = BOX_WIDTH) -> list[np.ndarray]:
    """Axis-aligned rectangles whose four sides each carry a consistent step or line.

    On a copy scaled so the vehicle is at most 320 px wide, the signed vertical (for top
    and bottom) and horizontal (for left and right) derivatives are averaged along each
    side, with cumulative sums so that every rectangle costs O(1); texture averages
    out, an outline does not. A thin line has two opposite flanks a pixel or two apart,
    so the best of three neighbouring rows (columns) is taken, never their sum. The
    weakest side, times a mild bonus for length, ranks the rectangles; the best, overlaps
    suppressed, are returned as quads in work pixels."""
    vw = work.vehicle[2] - work.vehicle[0]
    f = min(1.0, box_width / max(vw, 1.0))
    gx, gy, cx, cy = gradient_sums(work.smooth, f)
    hh, ww = gx.shape
    lo_w = max(10.0, 0.065 * vw * f)
    hi_w = min(ww - 2.0, 0.6 * vw * f)
    heights = []
    hgt = 5.0
    while hgt <= min(0.35 * (work.vehicle[3] - work.vehicle[1]) * f, hh - 2):
        heights.append(int(round(hgt)))
        hgt *= 1.12
    found = []  # (rank, x0, y0, w, h)
    dil_r, dil_c = np.ones((3, 1), np.uint8), np.ones((1, 3), np.uint8)
    for bh in sorted(set(heights)):
        j0, j1 = int(round(0.2 * bh)), int(round(0.8 * bh))
        col_all = np.abs(cx[j1 : hh - bh + j1 + 1, :] - cx[j0 : hh - bh + j0 + 1, :]) / max(1, j1 - j0)
        col_all = cv2.dilate(col_all, dil_c)
        for aspect in (1.15, 1.4, 1.7, 2.0, 2.4, 2.9, 3.5, 4.3, 5.2):
            bw = int(round(bh * aspect))
            if bw < lo_w or bw > hi_w or bw >= ww - 1 or bh >= hh - 1:
                continue
            i0, i1 = int(round(0.15 * bw)), int(round(0.85 * bw))
            row = np.abs(cy[:, i1 : ww - bw + i1 + 1] - cy[:, i0 : ww - bw + i0 + 1]) / max(1, i1 - i0)
            row = cv2.dilate(row, dil_r)
            ny, nx = hh - bh, ww - bw
            score = np.minimum(np.minimum(row[0:ny, :nx], row[bh : bh + ny, :nx]),
                               np.minimum(col_all[:ny, 0:nx], col_all[:ny, bw : bw + nx]))
            if score.size == 0:
                continue
            peak = cv2.dilate(score, np.ones((5, 5), np.uint8))
            ys, xs = np.nonzero((score >= peak) & (score > 1.2))
            if len(ys) > 40:
                order = np.argsort(-score[ys, xs])[:40]
                ys, xs = ys[order], xs[order]
            weight = math.sqrt(bw / lo_w)  # long consistent sides are stronger evidence
            found.extend((float(score[y, x]) * weight, int(x), int(y), bw, bh) for y, x in zip(ys, xs))
    return best_rects(found, keep, 0.5, f)


def flat_search(work: PlateWork, keep: int = 8, width: float = 224.0, eps: float = 0.5,
                 min_side: float = 1.0) -> list[np.ndarray]:
    """Axis-aligned rectangles with a smooth inside and a consistent outline: blank or
    blurred plates, whose border is often faint (a grey patch on a grey bumper) and may
    change polarity along a side (half on paint, half on a dark grille).

    On a copy scaled so the vehicle is at most `width` px wide, each side is split in two
    halves; a half's evidence is its mean signed derivative across the side (unsigned:
    either polarity), and a side's is the weaker half (so one strong edge crossing the
    side does not make it). The weakest side (at least `min_side`) over the mean gradient
    magnitude of the inner half of the rectangle (plus `eps`) ranks the rectangles - a
    contrast-normalised outline, so a faint border round a flat patch ranks high where
    `box_search` ranks it below the strong edges of the bodywork. Cumulative sums make
    each rectangle O(1); the best `keep`, overlaps suppressed, are returned in work pixels."""
    vx0, vy0, vx1, vy1 = work.vehicle
    vw = vx1 - vx0
    f = min(1.0, width / max(vw, 1.0))
    gx, gy, cx, cy = gradient_sums(work.smooth, f)
    hh, ww = gx.shape
    tex = cv2.integral(np.abs(gx) + np.abs(gy), sdepth=cv2.CV_32F)
    lo_w = max(7.0, 0.065 * vw * f)
    hi_w = min(ww - 2.0, 0.6 * vw * f)
    heights = []
    hgt = 5.6
    while hgt <= min(0.35 * (vy1 - vy0) * f, hh - 2):
        heights.append(int(round(hgt)))
        hgt *= 1.1
    found = []  # (rank, x0, y0, w, h)
    dil_r, dil_c = np.ones((3, 1), np.uint8), np.ones((1, 3), np.uint8)
    for bh in sorted(set(heights)):
        j0, jm, j1 = int(round(0.15 * bh)), int(round(0.5 * bh)), int(round(0.85 * bh))
        ca = np.abs(cx[jm : hh - bh + jm + 1] - cx[j0 : hh - bh + j0 + 1]) / max(1, jm - j0)
        cb = np.abs(cx[j1 : hh - bh + j1 + 1] - cx[jm : hh - bh + jm + 1]) / max(1, j1 - jm)
        col = cv2.dilate(np.minimum(ca, cb), dil_c)
        b0, b1 = int(round(0.25 * bh)), int(round(0.75 * bh))
        # below 1: plates foreshortened in three-quarter views
        for aspect in (0.55, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 1.7, 1.9, 2.1, 2.4, 2.9, 3.5, 4.3, 5.2):
            bw = int(round(bh * aspect))
            if bw < lo_w or bw > hi_w or bw >= ww - 1 or bh >= hh - 1:
                continue
            i0, im, i1 = int(round(0.12 * bw)), int(round(0.5 * bw)), int(round(0.88 * bw))
            ra = np.abs(cy[:, im : ww - bw + im + 1] - cy[:, i0 : ww - bw + i0 + 1]) / max(1, im - i0)
            rb = np.abs(cy[:, i1 : ww - bw + i1 + 1] - cy[:, im : ww - bw + im + 1]) / max(1, i1 - im)
            row = cv2.dilate(np.minimum(ra, rb), dil_r)
            ny, nx = hh - bh, ww - bw
            side = np.minimum(np.minimum(row[0:ny, :nx], row[bh : bh + ny, :nx]),
                              np.minimum(col[:ny, 0:nx], col[:ny, bw : bw + nx]))
            a0, a1 = int(round(0.2 * bw)), int(round(0.8 * bw))
            inner = (tex[b1 : b1 + ny, a1 : a1 + nx] - tex[b0 : b0 + ny, a1 : a1 + nx]
                     - tex[b1 : b1 + ny, a0 : a0 + nx] + tex[b0 : b0 + ny, a0 : a0 + nx])
            score = side / (inner / max(1, (a1 - a0) * (b1 - b0)) + eps)
            score[side < min_side] = 0
            peak = cv2.dilate(score, np.ones((5, 5), np.uint8))
            ys, xs = np.nonzero((score >= peak) & (score > 0))
            if len(ys) > 40:
                order = np.argsort(-score[ys, xs])[:40]
                ys, xs = ys[order], xs[order]
            found.extend((float(score[y, x]), int(x), int(y), bw, bh) for y, x in zip(ys, xs))
    return best_rects(found, keep, 0.4, f)


def sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear samples of `img` at points (..., 2) in pixel-edge coordinates."""
    flat = pts.reshape(1, -1, 2).astype(np.float32) - 0.5
    vals = cv2.remap(img, flat[..., 0], flat[..., 1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return vals.reshape(pts.shape[:-1])


def quad_sides(q: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points along the four sides (4, K, 2) at fractions `ts`, and outward normals (4, 2)."""
    a = q
    d = np.roll(q, -1, axis=0) - q
    length = np.linalg.norm(d, axis=1, keepdims=True)
    n = np.stack([d[:, 1], -d[:, 0]], 1) / np.maximum(length, 1e-9)  # outward for clockwise quads
    base = a[:, None, :] + ts[None, :, None] * d[:, None, :]
    return base, n


def refine_quad(work: PlateWork, q: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Refit each side of `q` to the plate border: profiles across each side find the
    strongest step (or line) of the side's polarity, a robust line fit through those points
    gives the side, neighbouring sides intersect in the corners."""
    q = q.astype(np.float64)
    ts = np.linspace(0.1, 0.9, 25)
    for it in range(rounds):
        sides = side_lengths(q)
        height = (sides[1] + sides[3]) / 2
        r = float(np.clip((0.25 if it == 0 else 0.12) * height, 2.0, 12.0))
        offsets = np.arange(-r, r + 1e-6, 0.5)
        zero = int(np.argmin(np.abs(offsets)))
        base, n = quad_sides(q, ts)
        pts = base[:, :, None, :] + offsets[None, None, :, None] * n[:, None, None, :]  # (4, K, O, 2)
        dn = sample(work.gx, pts) * n[:, None, None, 0] + sample(work.gy, pts) * n[:, None, None, 1]
        inten = sample(work.smooth, pts)
        # polarity of each side: the outside against the plate's own tone (the median
        # inside, which characters near a side do not sway)
        outside = sample(work.smooth, base + n[:, None, :] * (r + 1))
        inner = quad_values(work.smooth, q, shrink=0.2)
        level = float(np.median(inner)) if inner.size else float(np.median(outside))
        step = np.median(outside, axis=1) - level  # (4,)
        lines = []
        out_level = np.median(outside, axis=1)  # (4,)
        for side in range(4):
            resp = dn[side] * np.sign(step[side]) if abs(step[side]) >= 5 else np.abs(dn[side])
            k = resp.argmax(1).astype(np.float64)
            strength = resp[np.arange(len(k)), k.astype(int)]
            old = float(np.maximum(resp[:, max(0, zero - 2) : zero + 3].max(1), 0).mean())
            if abs(out_level[side] - level) >= 12:
                # the outline is where the profile leaves the plate's tone for good: the
                # first mid-level crossing beyond the last sample of the plate's tone (so
                # characters or a border line near the side do not capture it)
                k, strength = outline_positions(inten[side], dn[side], level, out_level[side], k, strength)
            found = base[side] + np.interp(k, np.arange(len(offsets)), offsets)[:, None] * n[side][None]
            ok = strength > 0.8
            line = fit_side(found[ok], strength[ok], tol=1.0, min_inliers=max(6, int(0.35 * len(k))))
            lines.append(line[:2] if line is not None and line[2] >= old else None)
        new = q.copy()
        for corner in range(4):
            l1, l2 = lines[(corner - 1) % 4], lines[corner]  # the sides meeting at this corner
            if l1 is None and l2 is None:
                continue
            if l1 is None:  # a side that was not refitted keeps its line
                a, b = q[(corner - 1) % 4], q[corner]
                l1 = (a, (b - a) / max(np.linalg.norm(b - a), 1e-9))
            if l2 is None:
                a, b = q[corner], q[(corner + 1) % 4]
                l2 = (a, (b - a) / max(np.linalg.norm(b - a), 1e-9))
            p = line_intersection(l1[0], l1[1], l2[0], l2[1])
            if p is not None and np.linalg.norm(p - q[corner]) <= 2.5 * r:
                new[corner] = p
        if not is_convex(new):
            break
        q = new
    return q


def outline_positions(inten: np.ndarray, dn: np.ndarray, level: float, out_level: float, k: np.ndarray,
                       strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per profile (rows of `inten`, inside to outside), the fractional index where it
    crosses half-way from the plate's tone `level` to `out_level` after the last sample
    still within 35 % of the plate's tone; profiles without such a crossing keep `k`."""
    k = k.copy()
    strength = strength.copy()
    gap = out_level - level
    mid = level + 0.5 * gap
    rel = (inten - level) / gap  # 0 on the plate, 1 outside
    for i in range(len(k)):
        plate = np.nonzero(rel[i] < 0.35)[0]
        if plate.size == 0:
            continue
        last = int(plate.max())
        beyond = np.nonzero(rel[i, last:] >= 0.5)[0]
        if beyond.size == 0:
            continue
        j = last + int(beyond[0])
        a, b = inten[i, j - 1] - mid, inten[i, j] - mid
        frac = a / (a - b) if a != b else 1.0
        k[i] = j - 1 + float(np.clip(frac, 0.0, 1.0))
        strength[i] = max(float(abs(dn[i, j])), float(abs(dn[i, j - 1])))
    return k, strength


def gradient_sums(smooth: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """On `smooth` scaled by `f` and lightly blurred: the x / y derivatives (h, w) and
    their running sums down the columns (h + 1, w) and along the rows (h, w + 1), so
    that the mean derivative along any side of a rectangle costs O(1)."""
    img = smooth if f == 1.0 else cv2.resize(smooth, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    hh, ww = img.shape
    cy = np.concatenate([np.zeros((hh, 1), np.float32), np.cumsum(gy, axis=1, dtype=np.float32)], axis=1)
    cx = np.concatenate([np.zeros((1, ww), np.float32), np.cumsum(gx, axis=0, dtype=np.float32)], axis=0)
    return gx, gy, cx, cy
