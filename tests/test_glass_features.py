"""Per-pixel glass cues (`bgr_core.functional.glass_features`)."""

import numpy as np

from bgr_core.functional.glass_features import (
    FEATURE_NAMES,
    glass_features,
    lab_colours,
    paint_colour,
    ring_likeness,
)


def _car(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red body with a dark window on a green ground, (90, 160, 3) uint8, and its
    silhouette (h, w) bool."""
    rng = np.random.default_rng(seed)
    rgb = np.clip(rng.normal((60, 150, 70), 6, (90, 160, 3)), 0, 255)
    support = np.zeros((90, 160), bool)
    support[30:80, 15:145] = True
    support[12:30, 45:115] = True  # the cabin
    rgb[support] = np.clip(rng.normal((190, 30, 35), 6, (support.sum(), 3)), 0, 255)
    rgb[15:28, 50:110] = np.clip(rng.normal((25, 30, 35), 4, (13, 60, 3)), 0, 255)  # window
    return rgb.astype(np.uint8), support


def test_features_are_per_pixel_finite_and_named():
    rgb, support = _car()
    feats, r = glass_features(rgb, support)
    assert feats.shape == (90, 160, len(FEATURE_NAMES)) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    # r: 0 at the silhouette's top row, 1 just below its bottom row
    assert r[12, 0] == 0 and r[80, 0] == 1
    np.testing.assert_allclose(feats[..., FEATURE_NAMES.index("r")], r, rtol=1e-6)
    # the same features whether the caller passes the Lab image or not
    again, _ = glass_features(rgb, support, lab_colours(rgb))
    np.testing.assert_array_equal(feats, again)


def test_window_differs_from_the_paint_in_its_cues():
    rgb, support = _car(1)
    feats, _ = glass_features(rgb, support)
    dE = feats[..., FEATURE_NAMES.index("dE_paint")]
    window, body = dE[17:26, 55:105], dE[50:70, 30:130]
    assert window.min() > 4 * body.max()
    # blurred over 4 % of the vehicle's size, the window still stands out of the body
    dE4 = feats[..., FEATURE_NAMES.index("dE_paint@4")]
    assert dE4[21, 80] > 3 * dE4[60, 80]


def test_paint_is_the_dominant_colour():
    rgb, support = _car(2)
    lab = lab_colours(rgb)
    paint = paint_colour(lab, support)
    body = lab[50:70, 30:130].reshape(-1, 3).mean(0)
    assert np.abs(paint - body).max() < 3


def test_ring_likeness_tells_ground_from_body():
    rgb, support = _car(3)
    lab = lab_colours(rgb)
    ring = np.zeros_like(support)
    ring[82:88, 10:150] = True  # green ground below the car
    like = ring_likeness(lab, ring, support)
    assert like[5, 5] > 0.7 and like[60, 80] < 0.1
    # too few pixels to tell: even odds everywhere
    assert np.all(ring_likeness(lab, np.zeros_like(ring), support) == 0.5)
