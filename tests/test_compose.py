import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bgr_core.frame import Frame
from bgr_core.functional import compose
from bgr_core.functional.compose import blur_fusion_radii, composite, cover_resize, estimate_foreground
from bgr_core.stages.background import ComposeBackground

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from decontamination import blur_fusion_everywhere as _blur_fusion_everywhere  # noqa: E402


def _edge_scene(size=128, ramp=6):
    """A blue object on a red background with a soft vertical edge `ramp` pixels wide."""
    x = torch.arange(size, dtype=torch.float32)
    alpha = ((x - size / 2) / ramp + 0.5).clamp(0, 1).expand(size, size)[None, None]
    fg = torch.tensor([0.1, 0.2, 0.9])[None, :, None, None].expand(1, 3, size, size)
    bg = torch.tensor([0.9, 0.1, 0.1])[None, :, None, None].expand(1, 3, size, size)
    return composite(fg, alpha, bg), alpha, fg


def test_estimate_foreground_removes_the_old_background_colour():
    image, alpha, fg = _edge_scene()
    est = estimate_foreground(image, alpha)
    soft = (alpha > 0.1) & (alpha < 0.9)
    raw_err = (image - fg).abs()[soft.expand_as(image)].mean()
    est_err = (est - fg).abs()[soft.expand_as(image)].mean()
    assert est_err < 0.25 * raw_err
    opaque = (alpha >= 1).expand_as(image)
    assert torch.equal(est[opaque], image[opaque])


@pytest.mark.parametrize("where", ["corner", "edge", "centre"])
def test_estimate_foreground_on_the_box_around_the_matte_equals_the_whole_canvas(where):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 240, 320, dtype=torch.float64)
    alpha = torch.zeros(1, 1, 240, 320, dtype=torch.float64)
    y, x = {"corner": (4, 6), "edge": (100, 290), "centre": (90, 120)}[where]
    alpha[..., y : y + 30, x : x + 25] = 1.0
    alpha[..., y + 30 : y + 34, x : x + 25] = torch.rand(4, 25, dtype=torch.float64)  # a soft edge
    radii = (8, 2)  # below 9 px the coarse pass is the full-size one: the same values
    expected = _blur_fusion_everywhere(image, alpha, radii)
    assert torch.allclose(estimate_foreground(image, alpha, radii), expected, atol=1e-10)
    assert torch.equal(estimate_foreground(image, torch.zeros_like(alpha)), torch.zeros_like(image))


def _photo_like(h, w, seed=0):
    """A smooth random background, a darker blob with a soft rim of 4-12 px, composited."""
    g = torch.Generator().manual_seed(seed)
    coarse = lambda c: F.interpolate(torch.rand(1, c, 6, 8, generator=g, dtype=torch.float64), size=(h, w),
                                     mode="bicubic", align_corners=False).clamp(0, 1)  # noqa: E731
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    r = torch.hypot((yy - 0.55 * h) / (0.3 * h), (xx - 0.5 * w) / (0.38 * w))
    rim = 4 + 8 * coarse(1)[0, 0]  # a rim that varies in width along the outline
    alpha = ((1.0 - r) * min(h, w) * 0.3 / rim + 0.5).clamp(0, 1)[None, None]
    return composite(0.6 * coarse(3), alpha, coarse(3)), alpha


@pytest.mark.parametrize("h, w", [(512, 512), (1200, 1600)])
def test_estimate_foreground_on_a_large_canvas_is_the_full_size_blur_fusion(h, w):
    # the coarse pass (radius 16, 45) runs on block means of 2 x 2, 3 x 3 pixels
    image, alpha = _photo_like(h, w)
    radii = blur_fusion_radii(h, w)
    assert radii[0] >= 9  # the coarse pass on blocks (below 9 px it is the full-size pass)
    expected = _blur_fusion_everywhere(image, alpha, radii)
    got = estimate_foreground(image, alpha)
    soft = ((alpha > 0) & (alpha < 1)).expand_as(image)
    assert soft.sum() > 2_000
    # composited on white, as the background stage does, in levels of 255
    white = torch.ones_like(image)
    diff = (composite(got, alpha, white) - composite(expected, alpha, white)).abs() * 255
    assert diff.max() < 0.5 and diff[soft].mean() < 0.1
    assert torch.equal(got[~soft], expected[~soft])


