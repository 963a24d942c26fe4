"""tools/vehicle_data.py: training samples stay aligned through compositing and
augmentation, splits never mix cars or photos, every kind of sample is well formed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import vehicle_data as V  # noqa: E402
from vehicle_contact import contact_band  # noqa: E402


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _rect_layers(h: int = 240, w: int = 360) -> V.Layers:
    """A bright off-centre rectangle (vehicle, and glass in its top third) on black."""
    vehicle = np.zeros((h, w), np.float32)
    vehicle[60:200, 40:250] = 1
    glass = np.zeros_like(vehicle)
    glass[60:100, 40:250] = 1
    image = np.repeat((vehicle * 220)[..., None], 3, axis=2).astype(np.uint8)
    return V.Layers(image, vehicle, np.ones_like(vehicle), glass, np.ones_like(vehicle))


@pytest.mark.parametrize("seed", range(12))
def test_augment_keeps_image_and_targets_aligned(seed):
    out = V.augment(_rect_layers(), 96, np.random.default_rng(seed))
    assert out["image"].shape == (96, 96, 3) and out["image"].dtype == np.uint8
    for k in ("vehicle", "vweight", "glass", "gweight"):
        assert out[k].shape == (96, 96) and out[k].dtype == np.float32
        assert 0 <= out[k].min() and out[k].max() <= 1
    lum = out["image"].astype(np.float32).mean(axis=2)
    bright = lum > (lum[out["vehicle"] > 0.5].mean() + lum[out["vehicle"] < 0.5].mean()) / 2
    assert _iou(bright, out["vehicle"] > 0.5) > 0.95
    # the glass band stays the top of the vehicle, on the same side after a mirror
    g = out["glass"] > 0.5
    assert g.any() and (g & ~(out["vehicle"] > 0.5)).sum() == 0
    cols_g, cols_v = np.nonzero(g.any(axis=0))[0], np.nonzero((out["vehicle"] > 0.5).any(axis=0))[0]
    assert abs(cols_g.min() - cols_v.min()) <= 1 and abs(cols_g.max() - cols_v.max()) <= 1


def test_weights_are_zero_wherever_any_source_pixel_was_unknown():
    layers = _rect_layers()
    layers.vweight[100:110, 100:110] = 0  # a 10x10 unknown patch
    out = V.augment(layers, 120, np.random.default_rng(3))
    assert set(np.unique(out["vweight"])) == {0.0, 1.0}
    unknown = (out["vweight"] == 0).sum()
    assert 9 <= unknown <= 40  # the patch, squashed 3x in x and 2x in y, and its edge pixels


def test_splits_never_share_a_car_or_photo(shared_data):
    sp = V.splits(shared_data)
    cars = [set(sp[k]) for k in ("carvana_train", "carvana_select", "carvana_report")]
    photos = [set(sp[k]) for k in ("carparts_train", "carparts_select", "carparts_held")]
    for group in (cars, photos):
        for i in range(3):
            for j in range(i + 1, 3):
                assert not group[i] & group[j]
    assert set(V.report_cars(shared_data)) == cars[2] and len(cars[1]) == V.SELECT_CARS
    assert all(i % 2 == 0 for i in photos[2]) and all(i % 2 == 1 for i in photos[0] | photos[1])


@pytest.mark.parametrize("kind", [*V.SampleMaker.KINDS, "pair"])
def test_every_kind_of_sample(shared_data, kind):
    maker = V.SampleMaker(shared_data, 64, pairs=kind == "pair")
    for seed in range(3):
        s = maker.sample((7, seed), kind=kind)
        assert s["kind"] == kind and s["image"].shape == (64, 64, 3)
        assert s["vweight"].sum() > 0 and (s["gweight"].sum() > 0 or kind in ("street", "pair"))
        if kind == "empty":
            assert s["vehicle"].max() == 0 and s["glass"].max() == 0
        else:
            assert (s["vehicle"] * s["vweight"]).sum() > 0  # a labelled vehicle
        assert (s["glass"] <= s["vehicle"] + 1e-3).all() or kind == "carparts"
    # a sample is a pure function of its seed
    a, b = maker.sample((1, 2, 3)), maker.sample((1, 2, 3))
    assert all(np.array_equal(a[k], b[k]) for k in ("image", "vehicle", "vweight", "glass", "gweight"))


@pytest.mark.parametrize("seed", range(6))
def test_emphasis_follows_its_pixels_through_augmentation(seed):
    layers = _rect_layers()
    layers.emphasis = np.zeros_like(layers.vehicle)
    layers.emphasis[60:90, 40:70] = 1  # the vehicle's left top corner, like a mirror
    out = V.augment(layers, 96, np.random.default_rng(seed))
    em = out["emphasis"] > 0
    assert em.any() and (em & ~(out["vehicle"] > 0.5)).sum() == 0 and (out["vweight"][em] == 1).all()
    # it stays at the corner the vehicle has on that side (mirrored or not)
    cols_e, cols_v = np.nonzero(em.any(axis=0))[0], np.nonzero((out["vehicle"] > 0.5).any(axis=0))[0]
    assert min(abs(cols_e.min() - cols_v.min()), abs(cols_e.max() - cols_v.max())) <= 1
    assert V.augment(_rect_layers(), 96, np.random.default_rng(seed))["emphasis"].max() == 0


@pytest.mark.parametrize("seed", range(6))
def test_contact_marks_follow_the_lower_outline_through_augmentation(seed):
    layers = _rect_layers()
    layers.contact = contact_band(layers.vehicle, layers.vweight)
    out = V.augment(layers, 96, np.random.default_rng(seed))
    plain = V.augment(_rect_layers(), 96, np.random.default_rng(seed))
    assert "contact" not in plain and all(np.array_equal(out[k], plain[k]) for k in plain)
    c, v = out["contact"] > 0, out["vehicle"] > 0.5
    rows_v, cols_v = np.nonzero(v.any(axis=1))[0], np.nonzero(v.any(axis=0))[0]
    rows_c, cols_c = np.nonzero(c.any(axis=1))[0], np.nonzero(c.any(axis=0))[0]
    assert abs(rows_c.min() - rows_v.max()) <= 2 and abs(rows_c.max() - rows_v.max()) <= 2
    assert abs(cols_c.min() - cols_v.min()) <= 1 and abs(cols_c.max() - cols_v.max()) <= 1  # mirrored with it


def test_contact_samples_are_the_plain_samples_with_marks(shared_data):
    plain, marked = V.SampleMaker(shared_data, 96), V.SampleMaker(shared_data, 96, contact=True)
    for kind in V.SampleMaker.KINDS:
        a, b = plain.sample((4, 1), kind=kind), marked.sample((4, 1), kind=kind)
        assert all(np.array_equal(a[k], b[k]) for k in ("image", "vehicle", "vweight", "glass", "gweight", "emphasis"))
        if kind in ("studio", "street", "synthetic"):  # a Carvana car: marked along its lower outline
            c = b["contact"] > 0
            assert c.any() and (b["vweight"][c] == 1).all()
            low = np.nonzero((b["vehicle"] > 0.5).any(axis=1))[0].max()
            assert np.nonzero(c.any(axis=1))[0].max() <= low + 4
        else:
            assert "contact" not in b


def test_mirror_samples_mark_mirrors_and_keep_them_labelled(shared_data):
    plain, marked = V.SampleMaker(shared_data, 128), V.SampleMaker(shared_data, 128, mirrors=True)
    seen = gained = 0
    for seed in range(12):
        a, b = plain.sample((5, seed), kind="carparts"), marked.sample((5, seed), kind="carparts")
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["vehicle"], b["vehicle"])
        assert a["emphasis"].max() == 0
        em = b["emphasis"] > 0
        assert (b["vweight"] >= a["vweight"]).all()  # only the mirrors' band is narrower
        if em.any():
            seen += 1
            assert (b["vehicle"][em] > 0.5).all() and (b["vweight"][em] == 1).all()
            gained += int(b["vweight"].sum() > a["vweight"].sum())
    assert seen >= 3 and gained >= 3


def test_wheel_samples_mark_wheels_and_keep_the_mirror_marks(shared_data):
    mirrors = V.SampleMaker(shared_data, 128, mirrors=True)
    both = V.SampleMaker(shared_data, 128, mirrors=True, wheels=True)
    seen = 0
    for seed in range(12):
        a, b = mirrors.sample((7, seed), kind="carparts"), both.sample((7, seed), kind="carparts")
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["vehicle"], b["vehicle"])
        ea, eb = a["emphasis"] > 0, b["emphasis"] > 0
        assert (eb >= ea).all()  # the mirrors stay marked
        assert (b["vweight"] >= a["vweight"]).all()  # only the wheels' band is narrower
        if (eb & ~ea).any():
            seen += 1
            assert (b["vehicle"][eb] > 0.5).all() and (b["vweight"][eb] == 1).all()
    assert seen >= 4  # most carparts photos show a wheel


def test_pairs_add_the_pair_kind_to_the_draw_and_change_nothing_else(shared_data):
    plain, pairs = V.SampleMaker(shared_data, 64), V.SampleMaker(shared_data, 64, pairs=True)
    assert "pair" not in plain.kinds and pairs.kinds["pair"] == V.SampleMaker.PAIRS
    assert sum(pairs.kinds.values()) == pytest.approx(1.0)
    for kind in V.SampleMaker.KINDS:  # a kind asked for by name is the same sample
        a, b = plain.sample((2, 5), kind=kind), pairs.sample((2, 5), kind=kind)
        assert all(np.array_equal(a[k], b[k]) for k in ("image", "vehicle", "vweight", "glass", "gweight"))
    drawn = [pairs.sample((3, seed), size=16)["kind"] for seed in range(60)]
    assert 2 <= drawn.count("pair") <= 20


def _flat_car(value: tuple[int, int, int]) -> V.CarvanaPhoto:
    mask = np.zeros((512, 768), bool)
    mask[220:400, 120:640] = True
    image = np.zeros((512, 768, 3), np.uint8)
    image[mask] = value
    return V.CarvanaPhoto(image, mask)


def test_pair_labels_the_front_car_and_the_car_behind_as_background(shared_data, monkeypatch):
    """With flat cars on a black backdrop: the red car pasted first (behind) is never
    vehicle, and is labelled background where it shows and is clearly secondary; the
    green car in front is the vehicle."""
    maker = V.SampleMaker(shared_data, 64, pairs=True)
    black = lambda rng, h, w: np.zeros((h, w, 3), np.uint8)  # noqa: E731
    monkeypatch.setattr(V, "synthetic_backdrop", black)
    monkeypatch.setattr(maker, "street_backdrop", lambda h, w, rng: (
        V.Layers(black(rng, h, w), *(np.zeros((h, w), np.float32) if i % 2 == 0 else np.ones((h, w), np.float32)
                                     for i in range(4))), np.zeros((h, w), bool)))
    labelled_behind = 0
    for seed in range(10):
        cars = iter([_flat_car((230, 20, 20)), _flat_car((20, 230, 20))])
        monkeypatch.setattr(maker, "random_car", lambda rng: next(cars))
        layers = maker.layers("pair", np.random.default_rng(seed))
        img = layers.image.astype(np.int32)
        red = (img[..., 0] > img[..., 1] + 60) & (img[..., 0] > 80)
        green = (img[..., 1] > img[..., 0] + 60) & (img[..., 1] > 80)
        assert green.sum() > 500 and (layers.vehicle[green] > 0.5).mean() > 0.97
        assert (layers.vehicle[red] < 0.5).all()
        labelled_behind += int((red & (layers.vweight == 1)).sum() > 50)
    assert labelled_behind >= 4
