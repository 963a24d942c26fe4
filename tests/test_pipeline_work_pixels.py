"""`Pipeline(work_pixels=...)`: photos and canvases over the working resolution are worked
on at a reduced copy; the output keeps its full size and matches the uncapped pipeline."""

import numpy as np
import pytest

from bgr_core import Pipeline
from bgr_core.testing import synthetic_car_scene

CAP = 60_000  # the 480 x 640 test photo (307 k pixels) is worked on at about 212 x 283


@pytest.fixture(scope="module")
def scene():
    return synthetic_car_scene(480, 640, seed=3)


@pytest.fixture(scope="module")
def capped():
    return Pipeline("cpu", work_pixels=CAP)


@pytest.fixture(scope="module")
def full():
    return Pipeline("cpu", work_pixels=None)


def _alpha_iou(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a[..., 3] > 127, b[..., 3] > 127
    return (x & y).sum() / max(1, (x | y).sum())


def test_work_pixels_is_checked():
    with pytest.raises(ValueError, match="work_pixels"):
        Pipeline("cpu", work_pixels=100)
    with pytest.raises(ValueError, match="work_pixels"):
        Pipeline("cpu", work_pixels=True)


def test_small_photos_take_the_plain_path(capped):
    small = synthetic_car_scene(120, 160, seed=3)
    r = capped.remove_background(image_file=small.image)
    assert r.ok and r.frame.source is None and r.array.shape == (120, 160, 3)


def test_large_photo_is_worked_on_reduced_and_output_at_full_size(scene, capped, full):
    a = capped.remove_background(image_file=scene.image, background="transparent_background")
    b = full.remove_background(image_file=scene.image, background="transparent_background")
    assert a.ok and b.ok, (a.error_description, b.error_description)
    h, w = a.frame.size
    assert h * w <= CAP * 1.01 and a.frame.source is not None
    assert a.array.shape == b.array.shape == (480, 640, 4) and a.array.dtype == np.uint8
    assert _alpha_iou(a.array, b.array) > 0.97
    truth = scene.mask
    assert ((a.array[..., 3] > 127) == truth).mean() > 0.98
    # the body (not the corrected glass) keeps the photo's own colours, at full resolution
    body = scene.mask & ~scene.glass & (a.array[..., 3] == 255)
    diff = np.abs(a.array[..., :3].astype(int) - scene.image.astype(int))[body]
    assert diff.mean() < 2


@pytest.mark.parametrize("params", [
    {"layout": "center", "aspect_ratio": "16:9", "effect": "shadow"},
    {"layout": "center", "output_size": "1000x700"},
    {"layout": "none", "output_size": "500x500", "window_correction": "tint"},
])
def test_layouts_keep_their_full_size(scene, capped, full, params):
    a = capped.remove_background(image_file=scene.image, **params)
    b = full.remove_background(image_file=scene.image, **params)
    assert a.ok and b.ok, (a.error_description, b.error_description)
    assert a.array.shape == b.array.shape
    diff = np.abs(a.array.astype(int) - b.array.astype(int))
    assert diff.mean() < 6, diff.mean()
    assert a.frame.size[0] * a.frame.size[1] <= CAP * 1.01


def test_crop_is_about_the_same_crop(scene, capped, full):
    a = capped.remove_background(image_file=scene.image, layout="crop")
    b = full.remove_background(image_file=scene.image, layout="crop")
    (ha, wa), (hb, wb) = a.array.shape[:2], b.array.shape[:2]
    assert abs(ha - hb) <= 0.03 * hb and abs(wa - wb) <= 0.03 * wb


def test_a_large_canvas_from_a_small_photo_is_capped_too(capped):
    small = synthetic_car_scene(120, 160, seed=3)
    r = capped.remove_background(image_file=small.image, layout="center", output_size="800x600")
    assert r.ok and r.array.shape == (600, 800, 3)
    h, w = r.frame.size
    assert h * w <= CAP * 1.01


def test_custom_background_at_full_resolution(scene, capped):
    bg = np.zeros((480, 640, 3), np.uint8)
    bg[:, ::2] = (200, 40, 40)  # one-pixel stripes: lost in any working copy
    r = capped.remove_background(image_file=scene.image, background="custom_background", background_file=bg)
    assert r.ok
    box = np.zeros(scene.mask.shape, bool)
    x0, y0, x1, y1 = scene.box
    box[max(0, y0 - 40): y1 + 40, max(0, x0 - 40): x1 + 40] = True
    outside = ~box
    # the stripes survive (a working copy would grey them to 100); a faint alpha may
    # move a pixel by a level or two
    assert np.abs(r.array[outside].astype(int) - bg[outside]).max() <= 3


def test_batches_mix_sizes(scene, capped):
    small = synthetic_car_scene(120, 160, seed=3)
    out = list(capped.remove_backgrounds([scene.image, small.image, scene.image]))
    assert [r.array.shape[:2] for r in out] == [(480, 640), (120, 160), (480, 640)]
    np.testing.assert_array_equal(out[0].array, out[2].array)


def test_a_large_custom_background_covers_a_small_output(capped):
    """A background far larger than `output_size` (reduced on decode) still covers the
    canvas, centred, as at any size."""
    import torch

    from bgr_core.functional.compose import cover_resize

    yy, xx = np.mgrid[0:1500, 0:3000]
    bg = np.stack([xx * 255 // 3000, yy * 255 // 1500, np.full_like(xx, 90)], -1).astype(np.uint8)
    small = synthetic_car_scene(120, 160, seed=3)
    r = capped.remove_background(image_file=small.image, background="custom_background", background_file=bg,
                                 layout="center", output_size="300x200")
    assert r.ok and r.array.shape == (200, 300, 3)
    expected = cover_resize(torch.from_numpy(bg).permute(2, 0, 1)[None].float() / 255, (200, 300))[0]
    expected = (expected.permute(1, 2, 0).numpy() * 255).round()
    corner = (slice(0, 12), slice(0, 300))  # above the car
    assert np.abs(r.array[corner].astype(float) - expected[corner]).max() <= 3
