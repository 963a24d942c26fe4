"""Synthetic shadow under a vehicle, from its matte alone.

The ground contact comes from the matte's lower outline: the lowest vehicle pixel of
each column (the *bottom profile*) and its lower convex hull, whose longest edge
joins the two tyres that stand on the ground nearest the camera (the *ground line*).
From these: a tight dark contact shadow where the car meets the ground (tyres, then
the gap under the sills and bumpers) and a soft ambient shadow along the footprint,
wider and deeper for front / rear views than for side views. Nothing is drawn above
the lower outline of the car or above the ground line beside it.

Coordinates: pixels, origin top-left, y down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .guided_filter import box_filter

__all__ = ["GroundContact", "ground_contact", "synthesize_shadow"]


@dataclass
class GroundContact:
    """Where a vehicle meets the ground on an (H, W) canvas.

    bottom: (W,) lowest vehicle row per column (NaN where the column has no vehicle).
    slope, intercept: the ground line ``y = slope * x + intercept``.
    contacts: (N, 2) contact points (x, y) — profile points on the ground line.
    box: (x0, y0, x1, y1) of the thresholded matte.
    """

    bottom: np.ndarray
    slope: float
    intercept: float
    contacts: np.ndarray
    box: tuple[int, int, int, int]

    def ground_y(self, x: np.ndarray | float) -> np.ndarray | float:
        return self.slope * np.asarray(x, dtype=np.float64) + self.intercept


def _lower_hull(xs: np.ndarray, ys: np.ndarray) -> list[int]:
    """Indices of the lower envelope (largest y, image coordinates) of points sorted by x."""
    hull: list[int] = []
    for i in range(len(xs)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # keep b only if it lies below (larger y than) the chord a -> i
            cross = (xs[b] - xs[a]) * (ys[i] - ys[a]) - (ys[b] - ys[a]) * (xs[i] - xs[a])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def ground_contact(alpha: torch.Tensor, threshold: float = 0.5) -> GroundContact | None:
    """Bottom profile, ground line and contact points of a (1, H, W) or (H, W) matte; None if empty."""
    mask = (alpha.reshape(alpha.shape[-2:]) >= threshold)
    h, w = mask.shape
    has = mask.any(0)
    if not bool(has.any()):
        return None
    rows = torch.arange(h, device=mask.device).view(h, 1)
    lowest = torch.where(mask, rows, torch.full_like(rows, -1)).amax(0)
    topmost = torch.where(mask, rows, torch.full_like(rows, h)).amin(0)
    bottom = lowest.float().cpu().numpy()
    bottom[~has.cpu().numpy()] = np.nan
    cols = np.nonzero(~np.isnan(bottom))[0]
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    y0, y1 = int(topmost.min()), int(np.nanmax(bottom)) + 1
    xs = cols.astype(np.float64) + 0.5
    ys = bottom[cols].astype(np.float64) + 1.0  # the ground is at the lower edge of the pixel
    hull = _lower_hull(xs, ys)
    if len(hull) >= 2:
        spans = [xs[hull[k + 1]] - xs[hull[k]] for k in range(len(hull) - 1)]
        k = int(np.argmax(spans))
        a, b = hull[k], hull[k + 1]
        slope = (ys[b] - ys[a]) / max(xs[b] - xs[a], 1e-6)
        # a ground line steeper than 30° is not a ground line: fall back to level
        if abs(slope) > math.tan(math.radians(30)):
            slope = 0.0
        intercept = ys[a] - slope * xs[a] if slope else float(ys.max())
    else:
        slope, intercept = 0.0, float(ys.max())
    gap = slope * xs + intercept - ys
    near = gap <= max(1.5, 0.01 * (y1 - y0))
    contacts = np.stack([xs[near], ys[near]], 1)
    return GroundContact(bottom=bottom, slope=float(slope), intercept=float(intercept), contacts=contacts,
                         box=(x0, y0, x1, y1))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Three box passes ≈ a Gaussian of `sigma` (B, C, H, W)."""
    radius = int(round(math.sqrt(12 * sigma * sigma / 3 + 1) / 2))
    for _ in range(3):
        if radius >= 1:
            x = box_filter(x, radius)
    return x


