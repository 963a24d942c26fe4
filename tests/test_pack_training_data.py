"""tools/pack_training_data.py: a budgeted copy of the training data with the selection
split of shared/, no held-out photo, files unchanged, and a sample maker that runs on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import pack_training_data as P  # noqa: E402
import vehicle_data as V  # noqa: E402


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_packed_copy_keeps_the_selection_split_and_leaves_held_out_photos_behind(shared_data, tmp_path):
    out = tmp_path / "data"
    cars, packed = P.pack(shared_data, out, budget=15_000_000, views=("01", "09"))
    assert _size(out) <= 15_000_000 and cars
    full = V.splits(shared_data)
    assert packed == V.splits(out)
    assert packed["carvana_select"] == full["carvana_select"]
    assert packed["carparts_select"] == full["carparts_select"]
    assert set(packed["carvana_train"]) == set(cars) <= set(full["carvana_train"])
    assert not set(packed["carvana_train"]) & set(full["carvana_report"])
    ann = json.loads((out / "carparts" / "annotations.json").read_text())
    assert not {im["id"] for im in ann["images"]} & set(full["carparts_held"])
    # the cars come in the split's fixed order, with the views asked for, unchanged
    assert cars == sorted(full["carvana_train"], key=V.car_rank)[: len(cars)]
    photo = out / "carvana" / "images" / f"{cars[0]}_09.jpg"
    assert photo.read_bytes() == (shared_data / "carvana" / "images" / photo.name).read_bytes()
    assert not (out / "carvana" / "images" / f"{cars[0]}_05.jpg").exists()
    # the trainer's sample maker draws from the copy, with the views that are there
    maker = V.SampleMaker(out, 64)
    assert maker.views[cars[0]] == ["01", "09"]
    for i in range(6):
        assert maker.sample((0, 0, i), kind="studio")["image"].shape == (64, 64, 3)


def test_a_budget_below_the_photos_that_must_travel_is_refused(shared_data, tmp_path):
    with pytest.raises(SystemExit, match="over the budget"):
        P.pack(shared_data, tmp_path / "data", budget=1_000_000, views=("01",))
    assert not (tmp_path / "data").exists()
