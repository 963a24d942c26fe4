"""Plate geometry and overlay (`bgr_core.functional.quad_warp`, `bgr_core.functional.plates`):
homographies, warps, appearance matching, the blank plate."""

import cv2
import numpy as np
import pytest
import torch

from bgr_core.functional.plates import (
    blank_plate,
    get_perspective_transform,
    letterbox,
    order_quad,
    overlay_plate,
    quad_aspect,
    quad_iou,
    warp_into_quad,
)
from plate_scenes import plate_scene, to_tensor


# -- geometry ------------------------------------------------------------------------------------------


def test_homography_matches_opencv():
    src = torch.tensor([[0.0, 0.0], [200.0, 0.0], [200.0, 50.0], [0.0, 50.0]])
    dst = torch.tensor([[10.0, 20.0], [190.0, 35.0], [185.0, 90.0], [12.0, 70.0]])
    ours = get_perspective_transform(src, dst).numpy()
    ref = cv2.getPerspectiveTransform(src.numpy(), dst.numpy())
    np.testing.assert_allclose(ours / ours[2, 2], ref / ref[2, 2], rtol=1e-6, atol=1e-6)


def test_order_quad_and_iou():
    q = np.array([[0, 0], [10, 0], [10, 5], [0, 5]], np.float64)
    shuffled = q[[2, 0, 3, 1]]
    np.testing.assert_array_equal(order_quad(shuffled), q)
    assert quad_iou(q, q) == pytest.approx(1.0)
    assert quad_iou(q, q + [20, 0]) == 0.0
    assert quad_iou(q, q + [5, 0]) == pytest.approx(1 / 3, abs=1e-6)
    assert quad_aspect(q) == pytest.approx(2.0)


def test_letterbox_keeps_the_aspect_and_fills_the_bars():
    red = torch.zeros(4, 50, 50)
    red[0] = 1
    red[3] = 1
    out = letterbox(red, 4.0, (1.0, 1.0, 1.0))
    assert out.shape == (3, 50, 200)
    assert torch.all(out[:, :, 75:125] == torch.tensor([1.0, 0, 0]).view(3, 1, 1))
    assert torch.all(out[:, :, :75] == 1) and torch.all(out[:, :, 125:] == 1)


def test_warp_lands_inside_the_quad_with_corners_in_place():
    # four coloured quadrants: each corner of the quad must show its own colour
    tex = torch.zeros(3, 40, 80)
    tex[0, :20, :40] = 1  # top-left red
    tex[1, :20, 40:] = 1  # top-right green
    tex[2, 20:, 40:] = 1  # bottom-right blue
    tex[:, 20:, :40] = 1  # bottom-left white
    quad = torch.tensor([[40.0, 30.0], [150.0, 40.0], [145.0, 95.0], [35.0, 80.0]], dtype=torch.float64)
    pre, cov, box = warp_into_quad(tex, quad, (120, 200))
    x0, y0, x1, y1 = box
    canvas = torch.zeros(1, 120, 200)
    canvas[:, y0:y1, x0:x1] = cov
    inside = np.zeros((120, 200), np.uint8)
    cv2.fillConvexPoly(inside, np.round(quad.numpy() * 16 - 8).astype(np.int32), 1, shift=4)
    grown = cv2.dilate(inside, np.ones((3, 3), np.uint8)).astype(bool)
    assert float(canvas[0][~torch.from_numpy(grown)].max()) == 0.0, "coverage outside the quad"
    assert float(canvas[0][torch.from_numpy(cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool))].min()) > 0.99
    colour = torch.zeros(3, 120, 200)
    colour[:, y0:y1, x0:x1] = pre / cov.clamp_min(1e-6)
    centre = quad.mean(0)
    expect = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)]
    for corner, rgb in zip(quad, expect):
        p = corner + (centre - corner) * 0.15
        got = colour[:, int(p[1]), int(p[0])]
        assert torch.allclose(got, torch.tensor(rgb, dtype=got.dtype), atol=0.05), (corner, got)


