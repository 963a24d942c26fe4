"""A scene's layers and the pasting of a car onto a backdrop, for the vehicle net's
training samples (`vehicle_data.SampleMaker`). Never imported by the package.

Everything here works on one canvas: images (h, w, 3) uint8 RGB, masks and weights
(h, w) float32 or bool, origin top left; geometry is a 2x3 affine map (source ->
canvas) that every layer follows, so image and targets stay aligned.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import cv2
import numpy as np
from vehicle_cast_shadow import cast_shadow


@dataclass
class CarvanaPhoto:
    """A Carvana studio photo at its true aspect: image (512, 768, 3) uint8, mask bool."""

    image: np.ndarray
    mask: np.ndarray


# -- geometry helpers -------------------------------------------------------------------


def cover(img: np.ndarray, h: int, w: int, rng: np.random.Generator, interp=cv2.INTER_AREA) -> tuple[np.ndarray, np.ndarray]:
    """Scale `img` to cover (h, w) and crop at random; returns the crop and the 2x3
    affine map (source -> canvas) so other layers can follow it."""
    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw) * rng.uniform(1.0, 1.4)
    x0 = rng.uniform(0, iw * s - w)
    y0 = rng.uniform(0, ih * s - h)
    m = np.array([[s, 0, -x0], [0, s, -y0]], np.float32)
    return warp(img, m, h, w, interp), m


def warp(layer: np.ndarray, m: np.ndarray, h: int, w: int, interp=cv2.INTER_LINEAR, border=0) -> np.ndarray:
    if layer.dtype == bool:
        layer = layer.astype(np.float32)
    return cv2.warpAffine(layer, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def edge_band(mask: np.ndarray, r: int) -> np.ndarray:
    """Pixels within r of the outline of `mask`."""
    m = mask.astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return (cv2.dilate(m, k) > 0) & ~(cv2.erode(m, k) > 0)


@dataclass
class Layers:
    """A scene on its canvas before the photographic augmentation, all (h, w):
    image uint8 RGB, vehicle / vweight / glass / gweight float32; ``emphasis`` float32
    in {0, 1} marks the labelled vehicle pixels the net tends to miss (door mirrors),
    which the trainer may weigh more (None: none); ``contact`` likewise marks the pixels
    along the vehicle's lower outline (None: not drawn)."""

    image: np.ndarray
    vehicle: np.ndarray
    vweight: np.ndarray
    glass: np.ndarray
    gweight: np.ndarray
    emphasis: np.ndarray | None = None
    contact: np.ndarray | None = None


@dataclass
class Placement:
    """Where a pasted car goes: its width as a share of the canvas width, the x of its
    centre and the y of its lowest row, in canvas pixels."""

    share: float
    cx: float
    bottom: float


def draw_placement(h: int, w: int, rng: np.random.Generator) -> Placement:
    """A dealer-photo size and place: small cars to cars cut by the frame."""
    share = float(np.clip(rng.lognormal(np.log(0.72), 0.3), 0.25, 1.25))
    cx = w / 2 + rng.uniform(-0.25, 0.25) * w * (1.05 - min(share, 1.0))
    return Placement(share, cx, rng.uniform(0.62, 1.08) * h)


