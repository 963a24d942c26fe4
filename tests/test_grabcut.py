"""GrabCut with its colour models started on a sample (`bgr_core.functional.grabcut`)."""

import cv2
import numpy as np
import pytest

from bgr_core.functional.grabcut import COMPONENTS, colour_model, grab_cut, sample_colours


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark textured window on a lighter body, (64, 96, 3) uint8, and its seed mask:
    certain body at the border, probable glass over the window and beyond its right
    edge, probable body elsewhere."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(170, 12, (64, 96, 3)), 0, 255)
    image[16:44, 20:70] = np.clip(rng.normal((40, 50, 60), 10, (28, 50, 3)), 0, 255)
    mask = np.full((64, 96), cv2.GC_PR_BGD, np.uint8)
    mask[:4], mask[-4:], mask[:, :4], mask[:, -4:] = (cv2.GC_BGD,) * 4
    mask[18:42, 22:80] = cv2.GC_PR_FGD  # the seeds overshoot the window by 12 px
    mask[26:34, 36:56] = cv2.GC_FGD
    return image.astype(np.uint8), mask


def test_model_has_opencvs_layout():
    rng = np.random.default_rng(1)
    colours = np.concatenate([rng.normal(c, 2.0, (500, 3)) for c in (30, 120, 220)])
    model = colour_model(colours)
    assert model.shape == (1, 13 * COMPONENTS) and model.dtype == np.float64
    weights = model[0, :COMPONENTS]
    means = model[0, COMPONENTS : 4 * COMPONENTS].reshape(COMPONENTS, 3)
    covs = model[0, 4 * COMPONENTS :].reshape(COMPONENTS, 3, 3)
    assert weights.sum() == pytest.approx(1.0)
    used = weights > 0
    # every used component sits on one of the three colour clusters, each cluster is covered
    nearest = np.abs(means[used, :1] - np.array([[30, 120, 220]])).argmin(1)
    assert set(nearest) == {0, 1, 2}
    assert np.abs(means[used, 0] - np.array([30, 120, 220])[nearest]).max() < 6
    for cov in covs[used]:
        assert np.allclose(cov, cov.T) and np.linalg.det(cov) > 0


def test_flat_colours_get_opencvs_singular_fix():
    model = colour_model(np.full((50, 3), 77, np.uint8))
    weights = model[0, :COMPONENTS]
    assert weights.sum() == pytest.approx(1.0)
    k = int(weights.argmax())
    cov = model[0, 4 * COMPONENTS :].reshape(COMPONENTS, 3, 3)[k]
    assert np.allclose(cov, 0.01 * np.eye(3))


def test_too_few_colours_raise_opencvs_error():
    with pytest.raises(cv2.error):
        colour_model(np.zeros((COMPONENTS - 1, 3), np.uint8))


def test_sample_is_even_and_in_raster_order():
    image = np.arange(10 * 12 * 3, dtype=np.int64).reshape(10, 12, 3)
    where = np.zeros((10, 12), bool)
    where[2:8, 3:9] = True  # 36 pixels
    every = sample_colours(image, where, None)
    np.testing.assert_array_equal(every, image[where])
    np.testing.assert_array_equal(sample_colours(image, where, 36), every)
    np.testing.assert_array_equal(sample_colours(image, where, 10), every[::4])  # ceil(36 / 10)
    assert len(sample_colours(image, where, 12)) == 12


def test_unlimited_start_is_opencvs_own_grabcut():
    image, mask = _scene()
    ours_mask = mask.copy()
    cv2.setRNGSeed(0)
    ours = grab_cut(image, ours_mask, 2, limit=None)
    cv2.setRNGSeed(0)
    theirs = mask.copy()
    cv2.grabCut(image, theirs, None, np.zeros((1, 65)), np.zeros((1, 65)), 2, cv2.GC_INIT_WITH_MASK)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours_mask, mask)  # the input is left as it is


@pytest.mark.parametrize("limit", [None, 200, 40])
def test_sampled_start_snaps_to_the_window(limit):
    image, mask = _scene(3)
    cv2.setRNGSeed(0)
    out = grab_cut(image, mask, 2, limit=limit)
    glass = (out == cv2.GC_FGD) | (out == cv2.GC_PR_FGD)
    truth = np.zeros_like(glass)
    truth[16:44, 20:70] = True
    seeds = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert iou(glass, truth) > 0.97 > iou(seeds, truth)
    assert not glass[mask == cv2.GC_BGD].any()  # certain body stays body
