"""Synthetic car scenes (and, later, tiny seeded models) for tests and notebooks.

Scenes are drawn with OpenCV so the truth is known exactly: the vehicle mask, its box
and its glass region.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SyntheticScene", "synthetic_car_scene"]


@dataclass
class SyntheticScene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) bool, the whole vehicle (glass included)
    glass: np.ndarray  # (H, W) bool, the windows
    box: tuple[int, int, int, int]  # XYXY of the vehicle, pixels


def synthetic_car_scene(height: int = 240, width: int = 320, seed: int = 0, background=None) -> SyntheticScene:
    """A side-view car-like body on a textured street background.

    The body is a rounded lower box with a cabin on top, two dark wheels and two side
    windows that show a continuation of the background texture (as real glass does).

    Args:
        background: optional (H, W, 3) uint8 image to use instead of the generated one.
    """
    rng = np.random.default_rng(seed)
    h, w = height, width
    if background is None:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        sky = np.stack([150 + 40 * yy / h, 180 + 30 * yy / h, 230 - 20 * yy / h], -1)
        ground = np.stack([110 + 0 * yy, 105 + 0 * yy, 100 + 0 * yy], -1)
        horizon = int(h * 0.62)
        bg = np.where((yy < horizon)[..., None], sky, ground)
        bg += rng.normal(0, 6, size=bg.shape)
        # a few "buildings" and "trees" so glass and background have structure
        # (muted, so the car stays the salient object)
        for _ in range(6):
            x0 = int(rng.integers(0, w - 20))
            bw, bh = int(rng.integers(w // 40, w // 12)), int(rng.integers(h // 10, h // 4))
            colour = np.array([160, 180, 205]) + rng.integers(-25, 25, 3)
            cv2.rectangle(bg, (x0, horizon - bh), (x0 + bw, horizon), colour.tolist(), -1)
        background = np.clip(bg, 0, 255).astype(np.uint8)
    image = background.copy()
    mask = np.zeros((h, w), np.uint8)
    glass = np.zeros((h, w), np.uint8)

    cx = w // 2 + int(rng.integers(-w // 20, w // 20 + 1))
    body_w, body_h = int(w * 0.62), int(h * 0.2)
    ground_y = int(h * 0.8)
    x0, x1 = cx - body_w // 2, cx + body_w // 2
    y1 = ground_y - int(h * 0.05)
    y0 = y1 - body_h
    colour = [int(c) for c in rng.integers(20, 230, 3)]
    cv2.rectangle(mask, (x0 + 8, y0), (x1 - 8, y1), 1, -1)
    cv2.rectangle(mask, (x0, y0 + 8), (x1, y1 - 8), 1, -1)
    for cx_, cy_ in ((x0 + 8, y0 + 8), (x1 - 8, y0 + 8), (x0 + 8, y1 - 8), (x1 - 8, y1 - 8)):
        cv2.circle(mask, (cx_, cy_), 8, 1, -1)
    roof_y = y0 - int(h * 0.16)
    cabin = np.array(
        [[x0 + body_w * 0.18, y0], [x0 + body_w * 0.32, roof_y], [x0 + body_w * 0.7, roof_y], [x0 + body_w * 0.86, y0]],
        np.int32,
    )
    cv2.fillPoly(mask, [cabin], 1)
    inset = max(3, h // 60)
    win1 = np.array(
        [[x0 + body_w * 0.22 + inset, y0 - inset], [x0 + body_w * 0.34, roof_y + inset], [x0 + body_w * 0.5 - inset, roof_y + inset], [x0 + body_w * 0.5 - inset, y0 - inset]],
        np.int32,
    )
    win2 = np.array(
        [[x0 + body_w * 0.5 + inset, y0 - inset], [x0 + body_w * 0.5 + inset, roof_y + inset], [x0 + body_w * 0.68, roof_y + inset], [x0 + body_w * 0.82 - inset, y0 - inset]],
        np.int32,
    )
    cv2.fillPoly(glass, [win1, win2], 1)
    wheel_r = int(h * 0.075)
    wheels = [(x0 + int(body_w * 0.2), ground_y - wheel_r), (x1 - int(body_w * 0.2), ground_y - wheel_r)]
    for wx, wy in wheels:
        cv2.circle(mask, (wx, wy), wheel_r, 1, -1)

    body = mask.astype(bool) & ~glass.astype(bool)
    shade = np.linspace(1.15, 0.75, h)[:, None, None]
    paint = np.clip(np.array(colour, np.float32)[None, None] * shade, 0, 255).astype(np.uint8)
    image[body] = np.broadcast_to(paint, image.shape)[body]
    # glass shows the background, darkened and tinted, as through real windows
    g = glass.astype(bool)
    image[g] = (image[g].astype(np.float32) * 0.55 + 10).astype(np.uint8)
    for wx, wy in wheels:
        cv2.circle(image, (wx, wy), wheel_r, (25, 25, 28), -1)
        cv2.circle(image, (wx, wy), wheel_r // 2, (150, 150, 155), -1)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return SyntheticScene(image=image, mask=mask.astype(bool), glass=g, box=box)