def paste_car(bg: Layers, car: CarvanaPhoto, rng: np.random.Generator, cast: bool = False,
              place: Placement | None = None) -> tuple[Layers, np.ndarray]:
    """Paste `car` (cut out by its mask) on `bg` at `place` (default: a random
    dealer-photo size and place, `draw_placement`), with a soft shadow under it (and with
    `cast`, 40 % of the time, a sunlit cast shadow: `vehicle_cast_shadow`). Returns the
    scene and the car's alpha on the canvas."""
    h, w = bg.image.shape[:2]
    ys, xs = np.nonzero(car.mask)
    cx0, cx1, cy0, cy1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    cw, chh = cx1 - cx0, cy1 - cy0
    share, cx, bottom = astuple(place or draw_placement(h, w, rng))
    s = share * w / cw
    if chh * s > 1.15 * h:
        s = 1.15 * h / chh
    tx, ty = cx - (cx0 + cx1) / 2 * s, bottom - cy1 * s
    m = np.array([[s, 0, tx], [0, s, ty]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    rgb = warp(car.image, m, h, w, interp).astype(np.float32)
    alpha = np.clip(warp(car.mask.astype(np.float32), m, h, w, cv2.INTER_LINEAR), 0, 1)
    rgb = _jitter_car(rgb, rng)
    base = bg.image.astype(np.float32)
    if rng.random() < 0.8:  # contact and drop shadow: background, not vehicle
        base = _shadow(base, alpha, rng)
    if cast and rng.random() < 0.4:
        base = cast_shadow(base, alpha, rng)
    image = base * (1 - alpha[..., None]) + rgb * alpha[..., None]
    glass_w = bg.gweight * (alpha < 0.01)  # glass is not labelled on Carvana cars
    return Layers(
        np.clip(image, 0, 255).astype(np.uint8),
        np.maximum(bg.vehicle * (1 - alpha), alpha),
        np.maximum(bg.vweight, (alpha > 0.5).astype(np.float32)),
        bg.glass * (alpha < 0.01),
        glass_w.astype(np.float32),
    ), alpha


def _jitter_car(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint and light changes of the car alone (float RGB 0..255)."""
    if rng.random() < 0.5:
        g = rgb.mean(axis=2, keepdims=True)
        rgb = g + (rgb - g) * rng.uniform(0.5, 1.4)
    if rng.random() < 0.3:  # hue: rotate the channels' weights a little
        rgb = rgb[..., rng.permutation(3)] * 0.3 + rgb * 0.7
    return rgb * rng.uniform(0.6, 1.25) + rng.uniform(-20, 20)


def _shadow(base: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(alpha > 0.5)
    if len(ys) == 0:
        return base
    h, w = alpha.shape
    x0, x1, y1 = xs.min(), xs.max(), ys.max()
    shade = np.zeros((h, w), np.float32)
    cx, cy = (x0 + x1) / 2, y1 - 0.02 * (x1 - x0)
    ax = max(2, int((x1 - x0) * rng.uniform(0.45, 0.6)))
    ay = max(2, int((x1 - x0) * rng.uniform(0.04, 0.12)))
    cv2.ellipse(shade, (int(cx), int(cy)), (ax, ay), 0, 0, 360, 1.0, -1)
    k = int(max(3, (x1 - x0) * rng.uniform(0.02, 0.08))) | 1
    shade = cv2.GaussianBlur(shade, (k, k), 0)
    return base * (1 - rng.uniform(0.3, 0.85) * shade[..., None])


def secondary(parts: np.ndarray, alpha: np.ndarray) -> bool:
    """Whether the background's vehicle (`parts` on the canvas) is clearly secondary to
    the pasted one (`alpha`): under a third of its area and farther from the centre."""
    a_bg, a_car = parts.sum(), (alpha > 0.5).sum()
    if a_bg == 0:
        return True
    if a_car == 0 or a_bg > a_car / 3:
        return False
    h, w = parts.shape
    c = np.array([h / 2, w / 2])

    def dist(m):
        return np.hypot(*(np.argwhere(m).mean(axis=0) - c))

    return dist(parts) > dist(alpha > 0.5)


def label_if_secondary(scene: Layers, car: np.ndarray, alpha: np.ndarray) -> Layers:
    """Label a background car (`car`, (h, w) bool on the canvas) as background where it
    shows beside the pasted one (`alpha`) if it is clearly secondary to it, a 2 px band
    along its outline left unknown; otherwise leave it as it was (out of the loss)."""
    visible = car & (alpha < 0.5)
    if car.any() and secondary(visible, alpha):
        scene.vweight = np.maximum(scene.vweight, (visible & ~edge_band(car, 2)).astype(np.float32))
    return scene
