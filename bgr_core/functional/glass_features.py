"""Per-pixel glass cues on a small crop around a vehicle (step 1 of
`bgr_core.functional.glass.detect_glass`), with NumPy and OpenCV.

Every cue is relative to the vehicle's silhouette so that it holds whatever the image
size: position in the vehicle box and below the silhouette's top edge, distance to the
sides and the outline, colour (CIE Lab, chroma) and its difference from the body paint,
likeness to the background ring just outside the matte (as the cue model was
calibrated on it: `calibrated_ring_cue`), texture, edges, darkness relative to the
neighbourhood, and the same cues blurred at two scales and sampled above, below, left
and right of the pixel. The cue model
(`bgr_core.models.glass_cues.GlassCueNet`) turns them into a probability.
"""

from __future__ import annotations

import cv2
import numpy as np

from .grabcut import sample_colours

__all__ = ["BAND", "FEATURE_NAMES", "glass_features", "lab_colours", "ring_likeness", "calibrated_ring_cue", "paint_colour"]

# glass is searched above this share of the vehicle box's height (from the top)
BAND = 0.6

# -- small maps (NumPy / OpenCV) -------------------------------------------------------


class _NormalisedBlur:
    """Means over the pixels of weight `m` (h, w) in k x k boxes (normalised convolution),
    each box size's denominator computed once: a crop's cues take 17 such means over 4
    sizes."""

    def __init__(self, m: np.ndarray) -> None:
        self.m = m
        self.weight: dict[int, np.ndarray] = {}

    def __call__(self, x: np.ndarray, k: float) -> np.ndarray:
        k = max(3, int(k) | 1)
        if k not in self.weight:
            self.weight[k] = np.maximum(cv2.blur(self.m, (k, k)), 1e-3)
        return cv2.blur(x * self.m, (k, k)) / self.weight[k]


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`x` moved by (dy, dx): out[y, x] = x[y - dy, x - dx], zeros where nothing comes in."""
    out = np.zeros_like(x)
    h, w = x.shape
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = x[
        max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    return out


# colours k-means sees for the paint (every n-th): 5,000 instead of 20,000 took 2 of its
# 4 ms a crop with the same glass figures (default matte, fit half: recall / outside
# 0.883 / 0.089 -> 0.885 / 0.090)
_PAINT_SAMPLE = 5000


def paint_colour(lab: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """The body paint: centre of the largest of 3 k-means clusters of the Lab colours in `sel`."""
    if np.count_nonzero(sel) < 30:
        return np.median(lab.reshape(-1, 3), 0)
    x = sample_colours(lab, sel, _PAINT_SAMPLE).astype(np.float32, copy=False)
    cv2.setRNGSeed(0)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(x, 3, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    return centres[np.bincount(labels.ravel(), minlength=3).argmax()]


# Lab histograms: 8 bins per axis over L 0..100, a and b -60..60; colours beyond the
# range count in the edge bins (white's L is 100)
_LAB_LOW = np.array([0.0, -60.0, -60.0], np.float32)
_LAB_BIN = np.array([100.0, 120.0, 120.0], np.float32) / 8


def _lab_bins(lab: np.ndarray) -> np.ndarray:
    """(h, w, 3) Lab → (h, w) int64 index of each pixel's 8x8x8 histogram bin."""
    idx = np.clip(((lab - _LAB_LOW) / _LAB_BIN).astype(np.int64), 0, 7)
    return (idx[..., 0] * 8 + idx[..., 1]) * 8 + idx[..., 2]


