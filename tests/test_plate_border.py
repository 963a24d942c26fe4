"""functional/plate_border.py: a plate's quad grown over its rim, banner and frame, and
a replacement that leaves nothing of them."""

from __future__ import annotations

import numpy as np
import torch

from bgr_core.functional.plate_border import GROW_LIMITS, outer_border
from bgr_core.functional.plates import BLANK_COLOUR, apply_homography, get_perspective_transform, overlay_plate

RED, BLUE = (0.85, 0.1, 0.1), (0.1, 0.2, 0.8)


def _bumper_with_plate(tilt: float = 0.0, rim: bool = True, banner: bool = True, seed: int = 0):
    """A grey textured bumper with a white plate (its printed field 120 x 60 px) inside a
    4 px red rim and a 10 px blue banner above; the photo is then warped by a small
    perspective tilt. Returns (image (3, H, W), field quad, outer quad) in the warped photo."""
    g = torch.Generator().manual_seed(seed)
    h, w = 220, 320
    img = torch.full((3, h, w), 0.45) + 0.03 * torch.rand(3, h, w, generator=g)
    fx0, fy0, fx1, fy1 = 100, 90, 220, 150
    ox0, oy0, ox1, oy1 = fx0, fy0, fx1, fy1
    if rim:
        ox0, oy0, ox1, oy1 = ox0 - 4, oy0 - 4, ox1 + 4, oy1 + 4
    if banner:
        oy0 -= 10
    img[:, oy0:oy1, ox0:ox1] = torch.tensor(RED).view(3, 1, 1) if rim else 1.0
    if banner:
        img[:, oy0 : oy0 + 10, ox0:ox1] = torch.tensor(BLUE).view(3, 1, 1)
    img[:, fy0:fy1, fx0:fx1] = 0.95
    for k in range(5):  # characters
        img[:, fy0 + 12 : fy1 - 12, fx0 + 10 + 22 * k : fx0 + 22 + 22 * k] = 0.1
    field = torch.tensor([[fx0, fy0], [fx1, fy0], [fx1, fy1], [fx0, fy1]], dtype=torch.float64)
    outer = torch.tensor([[ox0, oy0], [ox1, oy0], [ox1, oy1], [ox0, oy1]], dtype=torch.float64)
    if tilt:
        src = torch.tensor([[0, 0], [w, 0], [w, h], [0, h]], dtype=torch.float64)
        dst = src + torch.tensor([[tilt, 0], [-tilt, tilt / 2], [0, 0], [0, -tilt / 2]], dtype=torch.float64)
        hom = get_perspective_transform(dst, src)  # output pixel -> source pixel
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5,
                                indexing="ij")
        pts = apply_homography(hom, torch.stack([xs, ys], -1).reshape(-1, 2)).reshape(h, w, 2)
        grid = torch.stack([pts[..., 0] / w * 2 - 1, pts[..., 1] / h * 2 - 1], -1).float()
        img = torch.nn.functional.grid_sample(img[None], grid[None], align_corners=False, padding_mode="border")[0]
        fwd = torch.linalg.inv(hom)
        field, outer = apply_homography(fwd, field), apply_homography(fwd, outer)
    return img.clamp(0, 1), field, outer


def _coloured(img: torch.Tensor, colour, tol: float = 0.2) -> torch.Tensor:
    return (img - torch.tensor(colour).view(3, 1, 1)).abs().amax(0) < tol


def _inside(quad: torch.Tensor, size) -> torch.Tensor:
    import cv2

    m = np.zeros(size, np.uint8)
    cv2.fillPoly(m, [np.round(quad.numpy()).astype(np.int32)], 1)
    return torch.from_numpy(m.astype(bool))


def test_outer_border_covers_rim_and_banner():
    for tilt in (0.0, 18.0):
        img, field, outer = _bumper_with_plate(tilt)
        grown = outer_border(img, field)
        # every corner within 3 px of the true outer border (or slightly outside it)
        assert (grown - outer).abs().max() < 4, (tilt, grown, outer)


def test_plain_plate_grows_only_a_little():
    img, field, _ = _bumper_with_plate(rim=False, banner=False)
    grown = outer_border(img, field)
    w, h = 120, 60
    assert (grown[:, 0] - field[:, 0]).abs().max() <= 0.05 * w + 1
    assert (grown[:, 1] - field[:, 1]).abs().max() <= 0.08 * h + 1
    # and never more than the limits, whatever the surroundings
    noisy = torch.rand(3, 220, 320, generator=torch.Generator().manual_seed(1))
    wild = outer_border(noisy, field)
    assert (field[0, 1] - wild[0, 1]) <= GROW_LIMITS[1] * h + 1 and (wild[2, 1] - field[2, 1]) <= GROW_LIMITS[3] * h + 1


def test_blank_replacement_leaves_no_pixel_of_the_old_border_and_is_not_grey():
    img, field, outer = _bumper_with_plate(tilt=12.0)
    grown = outer_border(img, field)
    out, footprint = overlay_plate(img, grown, None, colour_quad=field)
    inside = _inside(outer, img.shape[-2:])
    for colour in (RED, BLUE):
        assert int((_coloured(out, colour) & inside).sum()) == 0, colour
    core = _inside(field, img.shape[-2:]) & (footprint[0] > 0.99)
    mean = out[:, core].mean(1)
    assert float(mean.min()) > 0.8 and float(mean.max() - mean.min()) < 0.05  # a clean, light, neutral plate
    assert torch.allclose(mean, torch.tensor(BLANK_COLOUR), atol=0.12)


def test_blank_on_a_dark_plate_is_dimmed_but_still_light():
    img, field, _ = _bumper_with_plate(rim=False, banner=False)
    dark = img.clone()
    inside = _inside(field, img.shape[-2:])
    dark[:, inside] *= 0.3  # a plate in shadow
    out, footprint = overlay_plate(dark, field, None)
    core = inside & (footprint[0] > 0.99)
    assert float(out[:, core].mean()) > 0.7
