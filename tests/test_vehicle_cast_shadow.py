"""tools/vehicle_cast_shadow.py: the projected shadow darkens the ground beside and in
front of the car, joined to its lowest row, never above the car; no car, no shadow."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from vehicle_cast_shadow import cast_shadow  # noqa: E402


def _car(h: int = 300, w: int = 450) -> np.ndarray:
    alpha = np.zeros((h, w), np.float32)
    alpha[150:220, 150:300] = 1  # body, lowest row 219
    alpha[110:150, 180:270] = 1  # cabin
    return alpha


def test_the_shadow_lies_on_the_ground_beside_the_car_and_never_above_it():
    alpha = _car()
    base = np.full((*alpha.shape, 3), 200.0, np.float32)
    for seed in range(20):
        out = cast_shadow(base, alpha, np.random.default_rng(seed))
        dark = (out[..., 0] < 190) & (alpha < 0.5)
        rows, cols = np.nonzero(dark)
        assert dark.sum() > 200  # a shape, not a line
        assert rows.min() >= 219 - 0.15 * 109 - 6  # at most a little behind the car (109 px tall), never in the sky
        assert dark[215:230].any()  # joined to the car's lowest row
        assert (out <= base + 1e-4).all() and out.min() >= 200 * 0.25 - 1e-3  # only darkens, at most 75 %
        side = np.concatenate([cols[cols < 150], cols[cols >= 300]])
        assert side.size > 0  # reaches out beside the car: the sun is to a side


def test_no_car_no_shadow():
    base = np.full((40, 60, 3), 120.0, np.float32)
    out = cast_shadow(base, np.zeros((40, 60), np.float32), np.random.default_rng(0))
    assert np.array_equal(out, base)
