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

__all__ = ["GroundContact", "ground_contact", "synthesize_shadow", "shadow_room", "border_fade"]

# Shares of the vehicle box: how far past each end the ambient shadow reaches, over how
# much it fades out, and how deep below the ground it reaches (side view, front view).
_PAD, _FADE = 0.03, 0.02
_DEPTH_SIDE, _DEPTH_FRONT = 0.04, 0.10
# beyond the tyres the ground is taken at most this share of the car's height below the
# car's own lower outline: bumpers overhang the tyres, the ground does not run on down
# along the line through the tyres (that drew long slabs off three-quarter views)
_OVERHANG = 0.04
# ... under the car's lowest outline within this share of its width either side
_END_REACH = 0.02


@dataclass
class GroundContact:
    """Where a vehicle meets the ground on an (H, W) canvas.

    bottom: (W,) lowest vehicle row per column (NaN where the column has no vehicle).
    hull_x, hull_y: the local ground under the car: the part of the lower hull of the
        bottom profile that runs near the main ground line (through the tyres, the
        far ones of a three-quarter view too), without the body curving up at the ends.
    slope, intercept: the main ground line ``y = slope * x + intercept``, the hull's
        widest edge (through the two tyres nearest the camera).
    contacts: (N, 2) contact points (x, y) — profile points on the ground line.
    box: (x0, y0, x1, y1) of the thresholded matte.
    """

    bottom: np.ndarray
    hull_x: np.ndarray
    hull_y: np.ndarray
    slope: float
    intercept: float
    contacts: np.ndarray
    box: tuple[int, int, int, int]

    def ground_y(self, x: np.ndarray | float) -> np.ndarray | float:
        """The main ground line at `x`."""
        return self.slope * np.asarray(x, dtype=np.float64) + self.intercept

    def local_ground(self, x: np.ndarray) -> np.ndarray:
        """The ground under the car at `x`, extended along the main ground line beyond it."""
        return _extend(np.asarray(x, dtype=np.float64), self.hull_x, self.hull_y, self.slope)


def _extend(x: np.ndarray, px: np.ndarray, py: np.ndarray, slope: float) -> np.ndarray:
    """Piecewise-linear through (px, py), extended past both ends with `slope`."""
    y = np.interp(x, px, py)
    y = np.where(x < px[0], py[0] + (x - px[0]) * slope, y)
    return np.where(x > px[-1], py[-1] + (x - px[-1]) * slope, y)


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


def _bottom_profile(mask: torch.Tensor) -> tuple[np.ndarray, int] | None:
    """(H, W) bool → (W,) float32 row of each column's lowest True pixel (NaN in columns
    without one) and the first row that holds any; None when there is none. The columns
    are searched in NumPy over the rows the mask spans, on any device (a 2 MP matte 28 ->
    4 ms against torch's maximum of a row-index map; from a GPU the bool mask is a few MB
    to copy)."""
    m = mask.cpu().numpy()
    spans = np.flatnonzero(m.any(1))
    if len(spans) == 0:
        return None
    first, last = int(spans[0]), int(spans[-1])
    by_column = np.ascontiguousarray(m[first : last + 1].T)  # each column's pixels contiguous
    bottom = (last - by_column[:, ::-1].argmax(1)).astype(np.float32)
    bottom[~by_column.any(1)] = np.nan
    return bottom, first


def ground_contact(alpha: torch.Tensor, threshold: float = 0.5) -> GroundContact | None:
    """Bottom profile, ground line and contact points of a (1, H, W) or (H, W) matte; None if empty."""
    profile = _bottom_profile(alpha.reshape(alpha.shape[-2:]) >= threshold)
    if profile is None:
        return None
    bottom, y0 = profile
    cols = np.nonzero(~np.isnan(bottom))[0]
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    y1 = int(np.nanmax(bottom)) + 1
    xs = cols.astype(np.float64) + 0.5
    ys = bottom[cols].astype(np.float64) + 1.0  # the ground is at the lower edge of the pixel
    hull = _lower_hull(xs, ys)
    level = math.tan(math.radians(30))
    if len(hull) >= 2:
        spans = [xs[hull[k + 1]] - xs[hull[k]] for k in range(len(hull) - 1)]
        k = int(np.argmax(spans))
        a, b = k, k + 1  # positions in `hull` of the widest edge
        slope = (ys[hull[b]] - ys[hull[a]]) / max(xs[hull[b]] - xs[hull[a]], 1e-6)
        if abs(slope) > level:  # a ground line steeper than 30° is not a ground line
            slope, a, b = 0.0, k, k
        # follow the hull outwards while it stays near the ground's direction (tyres seen
        # in perspective); steeper edges are the body curving up at the ends
        bend = math.tan(math.radians(35))

        def edge_slope(i: int, j: int) -> float:
            return (ys[hull[j]] - ys[hull[i]]) / max(xs[hull[j]] - xs[hull[i]], 1e-6)

        while a > 0 and abs(edge_slope(a - 1, a) - slope) < bend:
            a -= 1
        while b < len(hull) - 1 and abs(edge_slope(b, b + 1) - slope) < bend:
            b += 1
        ground = [hull[i] for i in range(a, b + 1)]
        intercept = ys[hull[k]] - slope * xs[hull[k]]
    else:
        slope, ground = 0.0, [int(np.argmax(ys))]
        intercept = float(ys.max())
    hull_x, hull_y = xs[ground], ys[ground]
    if len(ground) == 1:  # a single point: level ground through it
        hull_x, hull_y = np.array([hull_x[0] - 1, hull_x[0] + 1]), np.array([hull_y[0], hull_y[0]])
    gap = _extend(xs, hull_x, hull_y, slope) - ys
    near = gap <= max(1.5, 0.01 * (y1 - y0))
    contacts = np.stack([xs[near], ys[near]], 1)
    return GroundContact(bottom=bottom, hull_x=hull_x, hull_y=hull_y, slope=float(slope),
                         intercept=float(intercept), contacts=contacts, box=(x0, y0, x1, y1))


