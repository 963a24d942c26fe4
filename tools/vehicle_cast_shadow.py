"""Sunlit cast shadows for the vehicle net's pasted cars (`tools/vehicle_data.py`).

In sunshine a car throws its silhouette onto the ground beside or in front of it: a dark,
flat, sharp-edged shape joined to the tyres. The shipped net takes such a shadow for part
of the car (`photos/alpr_unconstrained/03033.jpg`: the Golf's shadow on the tarmac kept at
every input size). The drop shadow the samples already had is a soft ellipse under the car;
`cast_shadow` adds the projected shape, on the background only, labelled as background.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["cast_shadow"]


def cast_shadow(base: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`base` (h, w, 3) float RGB darkened by the car's (`alpha`, (h, w) in [0, 1] on the
    same canvas) shadow projected on the ground plane from a random sun direction.

    A point of the car at height ``y1 - y`` above its lowest row ``y1`` lands at
    ``x + dx * (y1 - y)``, ``y1 + dy * (y1 - y)``: `dx` sideways (sun low and to a side:
    long shadows), `dy` towards the camera (> 0) or away from it (< 0, mostly hidden by
    the car). The shape is blurred by a penumbra of 0.5-3 % of the car's width."""
    ys, xs = np.nonzero(alpha > 0.5)
    if len(ys) == 0:
        return base
    h, w = alpha.shape
    y1 = float(ys.max())
    width = float(xs.max() - xs.min() + 1)
    dx = rng.uniform(0.3, 1.6) * rng.choice([-1.0, 1.0])
    dy = rng.uniform(-0.15, 0.4)
    m = np.array([[1.0, -dx, dx * y1], [0.0, -dy, y1 + dy * y1]], np.float32)
    shade = cv2.warpAffine(alpha.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    # the ground under the car's own footprint is in shadow too (joins the shape to the tyres)
    foot = np.zeros_like(shade)
    x0, x1 = int(xs.min()), int(xs.max())
    cv2.rectangle(foot, (x0, int(y1 - 0.04 * width)), (x1, int(y1 + 0.02 * width)), 1.0, -1)
    shade = np.maximum(shade, foot)
    k = int(max(3, width * rng.uniform(0.005, 0.03))) | 1
    shade = cv2.GaussianBlur(np.clip(shade, 0, 1), (k, k), 0)
    strength = rng.uniform(0.35, 0.75)
    return base * (1 - strength * shade[..., None])