def synthesize_shadow(alpha: torch.Tensor, strength: float = 0.8, softness: float = 1.0,
                      contact: GroundContact | None = None) -> torch.Tensor:
    """A shadow layer (1, H, W) in [0, 1] (opacity of black) for a (1, H, W) vehicle matte.

    Args:
        alpha: (1, H, W) vehicle matte in [0, 1].
        strength: opacity of the darkest part (contact under the tyres), 0..1.
        softness: scales every blur and the extent of the ambient shadow (1 = default).
        contact: a precomputed `ground_contact(alpha)`.
    """
    h, w = alpha.shape[-2:]
    device = alpha.device
    contact = contact or ground_contact(alpha)
    if contact is None:
        return torch.zeros(1, h, w, device=device, dtype=alpha.dtype)
    x0, y0, x1, y1 = contact.box
    car_w, car_h = x1 - x0, max(y1 - y0, 1)
    # front / rear views are narrow and cast deeper visible shadow than side views
    frontal = float(np.clip((2.6 - car_w / car_h) / 1.4, 0.0, 1.0))

    xs = np.arange(w, dtype=np.float64) + 0.5
    ground = contact.ground_y(xs)
    bottom = np.where(np.isnan(contact.bottom), np.inf, contact.bottom + 1.0)
    gap = np.clip(ground - bottom, 0.0, None)
    gap[np.isinf(bottom)] = np.inf
    ground_t = torch.as_tensor(ground, dtype=torch.float32, device=device).view(1, w)
    # lowest point shadow may start from: the car's lower outline under it, the ground beside it
    start_t = torch.as_tensor(np.minimum(bottom, ground), dtype=torch.float32, device=device).view(1, w)
    gap_t = torch.as_tensor(gap, dtype=torch.float32, device=device).view(1, w)
    rows = torch.arange(h, device=device, dtype=torch.float32).view(h, 1) + 0.5
    below_ground = rows - ground_t  # > 0 under the ground line

    # contact: darkest at the tyres, lighter where the body floats above the ground
    tight = max(1.0, 0.012 * car_h * softness)
    reach = torch.exp(-(gap_t / (0.06 * car_h)) ** 2) * 0.85 + 0.15 * torch.exp(-(gap_t / (0.3 * car_h)) ** 2)
    reach = torch.where(torch.isfinite(gap_t), reach, torch.zeros_like(reach))
    under_car = (rows >= start_t).float() * torch.exp(-(below_ground.clamp_min(0) / tight) ** 2)
    contact_layer = reach * under_car

    # ambient: a soft band along the ground line across the footprint, fading past the ends
    pad = (0.04 + 0.04 * frontal) * car_w * softness
    xs_t = torch.as_tensor(xs, dtype=torch.float32, device=device).view(1, w)
    fade = max(1.0, 0.06 * car_w * softness)
    across = torch.sigmoid((xs_t - (x0 - pad)) / (0.35 * fade)) * torch.sigmoid(((x1 + pad) - xs_t) / (0.35 * fade))
    depth = max(1.5, (0.05 + 0.1 * frontal) * car_h * softness)
    along = torch.exp(-(below_ground.clamp_min(0) / depth) ** 2)
    ambient = 0.55 * across * along * (rows >= start_t - 0.02 * car_h).float()

    layer = 1.0 - (1.0 - contact_layer) * (1.0 - ambient)
    layer = _gaussian_blur(layer[None, None], max(0.6, 0.004 * math.hypot(car_w, car_h) * softness))[0]
    # nothing above the lower outline / ground line, softly
    ramp = max(1.0, 0.01 * car_h)
    allowed = ((rows - start_t) / ramp + 1.0).clamp(0.0, 1.0)
    return (strength * layer * allowed).clamp(0.0, 1.0).to(alpha.dtype)
