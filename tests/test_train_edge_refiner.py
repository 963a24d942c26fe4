"""tools/train_edge_refiner.py: training on a tiny synthetic set runs in seconds and
learns to move a shifted, blurred outline back onto the photo's edge (the selection IoU
it reports beats the coarse matte's), and the studio reader keeps photo and mask aligned."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import train_edge_refiner as T  # noqa: E402
from bgr_core.functional.edge_refine import edge_band, gather_patches  # noqa: E402
from bgr_core.testing import synthetic_car_scene  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def _scene(seed: int):
    s = synthetic_car_scene(120, 160, seed=seed)
    coarse = cv2.GaussianBlur(np.roll(s.mask.astype(np.float32), 2, axis=1), (5, 5), 1.5)
    return s.image, s.mask, torch.from_numpy(np.clip(coarse, 0, 1))[None]


def _samples(scenes, patch: int, radius: int) -> dict[str, np.ndarray]:
    xs, ys = [], []
    for img, mask, alpha in scenes:
        yy, xx = torch.nonzero(edge_band(alpha, radius), as_tuple=True)
        image = torch.from_numpy(img).permute(2, 0, 1).float().div(255)
        xs.append(gather_patches(image, alpha, yy, xx, patch).to(torch.float16).numpy())
        ys.append(mask[yy.numpy(), xx.numpy()].astype(np.float16))
    x, y = np.concatenate(xs), np.concatenate(ys)
    return {"x": x, "y": y, "studio": np.zeros(len(y), bool)}


def test_a_few_epochs_learn_the_shift():
    args = argparse.Namespace(patch=7, hidden=[16], radius=3, dilations=[1], epochs=4, batch=256, lr=1e-2, seed=0)
    train = [_scene(s) for s in range(4)]
    held = [_scene(s) for s in (10, 11)]
    state, score, epoch = T.train(args, _samples(train, args.patch, args.radius), held)
    coarse = T.select_iou(None, held, args.radius)
    assert state is not None and set(state) == {"body.0.weight", "body.0.bias", "out.weight", "out.bias"}
    assert score > coarse + 0.01 and 1 <= epoch <= args.epochs


@pytest.mark.skipif(not (DATA / "carvana" / "images").is_dir(), reason="no ../shared/data/carvana")
def test_studio_photo_and_mask_stay_aligned():
    car = T.V.splits(DATA)["carvana_train"][0]
    img, mask = T.read_studio(DATA, car, "01")
    assert img.shape == (512, 768, 3) and mask.shape == (512, 768) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1 and ((mask > 0) & (mask < 1)).any()  # soft at the edge
    rng = np.random.default_rng(0)
    for _ in range(3):
        small, m = T.studio_sample(DATA, car, "01", rng)
        assert small.shape[:2] == m.shape
        # the photo's edges lie on the mask's outline: its gradient there is far above its mean
        grey = cv2.GaussianBlur(small.mean(axis=2).astype(np.float32), (3, 3), 0.8)
        grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        outline = (m > 0.2) & (m < 0.8)
        assert grad[outline].mean() > 2 * grad.mean()


def test_the_matte_it_learns_on_is_pinned_by_net_size_and_precision():
    # what the pipeline runs where the CPU lacks native bfloat16 (float32 at 224) and where
    # it has it (bfloat16 at 288), whatever this machine's own default is
    m = T.Matte(None, "float32")
    assert (m.net_size, m.dtype) == (224, "float32") and not m.stage.reduced_precision
    m = T.Matte(None, "bfloat16")
    assert (m.net_size, m.dtype) == (288, "bfloat16")
    m = T.Matte(224, "bfloat16")
    assert (m.net_size, m.dtype) == (224, "bfloat16")
    assert m.stage.recheck_size == 320 and m.stage.edge_refiner is None  # the fast preset, unrefined


@pytest.mark.skipif(not (DATA / "carparts" / "annotations.json").is_file(), reason="no ../shared/data/carparts")
def test_street_samples_leave_the_rough_polygon_outline_unknown():
    maker = T.V.SampleMaker(DATA, mirrors=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        img, target, known = T.street_sample(maker, rng)
        assert img.shape[:2] == target.shape == known.shape and known.dtype == bool
        assert set(np.unique(target)) <= {0.0, 1.0} and target.any() and known.any() and not known.all()
        # no known pixel has a side neighbour on the other side of the polygons' outline
        car, cross = target > 0.5, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        inner = cv2.erode(car.astype(np.uint8), cross) > 0
        outer = cv2.dilate(car.astype(np.uint8), cross) > 0
        assert not (known & car & ~inner).any() and not (known & ~car & outer).any()