def test_estimate_foreground_takes_a_resampled_inside_for_opaque(monkeypatch):
    image, alpha = _photo_like(240, 320, seed=1)
    nearly = torch.where(alpha >= 1, alpha - 1e-7, alpha)  # what bilinear resampling of 1s leaves
    exact = estimate_foreground(image, alpha)
    assert torch.allclose(estimate_foreground(image, nearly), exact, atol=1e-6)
    # tiles worked in small groups give the same values
    monkeypatch.setattr(compose, "TILES_AT_ONCE", 3)
    assert torch.equal(estimate_foreground(image, alpha), exact)


def test_cover_resize_keeps_aspect_and_fills():
    bg = torch.zeros(1, 3, 10, 40)
    bg[..., :20] = 1.0
    out = cover_resize(bg, (30, 30))
    assert out.shape == (1, 3, 30, 30)
    assert out[0, 0, 15, 0] == 1.0 and out[0, 0, 15, -1] == 0.0


def test_stage_modes_and_no_change_of_inputs():
    image, alpha, _ = _edge_scene(32)
    frame = Frame(image=image[0].clone(), alpha=alpha[0].clone())
    white = ComposeBackground("white_background")([frame])[0]
    assert white.output.shape == (3, 32, 32) and torch.allclose(white.output[:, :, 0], torch.ones(3, 32))
    clear = ComposeBackground("transparent_background")([frame])[0]
    assert clear.output.shape == (4, 32, 32) and torch.equal(clear.output[3], alpha[0, 0])
    with_background = frame.replace(background_image=torch.zeros(3, 5, 5))
    custom = ComposeBackground("custom_background")([with_background])[0]
    assert torch.allclose(custom.output[:, :, 0], torch.zeros(3, 32))
    assert frame.output is None and torch.equal(frame.image, image[0])  # input frame untouched
    with pytest.raises(ValueError, match="background_image"):  # custom needs the frame's own background
        ComposeBackground("custom_background")([frame])


def test_one_stage_serves_frames_with_different_backgrounds():
    image, alpha, _ = _edge_scene(32)
    frame = Frame(image=image[0].clone(), alpha=torch.ones_like(alpha[0]) * 0.0)
    red, blue = torch.zeros(3, 4, 4), torch.zeros(3, 8, 2)
    red[0], blue[2] = 1.0, 1.0
    stage = ComposeBackground("custom_background")
    out = stage([frame.replace(background_image=red), frame.replace(background_image=blue)])
    assert torch.allclose(out[0].output, red[:, :1, :1].expand(3, 32, 32))
    assert torch.allclose(out[1].output, blue[:, :1, :1].expand(3, 32, 32))


def test_shadow_darkens_white_and_adds_alpha_to_transparent():
    image, alpha, _ = _edge_scene(32)
    shadow = torch.zeros(1, 32, 32)
    shadow[:, 28:, :8] = 0.5
    frame = Frame(image=image[0], alpha=alpha[0], shadow=shadow)
    white = ComposeBackground("white_background")([frame])[0].output
    assert torch.allclose(white[:, 30, 2], torch.full((3,), 0.5))
    clear = ComposeBackground("transparent_background")([frame])[0].output
    assert torch.isclose(clear[3, 30, 2], torch.tensor(0.5)) and clear[:3, 30, 2].max() < 1e-6


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_estimate_foreground_in_half_precision_sums_in_float32(dtype, tol):
    # a window sum over a tile in half precision would be off by whole levels
    image, alpha = _photo_like(512, 512)
    expected = estimate_foreground(image.float(), alpha.float())
    got = estimate_foreground(image.to(dtype), alpha.to(dtype))
    assert got.dtype == dtype
    soft = ((alpha > 0) & (alpha < 1)).expand_as(image)
    assert (got.float() - expected)[soft].abs().max() < tol
