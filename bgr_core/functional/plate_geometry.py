"""Quadrilateral geometry for plate candidates: numpy / OpenCV on small CPU canvases.

Quads are (4, 2) float64 (x, y) points clockwise from the top-left corner, in
pixel-edge coordinates (origin at the top-left corner of the top-left pixel).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

from .quad_warp import order_quad

__all__ = ['soft', 'to_uint8_rgb', 'line_intersection', 'is_convex', 'side_lengths', 'quad_from_points', 'dedupe', 'quad_mask', 'quad_values', 'fit_side', 'ransac_line', 'best_rects', 'rect_iou', 'contains']


def soft(x: float, lo: float, hi: float) -> float:
    """0 at or below `lo`, 1 at or above `hi`, linear between (decreasing when lo > hi)."""
    if hi == lo:
        return float(x >= hi)
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


def to_uint8_rgb(image: Tensor) -> np.ndarray:
    arr = image.detach()[:3].float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def line_intersection(p1, d1, p2, d2):
    """Intersection of lines p1 + t d1 and p2 + s d2 (None if parallel)."""
    den = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(den) < 1e-9:
        return None
    t = ((p2[0] - p1[0]) * d2[1] - (p2[1] - p1[1]) * d2[0]) / den
    return np.array([p1[0] + t * d1[0], p1[1] + t * d1[1]])


def is_convex(q: np.ndarray) -> bool:
    signs = []
    for i in range(4):
        a, b, c = q[i], q[(i + 1) % 4], q[(i + 2) % 4]
        signs.append((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]))
    return all(s > 0 for s in signs) or all(s < 0 for s in signs)


def side_lengths(q: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.roll(q, -1, axis=0) - q, axis=1)  # top, right, bottom, left


def quad_from_points(points: np.ndarray) -> np.ndarray | None:
    """A quad (4, 2) ordered clockwise from top-left around a point set (N, 2): the
    4-vertex simplification of its convex hull, or its minimum-area rectangle."""
    hull = cv2.convexHull(points.astype(np.float32).reshape(-1, 1, 2))
    if len(hull) < 3:
        return None
    peri = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.02, 0.035, 0.05, 0.07, 0.09):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float64)
            break
        if len(approx) < 4:
            break
    if quad is None or not is_convex(order_quad(quad)):
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)
    return order_quad(quad)


def dedupe(cands: list[tuple[np.ndarray, str]], iou: float = 0.88) -> list[tuple[np.ndarray, str]]:
    """Drop candidates whose corner box nearly repeats an earlier one's (MSER nests many)."""
    if not cands:
        return cands
    boxes = np.array([[q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()] for q, _ in cands])
    corners = np.array([q.reshape(-1) for q, _ in cands])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    for i in range(len(cands)):
        if keep:
            k = np.array(keep)
            ix = np.clip(np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0]), 0, None)
            iy = np.clip(np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1]), 0, None)
            inter = ix * iy
            ov = inter / np.maximum(area[k] + area[i] - inter, 1e-9)
            close = np.abs(corners[k] - corners[i]).max(1) <= 0.06 * max(boxes[i, 2] - boxes[i, 0], 1.0)
            if np.any((ov >= iou) & close):
                continue
        keep.append(i)
    return [cands[i] for i in keep]


