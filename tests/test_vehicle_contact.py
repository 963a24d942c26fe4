"""tools/vehicle_contact.py: the band along a vehicle's lower outline lies on both sides
of it, under the vehicle only, and only where the label is known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from vehicle_contact import contact_band  # noqa: E402


def test_contact_band_lies_on_both_sides_of_the_lower_outline():
    vehicle = np.zeros((240, 360), np.float32)
    vehicle[60:200, 40:250] = 1  # rows 60..199, columns 40..249
    vweight = np.ones_like(vehicle)
    vweight[:, 200:] = 0  # unknown on the right
    band = contact_band(vehicle, vweight) > 0
    rows, cols = np.nonzero(band)
    d = round(0.03 * 140)
    assert rows.min() == 200 - d and rows.max() == 199 + d  # sills above, floor below
    assert cols.min() == 40 and cols.max() == 199  # under the car, and only where labelled
    assert band[200 - d : 200].all(axis=0)[40:200].all() and band[200 : 200 + d].all(axis=0)[40:200].all()
    assert contact_band(np.zeros((8, 8), np.float32), np.ones((8, 8))).max() == 0


def test_a_car_cut_by_the_frame_below_has_no_band_there():
    vehicle = np.zeros((100, 100), np.float32)
    vehicle[40:, 20:80] = 1  # runs out of the bottom edge
    assert contact_band(vehicle, np.ones_like(vehicle)).max() == 0
