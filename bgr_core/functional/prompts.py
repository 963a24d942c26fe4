"""Prompts for promptable segmenters (Segment Anything) from a matte, and mask agreement.

Point pickers work on small (working-resolution) boolean maps as numpy arrays on the
CPU (OpenCV distance transforms); `mask_iou` is torch and follows its inputs' device.
Points are (x, y) in pixels of the map they were picked on.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["spread_maxima", "interior_points", "exterior_points", "mask_iou"]


def spread_maxima(dist: np.ndarray, n: int, spacing: float, floor: float = 0.0) -> np.ndarray:
    """Up to `n` (x, y) points at the largest values of `dist` (h, w), each at least
    `spacing` pixels from the ones before it and with a value above `floor`;
    (k, 2) float32, best first. Greedy: take the maximum, blank a disc around it, repeat."""
    work = dist.astype(np.float32).copy()
    points: list[tuple[float, float]] = []
    radius = max(1, int(round(spacing)))
    for _ in range(n):
        y, x = np.unravel_index(int(np.argmax(work)), work.shape)
        if work[y, x] <= floor:
            break
        points.append((float(x), float(y)))
        cv2.circle(work, (int(x), int(y)), radius, 0.0, -1)
    return np.asarray(points, dtype=np.float32).reshape(-1, 2)


def interior_points(mask: np.ndarray, n: int = 3) -> np.ndarray:
    """(k, 2) points deep inside `mask` (h, w) bool: the maxima of its distance
    transform, spread apart by half the deepest distance, so they sit in the body of the
    object (not in a thin part such as a mirror or an antenna). Empty when `mask` is."""
    if n <= 0 or not mask.any():
        return np.zeros((0, 2), np.float32)
    m = np.pad(mask.astype(np.uint8), 1)  # the map's border counts as outside
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)[1:-1, 1:-1]
    return spread_maxima(dist, n, spacing=max(2.0, float(dist.max())), floor=0.0)


def exterior_points(mask: np.ndarray, box: tuple[float, float, float, float], n: int = 2, min_dist: float = 2.0) -> np.ndarray:
    """(k, 2) points outside `mask` but inside `box` (x0, y0, x1, y1, map pixels): the
    background pockets a box prompt wrongly includes (under the car, above the bonnet),
    farthest from the object first and at least `min_dist` pixels from it."""
    h, w = mask.shape
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if n <= 0 or x1 <= x0 or y1 <= y0:
        return np.zeros((0, 2), np.float32)
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    inside = np.zeros_like(dist)
    inside[y0:y1, x0:x1] = dist[y0:y1, x0:x1]
    return spread_maxima(inside, n, spacing=max(min_dist, 0.25 * float(inside.max())), floor=min_dist)


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of boolean masks (..., H, W) → (...,) float32; 1 when both are empty."""
    a, b = a.bool(), b.bool()
    inter = (a & b).flatten(-2).sum(-1).float()
    union = (a | b).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))
