"""The working resolution's full-size composite (`bgr_core.functional.full_resolution`)."""

import cv2
import numpy as np
import pytest
import torch

from bgr_core.functional.full_resolution import (
    Affine1D,
    compose_full,
    edit_keep,
    guided_layers,
    work_scale,
)
from bgr_core.functional.guided_filter import guided_coefficients

IDENTITY = (Affine1D(1.0, 0.0), Affine1D(1.0, 0.0))


def _scene(h: int = 240, w: int = 320, seed: int = 0):
    """(H, W, 3) uint8 photo with fine texture inside a sharp-edged ellipse (the
    'vehicle') over a different texture, and its exact (H, W) alpha."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inside = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 < 1
    car = np.stack([0.8 + 0.15 * np.sin(xx / 1.7), 0.2 + 0.1 * np.cos(yy / 1.3), 0.3 + 0 * xx], -1)
    street = np.stack([0.3 + 0 * xx, 0.5 + 0.2 * np.sin((xx + yy) / 9), 0.9 + 0 * xx], -1)
    photo = np.where(inside[..., None], car, street) + rng.normal(0, 0.01, (h, w, 3))
    return (np.clip(photo, 0, 1) * 255 + 0.5).astype(np.uint8), inside.astype(np.float32)


def _chw(array: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array)).float()
    return t.permute(2, 0, 1) / 255.0 if t.ndim == 3 else t[None]


def _work(photo: np.ndarray, alpha: np.ndarray, factor: int):
    """The working copy of `photo` and `alpha`, reduced `factor` times (area)."""
    h, w = photo.shape[:2]
    size = (w // factor, h // factor)
    return (_chw(cv2.resize(photo, size, interpolation=cv2.INTER_AREA)),
            _chw(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)))


def _maps(factor: float):
    return (Affine1D(1 / factor, 0.0), Affine1D(1 / factor, 0.0))


def test_work_scale_caps_pixels_and_never_enlarges():
    assert work_scale(3_000_000, 4_000_000) == 1.0
    assert work_scale(16_000_000, 4_000_000) == pytest.approx(0.5)
    assert work_scale(10**9, None) == 1.0


def test_same_size_reproduces_the_plain_composite():
    photo, alpha = _scene()
    image, a = _chw(photo), _chw(alpha)
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    out = compose_full(photo, IDENTITY, layers, IDENTITY, photo.shape[:2])
    expected = torch.lerp(torch.ones_like(image), image, a).permute(1, 2, 0).numpy() * 255
    err = np.abs(out.astype(np.float32) - expected)
    assert err.mean() < 0.6 and np.percentile(err, 99.9) < 6


def test_alpha_follows_the_full_photo_not_the_blurred_matte():
    photo, alpha = _scene(480, 640)
    image, a = _work(photo, alpha, 4)
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    out = compose_full(photo, IDENTITY, layers, _maps(4), photo.shape[:2], background="transparent")
    assert out.shape == (480, 640, 4) and out.dtype == np.uint8
    guided = out[..., 3].astype(np.float32) / 255
    bilinear = torch.nn.functional.interpolate(a[None], scale_factor=4, mode="bilinear")[0, 0].numpy()
    err_guided, err_bilinear = np.abs(guided - alpha).mean(), np.abs(bilinear - alpha).mean()
    assert err_guided < 0.6 * err_bilinear, (err_guided, err_bilinear)
    # the vehicle's own fine texture comes from the full photo
    inner = cv2.erode(alpha, np.ones((9, 9))) > 0
    rgb_err = np.abs(out[..., :3].astype(np.float32) - photo)[inner]
    assert rgb_err.mean() < 2.0


def test_bands_do_not_change_the_result():
    photo, alpha = _scene(200, 300)
    image, a = _work(photo, alpha, 2)
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    shadow = torch.zeros(1, 100, 150)
    shadow[:, 80:, 30:120] = 0.5
    one = compose_full(photo, IDENTITY, layers, _maps(2), (200, 300), shadow=shadow, band_pixels=10**9)
    many = compose_full(photo, IDENTITY, layers, _maps(2), (200, 300), shadow=shadow, band_pixels=7 * 300)
    # the same samples; float rounding of the band's grid may move a value by one level
    assert np.abs(one.astype(int) - many.astype(int)).max() <= 1
    assert one[195, 75].max() < 200  # the shadow darkens the white background


def test_edit_keep():
    photo = torch.full((3, 20, 20), 0.6)
    edited = photo.clone()
    edited[:, 2:6, 2:6] = 1.0  # a drawn plate
    edited[:, 10:14, 10:14] *= 0.5  # tinted glass
    glass = torch.zeros(1, 20, 20)
    glass[:, 10:14, 10:14] = 1
    alpha = torch.ones(1, 20, 20)
    alpha[:, :, 18:] = 0.5
    keep = edit_keep(photo, edited, glass, alpha)[0]
    assert keep[1:7, 1:7].max() == 0  # drawn: none of the old detail, one pixel grown
    assert keep[7, 1:7].min() == 1 and keep[1:7, 7].min() == 1 and keep[0, 0] == 1  # by one pixel only
    assert keep[10:14, 10:14].sub(0.5).abs().max() < 1e-5  # tint: the darkening
    assert keep[16, 8] == 1 and keep[16, 19] == 0.5  # untouched: alpha



def test_edit_keep_beside_a_small_matte_sees_what_was_drawn_next_to_it():
    # the matte covers part of the canvas; a plate drawn just outside it still darkens
    # (zeroes) the matte's pixel beside it, and nothing outside the matte is kept
    photo = torch.full((3, 40, 60), 0.6)
    edited = photo.clone()
    edited[:, 10:20, 9:12] = 1.0  # drawn, ending one pixel left of the matte
    alpha = torch.zeros(1, 40, 60)
    alpha[:, 8:30, 12:50] = 1.0
    alpha[:, 8:30, 12] = 0.5
    keep = edit_keep(photo, edited, None, alpha)[0]
    assert keep[10:20, 12].max() == 0  # grown by one pixel into the matte
    assert keep[10:20, 13].min() == 1.0 and keep[22, 12] == 0.5
    assert keep[alpha[0] == 0].abs().max() == 0

def test_guided_layers_of_a_small_matte_are_those_of_the_whole_canvas():
    """The coefficients are computed on the box around the matte only, and there in the
    tiles where the matte varies: they equal the whole canvas's (worked out in float64;
    in float32 its moments lose ~3e-3 of A here), and far from the matte they are 0."""
    photo, _ = _scene(240, 320)
    image = _chw(photo)
    a = torch.zeros(1, 240, 320)
    a[:, 30:70, 200:280] = 1.0
    a[:, 28:30, 200:280] = 0.5
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    coeff, b = guided_coefficients(image[None].double(), a[None].double(), 1, 1e-4)
    whole = torch.cat([coeff[0, :, 0], b[0]]).float()
    assert (layers[:4] - whole).abs().max() < 1e-5
    assert layers[:4, 100:, :].abs().max() == 0 and layers[:4, :, :150].abs().max() == 0
    assert layers[:4, 29, 240].abs().sum() > 0.1  # the soft edge is live


def test_drawn_content_shows_none_of_the_old_detail():
    """A plate drawn over text at the working resolution: the full-size output shows
    the flat plate, not the text under it (no ghost)."""
    photo, alpha = _scene(400, 400)
    photo = photo.copy()
    photo[180:220, 150:250] = np.where(np.indices((40, 100)).sum(0)[..., None] % 4 < 2, 20, 235)  # 'text'
    alpha[:] = 1
    image, a = _work(photo, alpha, 4)
    edited = image.clone()
    edited[:, 43:57, 36:64] = torch.tensor([0.95, 0.95, 0.9])[:, None, None]
    layers = guided_layers(image, a, edited, edit_keep(image, edited, None, a))
    out = compose_full(photo, IDENTITY, layers, _maps(4), (400, 400))
    plate = out[182:218, 152:248].astype(np.float32)
    assert plate.std(axis=(0, 1)).max() < 3 and abs(plate.mean() - 0.94 * 255) < 6


def test_custom_background_sampled_at_full_resolution():
    photo, alpha = _scene(120, 160)
    alpha[:] = 0
    image, a = _work(photo, alpha, 2)
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    bg = np.zeros((120, 160, 3), np.uint8)
    bg[:, ::2] = 255  # one-pixel stripes: lost in any working copy
    out = compose_full(photo, IDENTITY, layers, _maps(2), (120, 160), background=bg, to_background=IDENTITY)
    np.testing.assert_array_equal(out, bg)


def test_generated_background_layer_is_upsampled():
    photo, alpha = _scene(120, 160)
    alpha[:] = 0
    image, a = _work(photo, alpha, 2)
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    green = torch.zeros(3, 60, 80)
    green[1] = 1
    out = compose_full(photo, IDENTITY, layers, _maps(2), (120, 160), background=green)
    assert (out[..., 1] == 255).all() and (out[..., [0, 2]] == 0).all()


def test_layout_maps_place_the_photo():
    """A to_source map with a scale and an offset (the layout) samples the photo there;
    outside it there is no photo (alpha 0)."""
    photo, alpha = _scene(100, 100)
    image, a = _chw(photo), _chw(alpha)
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    # canvas 100 x 200, photo at x 100..200: working canvas = the layers padded left
    pad = torch.zeros(8, 100, 100)
    canvas_layers = torch.cat([pad, layers], dim=2)
    to_source = (Affine1D(1.0, 0.0), Affine1D(1.0, -100.0))
    out = compose_full(photo, to_source, canvas_layers, IDENTITY, (100, 200), background="transparent")
    assert out[:, :100, 3].max() == 0
    ref = compose_full(photo, IDENTITY, layers, IDENTITY, (100, 100), background="transparent")
    np.testing.assert_array_equal(out[:, 100:], ref)


def test_an_opaque_background_outside_the_vehicle_box_is_the_background_itself():
    # the opaque composite samples only the box the alpha and the shadow reach; it must
    # equal the transparent composite (which samples every pixel) flattened on white
    photo, alpha = _scene(240, 480)
    alpha[:, :120] = 0  # a wide empty margin on the left, as a centred dealer photo has
    alpha[:, 360:] = 0
    image, a = _work(photo, alpha, 2)
    layers = guided_layers(image, a, image, edit_keep(image, image, None, a))
    white = compose_full(photo, IDENTITY, layers, _maps(2), (240, 480))
    rgba = compose_full(photo, IDENTITY, layers, _maps(2), (240, 480), background="transparent").astype(np.float32)
    flat = rgba[..., :3] * rgba[..., 3:] / 255 + 255 * (1 - rgba[..., 3:] / 255)
    assert np.abs(white.astype(np.float32) - flat).max() <= 2
    assert (white[:, :100] == 255).all() and (white[:, 380:] == 255).all()
    assert (white[100:140, 200:280] < 250).any()  # the vehicle is there


def _dense_composite(photo: np.ndarray, layers: torch.Tensor, factor: int, shadow: torch.Tensor | None) -> np.ndarray:
    """compose_full over white without any shortcut: every layer upsampled `factor`
    times (bilinear, half-pixel centres, edges clamped) at every pixel."""
    up = torch.nn.functional.interpolate(layers[None], scale_factor=factor, mode="bilinear", align_corners=False)[0]
    image = _chw(photo)
    alpha = ((up[:3] * image).sum(0, keepdim=True) + up[3:4]).clamp(0, 1)
    fg = (up[4:7] + up[7:8] * image).clamp(0, 1)
    under = torch.ones_like(image)
    if shadow is not None:
        shade = torch.nn.functional.interpolate(shadow[None], scale_factor=factor, mode="bilinear", align_corners=False)[0]
        under = under * (1 - shade.clamp(0, 1))
    out = torch.lerp(under, fg, alpha).clamp(0, 1).mul(255).add(0.5).to(torch.uint8)
    return out.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("seed", range(3))
def test_composite_over_white_is_the_dense_composite(seed):
    """Over white, the pixels where the layers compose to the photo itself or to the
    background are taken from those directly: the result is the composite of every
    layer at every pixel (to a level), with a soft edge, nearly opaque and tinted glass, drawn content, a
    shadow, and the guided coefficients' float noise inside (|A| ~ 1e-4)."""
    photo, alpha = _scene(240, 320, seed)
    image, a = _work(photo, alpha, 2)
    a[:, 30:40, 60:70] = 0.97  # nearly opaque (see-through glass): not the photo itself
    edited = image.clone()
    edited[:, 50:60, 70:90] *= 0.4  # tinted glass
    edited[:, 80:86, 60:80] = torch.tensor([0.9, 0.9, 0.2])[:, None, None]  # a drawn plate
    glass = torch.zeros_like(a)
    glass[:, 50:60, 70:90] = 1
    layers = guided_layers(image, a, edited, edit_keep(image, edited, glass, a))
    rng = torch.Generator().manual_seed(seed)
    inside = (a > 0.999) & (torch.rand(a.shape, generator=rng) < 0.3)
    layers[:3] += (torch.rand(3, *a.shape[-2:], generator=rng) - 0.5) * 2e-4 * inside
    shadow = torch.zeros(1, 120, 160)
    shadow[:, 95:, 20:140] = 0.6
    out = compose_full(photo, IDENTITY, layers, _maps(2), (240, 320), shadow=shadow)
    dense = _dense_composite(photo, layers, 2, shadow)
    diff = np.abs(out.astype(int) - dense.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    # and the parts that differ from the photo are all there: glass, plate, edge, shadow
    assert out[110, 160].tolist() != photo[110, 160].tolist() and out[235, 160].max() < 200
