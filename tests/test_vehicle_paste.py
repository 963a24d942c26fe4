"""tools/vehicle_paste.py: a pasted car is labelled where it is drawn and placed where
asked; a background car is labelled background only when clearly secondary."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import vehicle_paste as P  # noqa: E402


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _car() -> P.CarvanaPhoto:
    mask = np.zeros((512, 768), bool)
    mask[200:400, 100:650] = True
    return P.CarvanaPhoto(np.full((512, 768, 3), 230, np.uint8), mask)


def _black(h: int, w: int) -> P.Layers:
    zeros = np.zeros((h, w), np.float32)
    return P.Layers(np.zeros((h, w, 3), np.uint8), zeros, np.ones((h, w), np.float32), zeros.copy(),
                    np.ones((h, w), np.float32))


@pytest.mark.parametrize("seed", range(8))
def test_pasted_car_is_labelled_where_it_is_drawn(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((512, 768), bool)
    mask[200:400, 100:650] = True
    car = P.CarvanaPhoto(np.full((512, 768, 3), 230, np.uint8), mask)
    h, w = 300, 450
    bg = P.Layers(np.zeros((h, w, 3), np.uint8), *(np.zeros((h, w), np.float32) for _ in range(2)),
                  np.zeros((h, w), np.float32), np.ones((h, w), np.float32))
    bg.vweight[:] = 1
    scene, alpha = P.paste_car(bg, car, rng)
    assert np.array_equal(scene.vehicle, alpha)  # nothing else is vehicle on a plain backdrop
    drawn = scene.image.astype(np.float32).mean(axis=2) > 60
    assert _iou(drawn, alpha > 0.5) > 0.97
    # glass is not labelled on the car, and is "not glass" on the backdrop
    assert (scene.gweight[alpha > 0.5] == 0).all() and (scene.gweight[alpha == 0] == 1).all()


def test_secondary_rule():
    alpha = np.zeros((100, 100), np.float32)
    alpha[30:70, 20:80] = 1  # the pasted car, central
    small_side = np.zeros((100, 100), bool)
    small_side[40:60, 85:100] = True
    big = np.zeros((100, 100), bool)
    big[10:90, 0:50] = True
    assert P.secondary(small_side, alpha)
    assert not P.secondary(big, alpha)
    assert P.secondary(np.zeros((100, 100), bool), alpha)




@pytest.mark.parametrize("seed", range(4))
def test_a_placement_puts_the_car_where_asked(seed):
    h, w = 300, 450
    place = P.Placement(share=0.4, cx=150.0, bottom=240.0)
    scene, alpha = P.paste_car(_black(h, w), _car(), np.random.default_rng(seed), place=place)
    ys, xs = np.nonzero(alpha > 0.5)
    assert abs((xs.max() + 1 - xs.min()) - 0.4 * w) <= 2
    assert abs((xs.min() + xs.max() + 1) / 2 - 150) <= 1.5 and abs(ys.max() + 1 - 240) <= 1.5


def test_drawn_placement_is_what_paste_car_draws_itself():
    h, w = 300, 450
    a = P.paste_car(_black(h, w), _car(), np.random.default_rng(5))[1]
    rng = np.random.default_rng(5)
    b = P.paste_car(_black(h, w), _car(), rng, place=P.draw_placement(h, w, rng))[1]
    assert np.array_equal(a, b)


def test_label_if_secondary_labels_only_a_clearly_secondary_car():
    alpha = np.zeros((100, 100), np.float32)
    alpha[30:70, 20:80] = 1
    small = np.zeros((100, 100), bool)
    small[40:60, 75:100] = True  # partly behind the pasted car, the rest beside it
    big = np.zeros((100, 100), bool)
    big[5:95, 0:60] = True
    for car, labelled in ((small, True), (big, False)):
        scene = _black(100, 100)
        scene.vweight[:] = 0
        out = P.label_if_secondary(scene, car, alpha)
        shows = car & (alpha < 0.5)
        assert (out.vweight[~shows] == 0).all()  # nothing else changes
        if labelled:  # where it shows, less a 2 px band along its outline
            assert out.vweight[shows].mean() > 0.5 and (out.vweight[P.edge_band(car, 2)] == 0).all()
        else:
            assert (out.vweight == 0).all()
