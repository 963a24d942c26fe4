"""Synthetic legible licence plates for the plate fitters and trainers
(`tools/fit_plate_logistic.py`, `tools/train_plate_scorer.py`)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["text_plate", "long_quad"]

_GLYPHS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def text_plate(rng: np.random.Generator, long: bool | None = None) -> np.ndarray:
    """A synthetic legible plate (h, w, 3) uint8: light paint, thin dark border, dark
    characters; EU-like (long, optional blue strip) or US/Asian-like (about 2:1)."""
    eu = rng.random() < 0.5 if long is None else long
    w, h = (520, 112) if eu else (300, 150)
    paint = np.array([235, 235, 228]) if rng.random() < 0.8 else np.array([240, 205, 40])
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (paint + rng.integers(-15, 10, 3)).clip(0, 255)
    ink = tuple(int(v) for v in rng.integers(0, 50, 3))
    cv2.rectangle(img, (3, 3), (w - 4, h - 4), ink, 3)
    x0 = 8
    if eu and rng.random() < 0.7:
        cv2.rectangle(img, (6, 6), (46, h - 7), (30, 60, 170), -1)
        x0 = 56
    n = int(rng.integers(5, 8))
    text = "".join(rng.choice(list(_GLYPHS), n))
    scale = (h * 0.62) / 22.0
    thick = max(2, int(scale * 2.2))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    sx = min(1.0, (w - x0 - 12) / max(tw, 1))
    canvas = np.zeros((h, max(w, tw + 20), 3), np.uint8)
    cv2.putText(canvas, text, (4, int(h / 2 + th / 2)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    mask = cv2.resize(canvas[:, : tw + 8, 0], (max(1, int((tw + 8) * sx)), h)).astype(np.float32) / 255
    x1 = x0 + (w - x0 - mask.shape[1]) // 2
    region = img[:, x1 : x1 + mask.shape[1]].astype(np.float32)
    img[:, x1 : x1 + mask.shape[1]] = (region * (1 - mask[..., None]) + np.array(ink) * mask[..., None]).astype(np.uint8)
    return img


def long_quad(q: np.ndarray, k: float) -> np.ndarray:
    """A long (EU-like) plate quad of height / width `k` on the bottom side of quad `q`."""
    left = min(1.0, k * np.linalg.norm(q[1] - q[0]) / max(np.linalg.norm(q[3] - q[0]), 1e-6))
    right = min(1.0, k * np.linalg.norm(q[2] - q[3]) / max(np.linalg.norm(q[2] - q[1]), 1e-6))
    return np.stack([q[3] + (q[0] - q[3]) * left, q[2] + (q[1] - q[2]) * right, q[2], q[3]])