def test_overlay_changes_nothing_outside_the_dilated_quad():
    img, quad, _, _ = plate_scene(3)
    image = to_tensor(img)
    logo = torch.rand(4, 60, 240)
    out, footprint = overlay_plate(image, torch.from_numpy(quad), logo)
    changed = (out - image).abs().amax(0) > 0
    inside = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, np.round(quad * 16 - 8).astype(np.int32), 1, shift=4)
    # one pixel of anti-aliasing plus three sigmas of the sharpness-matching blur (<= 4 px)
    allowed = cv2.dilate(inside, np.ones((2 * 14 + 1, 2 * 14 + 1), np.uint8)).astype(bool)
    assert changed.any()
    assert not changed[~torch.from_numpy(allowed)].any()
    assert not changed[footprint[0] == 0].any(), "every changed pixel is in the footprint"
    assert float(footprint.max()) <= 1.0


def test_overlay_keeps_the_replacement_aspect_without_matching():
    image = torch.full((3, 100, 300), 0.5)
    quad = torch.tensor([[50.0, 20.0], [250.0, 20.0], [250.0, 70.0], [50.0, 70.0]])  # 200 x 50: aspect 4
    red = torch.zeros(3, 40, 40)
    red[0] = 1
    out, _ = overlay_plate(image, quad, red, fill="white", match=False)
    is_red = (out[0] > 0.9) & (out[1] < 0.5)  # more red than white (edges are blended)
    ys, xs = torch.nonzero(is_red, as_tuple=True)
    assert int(xs.max() - xs.min() + 1) == pytest.approx(50, abs=1)
    assert int(ys.max() - ys.min() + 1) == pytest.approx(50, abs=1)
    assert float(xs.float().mean()) == pytest.approx(150, abs=1)
    assert torch.allclose(out[:, 45, 60], torch.ones(3)), "letterbox bars are white"
    assert torch.equal(out[:, :19], image[:, :19]) and torch.equal(out[:, 71:], image[:, 71:])


def test_overlay_matches_the_original_plate_light():
    img, quad, _, _ = plate_scene(5)
    image = to_tensor(img) * 0.55  # a plate in the shade
    white = torch.ones(3, 50, 100)
    out, _ = overlay_plate(image, torch.from_numpy(quad), white)
    c = quad.mean(0).astype(int)
    # the new "white" is as bright as the original plate's paint, not paper white
    assert float(out[:, c[1] - 2 : c[1] + 3, c[0] - 2 : c[0] + 3].mean()) == pytest.approx(235 / 255 * 0.55, abs=0.08)


def test_overlay_follows_dtype_and_device():
    img, quad, _, _ = plate_scene(1)
    image = to_tensor(img).double()
    out, fp = overlay_plate(image, torch.from_numpy(quad), None)
    assert out.dtype == torch.float64 and fp.dtype == torch.float64
    if torch.cuda.is_available():
        out_c, _ = overlay_plate(image.float().cuda(), torch.from_numpy(quad).cuda(), torch.rand(3, 20, 40).cuda())
        assert out_c.is_cuda


def test_blank_plate_has_border_and_rounded_corners():
    p = blank_plate(4.0, height=64)
    assert p.shape == (4, 64, 256)
    assert float(p[3, 0, 0]) < 0.5, "corner outside the rounding is transparent"
    assert float(p[3, 32, 128]) == 1.0
    assert float(p[:3, 32, 128].mean()) > 0.85  # light paint
    edge = p[:3, 32, :6].mean(0)
    assert float(edge.min()) < 0.4  # the dark border line near the edge
    assert float(edge[0]) > 0.85 and float(edge[-1]) > 0.85  # a thin line, paint on both sides



@pytest.mark.parametrize("aspect", [1.3, 2.0, 3.33, 4.7])
def test_blank_plate_any_height(aspect):
    # odd heights once gave a border ring one pixel off the canvas (a size mismatch)
    for height in (8, 31, 64, 97, 106, 107, 213):
        p = blank_plate(aspect, height=height)
        assert p.shape == (4, height, max(8, round(height * aspect)))
        assert 0.0 <= float(p.min()) and float(p.max()) <= 1.0