def ring_likeness(lab: np.ndarray, ring: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """P(ring | colour): how much each pixel's colour looks like the background just
    outside the matte (`ring`) rather than the vehicle (`inside`), from 8x8x8 Lab
    histograms of the two: (h, w) float32 in (0, 1), 0.5 where either has < 20 pixels.

    Used by the window tint (`bgr_core.functional.glass`, what shows the outside world
    through the glass). Until 7 December 2026 the tint read `calibrated_ring_cue`
    instead, one value for most pixels of a crop; the glass cues still do.
    """
    h, w = ring.shape
    if ring.sum() < 20 or inside.sum() < 20:
        return np.full((h, w), 0.5, np.float32)
    bins = _lab_bins(lab)
    hr = np.bincount(bins[ring], minlength=512) + 0.5
    hs = np.bincount(bins[inside], minlength=512) + 0.5
    hr /= hr.sum()
    hs /= hs.sum()
    return (hr / (hr + hs)).astype(np.float32)[bins]


_LAB_RANGE = [0, 100, -60, 60, -60, 60]


def calibrated_ring_cue(lab: np.ndarray, ring: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The "ring" cue as the shipped cue model (``weights/glass_cues.safetensors``) was
    calibrated on: meant as `ring_likeness`, but ``cv2.calcBackProject`` reads the
    (8, 8, 8) NumPy histogram as an 8 x 8 image of 8 channels, so most pixels get one
    value per crop (about the ratio of the vehicle's pixels to all counted ones) and
    colours beyond the Lab range 0 (found 7 December 2026). Kept as calibrated: the cue
    model refitted on the true likeness scored lower glass recall held out (0.874 ->
    0.865, outside share 0.089 -> 0.077) and left half of the README example's
    windscreen untinted (weights/README.md)."""
    h, w = ring.shape
    if ring.sum() < 20 or inside.sum() < 20:
        return np.full((h, w), 0.5, np.float32)
    bins = [8, 8, 8]
    hr = cv2.calcHist([lab], [0, 1, 2], ring.astype(np.uint8), bins, _LAB_RANGE) + 0.5
    hs = cv2.calcHist([lab], [0, 1, 2], inside.astype(np.uint8), bins, _LAB_RANGE) + 0.5
    hr /= hr.sum()
    hs /= hs.sum()
    ratio = (hr / (hr + hs)).astype(np.float32)
    return cv2.calcBackProject([lab], [0, 1, 2], ratio, _LAB_RANGE, scale=1)


FEATURE_NAMES = (
    # position and shape
    "r", "r2", "d", "d2", "u_centre", "outline_dist",
    # colour
    "L", "chroma", "dL_paint", "abs_dL_paint", "dE_paint", "ring", "texture", "gradient", "rel_dark", "b",
    # the same, blurred at 4 % and 12 % of the vehicle's size
    *(f"{n}@{s}" for s in (4, 12) for n in ("L", "chroma", "dE_paint", "ring", "texture", "b")),
    # blurred paint distance, lightness and silhouette above / below / left / right
    *(f"{n}{d}" for d in ("^", "v", "<", ">") for n in ("dE_paint", "L", "inside")),
    # distance to the row's sides, width of the row, vertical edges
    "side_dist", "row_width", "v_edges",
)  # fmt: skip


def lab_colours(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (h, w, 3) float32 CIE Lab (L in 0..100)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def glass_features(rgb: np.ndarray, support: np.ndarray, lab: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel glass cues on a small crop around the vehicle.

    Args:
        rgb: (h, w, 3) uint8 RGB, the vehicle with some margin, long side ~`WORK_SIZE`.
        support: (h, w) bool, the vehicle silhouette with its holes filled (not empty).
        lab: the crop in Lab when the caller has it already (`rgb` converted as here).
    Returns:
        features (h, w, len(FEATURE_NAMES)) float32 and r (h, w), the height in the
        vehicle box (0 at its top, 1 at its bottom).
    """
    S = support
    h, w = S.shape
    ys, xs = np.nonzero(S)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    hb, wb = y1 - y0, x1 - x0
    size = max(hb, wb)
    yy = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    xx = np.arange(w, dtype=np.float32)[None].repeat(h, 0)
    r = (yy - y0) / hb
    u = (xx - x0) / wb
    top = np.where(S.any(0), S.argmax(0), h).astype(np.float32)
    d = (yy - top[None]) / hb
    lab = lab_colours(rgb) if lab is None else lab
    L = lab[..., 0]
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    paint = paint_colour(lab, S & (r > 0.3) & (r < 0.8))
    dL = L - paint[0]
    diff = lab - paint  # the distance written out: np.linalg.norm's values, 3x faster
    dE = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1] + diff[..., 2] * diff[..., 2])
    outline = cv2.distanceTransform(np.pad(S, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1] / size
    k = max(2, int(0.05 * size))
    grown = cv2.dilate(S.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    ring = grown.astype(bool) & ~S & (r < BAND)
    ringp = calibrated_ring_cue(lab, ring, S & (r > 0.45))
    Lm = cv2.blur(L, (5, 5))
    texture = np.sqrt(np.maximum(cv2.blur(L * L, (5, 5)) - Lm**2, 0))
    gradient = np.hypot(cv2.Sobel(L, cv2.CV_32F, 1, 0), cv2.Sobel(L, cv2.CV_32F, 0, 1))
    m = S.astype(np.float32)
    nblur = _NormalisedBlur(m)
    local_L = nblur(L, 0.15 * size)
    base = [
        r, r * r, d, d * d, np.abs(u - 0.5) * 2, outline * 5,
        L / 100, chroma / 30, dL / 100, np.abs(dL) / 100, dE / 100, ringp,
        texture / 20, gradient / 200, (L - local_L) / 50, lab[..., 2] / 30,
    ]  # fmt: skip
    blurred = [L / 100, chroma / 30, dE / 100, ringp, texture / 20, lab[..., 2] / 30]
    ctx = [nblur(x, s * size) for s in (0.04, 0.12) for x in blurred]
    dE_b, L_b = nblur(dE / 100, 0.04 * size), nblur(L / 100, 0.04 * size)
    o = int(0.08 * size)
    for dy, dx in ((o, 0), (-o, 0), (0, o), (0, -o)):  # the values above, below, left, right
        ctx += [_shift(dE_b, dy, dx), _shift(L_b, dy, dx), _shift(m, dy, dx)]
    has = S.any(1)
    left = np.where(has, S.argmax(1), 0).astype(np.float32)
    right = np.where(has, w - S[:, ::-1].argmax(1), w).astype(np.float32)
    side = np.clip(np.minimum(xx - left[:, None], right[:, None] - xx) / wb, 0, 1)
    row_width = ((right - left) / wb)[:, None].repeat(w, 1)
    v_edges = nblur(np.abs(cv2.Sobel(L, cv2.CV_32F, 0, 1)), 0.03 * size) / 5
    # stacked as planes (a contiguous copy each) and viewed as (h, w, n): stacking on the
    # last axis directly costs 10x more (14 ms a photo)
    maps = base + ctx + [side * 4, row_width, v_edges]
    feats = np.stack([x.astype(np.float32, copy=False) for x in maps], 0).transpose(1, 2, 0)
    return feats, r