def quad_mask(shape, q: np.ndarray, shrink: float = 0.0):
    """(y0, x0, mask) of the pixels inside quad `q` shrunk by `shrink`, or None."""
    h, w = shape[:2]
    c = q.mean(0)
    qq = c + (q - c) * (1 - shrink)
    x0 = max(0, int(math.floor(qq[:, 0].min())))
    y0 = max(0, int(math.floor(qq[:, 1].min())))
    x1 = min(w, int(math.ceil(qq[:, 0].max())))
    y1 = min(h, int(math.ceil(qq[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((qq - [x0, y0] - 0.5) * 4).astype(np.int32), 1, lineType=cv2.LINE_8, shift=2)
    return y0, x0, mask.astype(bool)


def quad_values(img: np.ndarray, q: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    """The values of `img` at pixels inside quad `q` (shrunk towards its centre by `shrink`)."""
    inner = quad_mask(img.shape, q, shrink)
    if inner is None:
        return np.zeros(0, np.float32)
    y0, x0, mask = inner
    return img[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]][mask]


def fit_side(points: np.ndarray, weights: np.ndarray, tol: float = 1.0, min_inliers: int = 6):
    """A line through most of `points` (M, 2): a Huber fit when most points agree with it,
    else the best of a few two-point hypotheses (RANSAC). Returns (point, unit direction,
    mean inlier weight) or None."""
    m = len(points)
    if m < max(2, min_inliers):
        return None
    vx, vy, x0, y0 = cv2.fitLine(points.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).reshape(4)
    normal = np.array([-vy, vx], np.float64)
    dist = np.abs((points - [x0, y0]) @ normal)
    mask = dist < tol
    if mask.sum() < 0.7 * m:
        fit = ransac_line(points, weights, tol, min_inliers)
        if fit is None:
            return None
        mask = fit
    if int(mask.sum()) < min_inliers:
        return None
    vx, vy, x0, y0 = cv2.fitLine(points[mask].astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).reshape(4)
    return np.array([x0, y0], np.float64), np.array([vx, vy], np.float64), float(weights[mask].mean())


def ransac_line(points: np.ndarray, weights: np.ndarray, tol: float = 1.0, min_inliers: int = 6,
                 hypotheses: int = 60) -> np.ndarray | None:
    """Inlier mask (M,) of the best line among two-point hypotheses spread along the side."""
    m = len(points)
    i, j = np.triu_indices(m, 1)
    far = (j - i) >= max(2, m // 4)  # well separated pairs give stable lines
    i, j = i[far], j[far]
    if len(i) == 0:
        return None
    if len(i) > hypotheses:
        pick = np.linspace(0, len(i) - 1, hypotheses).astype(int)
        i, j = i[pick], j[pick]
    d = points[j] - points[i]
    norm = np.linalg.norm(d, axis=1)
    keep = norm > 1e-6
    i, d, norm = i[keep], d[keep], norm[keep]
    if len(i) == 0:
        return None
    nrm = np.stack([-d[:, 1], d[:, 0]], 1) / norm[:, None]
    rel = points[None, :, :] - points[i][:, None, :]
    inl = np.abs(rel[..., 0] * nrm[:, None, 0] + rel[..., 1] * nrm[:, None, 1]) < tol
    best = int(np.argmax((inl * weights[None]).sum(1)))
    mask = inl[best]
    return mask if int(mask.sum()) >= min_inliers else None


def best_rects(found: list[tuple[float, int, int, int, int]], keep: int, overlap: float,
                f: float) -> list[np.ndarray]:
    """The best `keep` of scored rectangles ``(score, x0, y0, w, h)`` found on a copy scaled
    by `f`, none overlapping a better one by IoU > `overlap`, as quads in unscaled pixels."""
    found = sorted(found, key=lambda t: -t[0])
    quads: list[np.ndarray] = []
    rects: list[tuple[float, float, float, float]] = []
    for _, x0, y0, bw, bh in found:
        r = (x0, y0, x0 + bw, y0 + bh)
        if any(rect_iou(r, o) > overlap for o in rects):
            continue
        rects.append(r)
        quads.append(np.array([[x0, y0], [x0 + bw, y0], [x0 + bw, y0 + bh], [x0, y0 + bh]], np.float64) / f)
        if len(quads) >= keep:
            break
    return quads


def rect_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def contains(outer: np.ndarray, inner: np.ndarray, frac: float = 0.85) -> bool:
    """Whether most of `inner` lies inside `outer`."""
    a_in = abs(cv2.contourArea(inner.astype(np.float32)))
    if a_in <= 0:
        return False
    inter, _ = cv2.intersectConvexConvex(outer.astype(np.float32), inner.astype(np.float32))
    return inter / a_in >= frac
