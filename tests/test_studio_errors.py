"""`benchmarks/studio_errors`: the IoU's losses land in the right band; an enlarged view
keeps photo and label aligned."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from studio_errors import enlarged, split_errors  # noqa: E402


def _car() -> np.ndarray:
    true = np.zeros((100, 160), bool)
    true[20:80, 30:130] = True
    return true


def test_a_one_pixel_shift_is_lost_on_the_outline_only():
    true = _car()
    pred = np.roll(true, 1, axis=1)  # one column kept on the right, one cut on the left
    r = split_errors(pred, true)
    union = (pred | true).sum()
    assert r["fp"][0] == pytest.approx(60 / union) and r["fn"][0] == pytest.approx(60 / union)
    assert r["fp"][1:].sum() == 0 and r["fn"][1:].sum() == 0
    assert r["iou"] + r["fp"].sum() + r["fn"].sum() == pytest.approx(1.0)


def test_far_blobs_and_a_cut_bottom_are_told_apart():
    true = _car()
    pred = true.copy()
    pred[5:10, 140:150] = True  # a blob 10+ px from the car
    pred[75:80, 30:130] = False  # the car's lowest 5 rows cut (its bottom 12 % is 7 rows)
    r = split_errors(pred, true)
    union = (pred | true).sum()
    assert r["fp"][4] == pytest.approx(50 / union) and r["fp"][:4].sum() == 0
    assert r["fn"].sum() == pytest.approx(500 / union)
    assert r["low_fn"] == pytest.approx(500 / union) and r["low_fp"] == 0
    assert r["fn"][3] > 0 and r["fn"][4] == 0  # the cut reaches 4-5 px deep, not beyond 8


def test_nothing_to_compare_is_a_perfect_score():
    empty = np.zeros((10, 10), bool)
    assert split_errors(empty, empty)["iou"] == 1.0


def test_an_enlarged_view_keeps_its_aspect_and_its_label_on_the_car():
    true = _car()
    photo = np.where(true[..., None], 200, 40).astype(np.uint8).repeat(3, axis=2)
    big, mask = enlarged(photo, true, 480)
    assert big.shape == (300, 480, 3) and mask.shape == (300, 480)
    assert split_errors(big[..., 0] >= 120, mask)["iou"] > 0.99  # the car's pixels under its label
    assert mask.sum() == pytest.approx(9 * true.sum(), rel=0.02)
