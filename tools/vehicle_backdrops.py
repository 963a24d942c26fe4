"""Backdrops for the vehicle net's training samples (`tools/vehicle_data.py`): scenes
without a vehicle that ship with scikit-image, and generated studio-like backdrops."""

from __future__ import annotations

import cv2
import numpy as np

# scikit-image's shipped photos without a vehicle: these train, HELD_OUT_EMPTY never does
# (`benchmarks/no_vehicle.py` measures on it).
TRAIN_EMPTY = ("camera", "chelsea", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
               "text", "moon", "colorwheel", "retina", "horse", "cell", "logo")
HELD_OUT_EMPTY = ("astronaut", "coffee", "rocket", "coins", "clock", "page")


def empty_scenes(names: tuple[str, ...] = TRAIN_EMPTY) -> list[np.ndarray]:
    """(H, W, 3) uint8 photos without a vehicle that ship with scikit-image (a person, a
    cat, textures, ...); none if it is not installed."""
    try:
        import skimage.data as d
    except ImportError:
        return []
    out = []
    for name in names:
        try:
            im = np.asarray(getattr(d, name)())
        except Exception:  # a fetched (not shipped) image, or missing in this version
            continue
        if im.dtype == bool:
            im = im.astype(np.uint8) * 255
        if im.dtype != np.uint8:
            im = np.clip(im * (255.0 / max(1.0, float(im.max()))), 0, 255).astype(np.uint8)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(im[..., :3]))
    return out


# -- synthetic backdrops ----------------------------------------------------------------


def synthetic_backdrop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: a studio wall over a floor, a gradient, noise or tiles."""
    kind = rng.integers(4)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if rng.random() < 0.5:  # mostly greys, as in showrooms
        c1[:] = c1.mean()
        c2[:] = c2.mean()
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    if kind == 0:  # wall and floor with a soft horizon
        horizon = rng.uniform(0.3, 0.8)
        t = 1 / (1 + np.exp(np.clip(-(y - horizon) * rng.uniform(20, 200), -50, 50)))
        img = c1 * (1 - t) + c2 * t + 0 * x
    elif kind == 1:  # linear gradient at an angle
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * x + np.sin(a) * y)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        img = c1 * (1 - t) + c2 * t
    elif kind == 2:  # smooth noise (blotches, foliage-like at fine scale)
        s = int(rng.integers(2, 24))
        n = rng.uniform(0, 1, (s, max(2, s * w // max(h, 1)), 3)).astype(np.float32)
        n = cv2.resize(n, (w, h), interpolation=cv2.INTER_CUBIC)
        img = c1 + (c2 - c1) * np.clip(n, 0, 1)
    else:  # tiles or stripes
        p = int(rng.integers(8, 80))
        yy, xx = np.mgrid[0:h, 0:w]
        t = (((yy // p) + (xx // p)) % 2) if rng.random() < 0.5 else ((xx // p) % 2)
        img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    img = img + rng.normal(0, rng.uniform(0, 8), (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)