def _lowest_near(bottom: np.ndarray, has: np.ndarray, reach: int) -> np.ndarray:
    """(W,) the lowest (largest) `bottom` among the columns with a vehicle within `reach`
    columns either side; `bottom` itself where a column has none."""
    low = np.where(has, bottom, -np.inf)
    padded = np.pad(low, reach, constant_values=-np.inf)
    near = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(1)
    return np.where(has, near, bottom)


def shadow_room(softness: float = 1.0) -> tuple[float, float]:
    """(side, below): how far `synthesize_shadow` can reach past the vehicle box, as
    shares of its width (on each side) and of its height (below), to where its opacity
    stays under 2/255 -- the room a layout keeps free so that no shadow is cut."""
    side = (_PAD + 5 * _FADE) * softness + 0.02 * softness
    below = 2 * _DEPTH_FRONT * softness + 0.03 * softness
    return side, below


def border_fade(h: int, w: int, width: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, H, W) window: 0 on the canvas border, rising smoothly (smoothstep) to 1 at
    `width` pixels inside it."""
    def ramp(n: int) -> torch.Tensor:
        d = torch.arange(n, device=device, dtype=torch.float32)
        d = torch.minimum(d, n - 1 - d) / max(width, 1.0)
        d = d.clamp(0, 1)
        return d * d * (3 - 2 * d)

    return (ramp(h).view(h, 1) * ramp(w).view(1, w))[None].to(dtype)


def _blur_radius(sigma: float) -> int:
    """The box radius of `_gaussian_blur`'s three passes for `sigma`."""
    return int(round(math.sqrt(12 * sigma * sigma / 3 + 1) / 2))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Three box passes ≈ a Gaussian of `sigma` (B, C, H, W)."""
    radius = _blur_radius(sigma)
    for _ in range(3):
        if radius >= 1:
            x = box_filter(x, radius)
    return x


def synthesize_shadow(alpha: torch.Tensor, strength: float = 0.8, softness: float = 1.0,
                      contact: GroundContact | None = None, border: float = 0.06) -> torch.Tensor:
    """A shadow layer (1, H, W) in [0, 1] (opacity of black) for a (1, H, W) vehicle matte.

    Built column by column against the local ground (the lower hull of the car's
    bottom profile, between the tyres): a tight contact shadow whose darkness falls with
    the gap between the car and the ground (black under tyres, lighter under sills,
    faint under high bumpers), and a soft ambient band that hugs the ground across the
    footprint and fades out just past the car's ends. Past the tyres the ground follows
    the car's own lower outline (at most `_OVERHANG` of its height below its lowest point
    within `_END_REACH` of its width) and past the car's ends it stays level, so a
    three-quarter view gets no slab running off along the line through its tyres, and a
    thin tip at a car's end (a bumper's corner, the back of a tyre) leaves no shadow
    floating beside it at its height. Above the ground only the gap under the car is
    shaded. The layer fades to 0 on the canvas border (over `border` of the canvas's
    smaller side), so it is never cut by it: a layout that keeps `shadow_room` free
    around the car leaves it whole.

    Args:
        alpha: (1, H, W) vehicle matte in [0, 1].
        strength: opacity of the darkest part (contact under the tyres), 0..1.
        softness: scales every blur and the extent of the ambient shadow (1 = default).
        contact: a precomputed `ground_contact(alpha)`.
        border: width of the fade at the canvas border, share of min(H, W).
    """
    h, w = alpha.shape[-2:]
    device = alpha.device
    contact = contact or ground_contact(alpha)
    if contact is None:
        return torch.zeros(1, h, w, device=device, dtype=alpha.dtype)
    x0, y0, x1, y1 = contact.box
    car_w, car_h = x1 - x0, max(y1 - y0, 1)
    # front / rear views are narrow and show more of the shadow in front of the car
    frontal = float(np.clip((2.6 - car_w / car_h) / 1.4, 0.0, 1.0))

    xs = np.arange(w, dtype=np.float64) + 0.5
    has = ~np.isnan(contact.bottom)
    bottom = np.where(has, contact.bottom + 1.0, np.inf)
    ground = contact.local_ground(xs)
    # past the tyres: no deeper than the overhang under the car's own outline, taken as
    # its lowest point within `_END_REACH` of the car's width: a thin tip (the bumper's
    # corner, a tow bar) must not lift the ground, or the shadow past the car's end, level
    # with its last column, floats beside it
    beyond = (xs < contact.hull_x[0]) | (xs > contact.hull_x[-1])
    outline = _lowest_near(bottom, has, max(1, round(_END_REACH * car_w)))
    ground = np.where(beyond & has, np.minimum(ground, outline + _OVERHANG * car_h), ground)
    # past the car's ends: level with the ground at its end columns
    cols = np.nonzero(has)[0]
    ground[: cols[0]] = ground[cols[0]]
    ground[cols[-1] + 1 :] = ground[cols[-1]]
    gap = np.where(np.isinf(bottom), np.inf, np.clip(ground - bottom, 0.0, None))

    def row(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, w)

    ground_t, gap_t = row(ground), row(gap)
    start = np.minimum(bottom, ground)  # shadow starts at the car's outline, or the ground beside it
    start_t = row(start)
    ramp = max(1.0, 0.01 * car_h)
    sigma = max(0.6, 0.004 * math.hypot(car_w, car_h) * softness)
    # the layer is 0 above the highest start (less the ramp) before the blur, which
    # spreads it up by three box radii: only the rows from there down are computed (the
    # same values within float rounding: the box sums over the zero rows above add
    # nothing; OpenCV's row stripes start elsewhere, about 1e-6 apart); 4 rows to spare
    top = int(math.floor(float(start.min()) - ramp)) - 3 * _blur_radius(sigma) - 4
    r0 = min(max(0, top), h - 1)
    rows = torch.arange(r0, h, device=device, dtype=torch.float32).view(h - r0, 1) + 0.5
    t = rows - ground_t  # > 0 below the ground
    below, above = t.clamp_min(0), (-t).clamp_min(0)

    # contact: darkest at the tyres, lighter where the body floats above the ground;
    # in the gap under the car it fades upwards from the ground
    tight = max(1.0, 0.015 * car_h * softness)
    reach = 0.85 * torch.exp(-(gap_t / (0.05 * car_h)) ** 2) + 0.3 * torch.exp(-(gap_t / (0.2 * car_h)) ** 2)
    reach = torch.where(torch.isfinite(gap_t), reach.clamp(max=1.0), torch.zeros_like(reach))
    lift = max(1.0, 0.04 * car_h * softness)
    # one exp of the summed exponents (the same function as their product, half the time)
    contact_layer = reach * torch.exp(-((below / tight) ** 2 + (above / lift) ** 2))

    # ambient: along the ground across the footprint, fading just past the ends
    pad = _PAD * car_w * softness
    xs_t = row(xs)
    fade = max(1.0, _FADE * car_w * softness)
    across = torch.sigmoid((xs_t - (x0 - pad)) / fade) * torch.sigmoid(((x1 + pad) - xs_t) / fade)
    depth = max(1.5, (_DEPTH_SIDE + (_DEPTH_FRONT - _DEPTH_SIDE) * frontal) * car_h * softness)
    ambient = 0.5 * across * torch.exp(-((below / depth) ** 2 + (above / (2 * lift)) ** 2))

    # nothing above the car's lower outline or the ground beside it; blurred after the
    # cut so the car's ends leave no hard edge
    allowed = ((rows - start_t) / ramp + 1.0).clamp(0.0, 1.0)
    layer = (1.0 - (1.0 - contact_layer) * (1.0 - ambient)) * allowed
    layer = _gaussian_blur(layer[None, None], sigma)[0]
    if border > 0:
        layer = layer * border_fade(h, w, border * min(h, w), device)[:, r0:]
    out = torch.zeros(1, h, w, device=device, dtype=alpha.dtype)
    out[:, r0:] = (strength * layer).clamp(0.0, 1.0).to(alpha.dtype)
    return out
