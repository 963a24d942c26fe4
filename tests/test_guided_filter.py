"""`bgr_core.functional.guided_filter`: box sums and means, the guided filter, its fast
and upsampling forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bgr_core.functional.guided_filter import (
    guided_coefficients,
    guided_coefficients_on_tiles,
    box_filter,
    box_sum,
    fast_guided_filter,
    guided_filter,
    guided_upsample,
    resize_window,
    upsample_window,
)


# -- box filter ------------------------------------------------------------------------


def _naive_box_sum(x: torch.Tensor, r: int) -> torch.Tensor:
    b, c, h, w = x.shape
    out = torch.zeros_like(x)
    for i in range(h):
        for j in range(w):
            out[:, :, i, j] = x[:, :, max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].sum(dim=(-2, -1))
    return out


@pytest.mark.parametrize("r", [0, 1, 2, 5, 40])
def test_box_sum_and_mean_match_naive(r):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 13, 19, dtype=torch.float64)
    ref = _naive_box_sum(x, r)
    torch.testing.assert_close(box_sum(x, r), ref, atol=1e-10, rtol=0)
    count = _naive_box_sum(torch.ones_like(x), r)
    torch.testing.assert_close(box_filter(x, r), ref / count, atol=1e-12, rtol=0)


@pytest.mark.parametrize("r", [1, 2, 5, 40])
def test_box_sum_float32_cpu_path_matches_naive(r):
    # float32 on the CPU goes through OpenCV's box filter, float64 through the cumsums.
    torch.manual_seed(1)
    x = torch.rand(2, 3, 13, 19, dtype=torch.float64)
    ref = _naive_box_sum(x, r)
    torch.testing.assert_close(box_sum(x.float(), r).double(), ref, atol=1e-4, rtol=1e-5)
    count = _naive_box_sum(torch.ones_like(x), r)
    torch.testing.assert_close(box_filter(x.float(), r).double(), ref / count, atol=1e-5, rtol=0)
    view = x.float()[:, :, 2:, 1:]  # non-contiguous input
    torch.testing.assert_close(box_sum(view, r).double(), _naive_box_sum(x[:, :, 2:, 1:], r), atol=1e-4, rtol=1e-5)



@pytest.mark.parametrize("r", [1, 3])
def test_box_sum_of_many_small_float32_planes_matches_naive(r):
    # more than 16 planes of at most 64 x 64 pixels take the cumulative sums, not OpenCV
    torch.manual_seed(2)
    x = torch.rand(5, 8, 13, 19, dtype=torch.float64)
    torch.testing.assert_close(box_sum(x.float(), r).double(), _naive_box_sum(x, r), atol=1e-4, rtol=1e-5)

def test_box_filter_keeps_dtype_and_constants():
    x = torch.full((1, 2, 30, 20), 0.25, dtype=torch.float16)
    y = box_filter(x, 4)
    assert y.dtype == torch.float16 and y.shape == x.shape
    assert torch.allclose(y.float(), torch.full_like(y.float(), 0.25), atol=1e-3)
    with pytest.raises(ValueError):
        box_filter(torch.rand(3, 10, 10), 2)


# -- guided filter ---------------------------------------------------------------------


def test_guided_filter_preserves_constant_src():
    torch.manual_seed(0)
    guide = torch.rand(2, 3, 40, 50)
    src = torch.full((2, 1, 40, 50), 0.7)
    for out in (guided_filter(guide, src, 5, 1e-3), fast_guided_filter(guide, src, 8, 1e-3, scale=4)):
        assert out.shape == src.shape and out.dtype == src.dtype
        assert torch.allclose(out, src, atol=1e-4)


def _step_scene():
    """Guide with a sharp vertical edge at x = 32; src a blurred, shifted version."""
    guide = torch.zeros(1, 3, 64, 64)
    guide[..., 32:] = 1.0
    guide[:, 1] *= 0.5
    src = torch.zeros(1, 1, 64, 64)
    src[..., 29:] = 1.0
    src = F.avg_pool2d(F.pad(src, (4, 4, 4, 4), mode="replicate"), 9, stride=1)
    return guide, src


@pytest.mark.parametrize("gray", [False, True])
def test_guided_filter_follows_strong_edge(gray):
    guide, src = _step_scene()
    if gray:
        guide = guide[:, :1]
    out = guided_filter(guide, src, 6, 1e-4)[0, 0, 32]
    # Flat on each side of the guide's edge, with the jump where the guide jumps.
    jumps = (out[1:] - out[:-1]).abs()
    assert int(jumps.argmax()) == 31
    assert float(jumps.max()) > 0.5
    assert float(src[0, 0, 32, 32] - src[0, 0, 32, 31]) < 0.2  # the input was smooth there


def test_fast_guided_and_upsample_close_to_full():
    guide, src = _step_scene()
    full = guided_filter(guide, src, 8, 1e-4)
    fast = fast_guided_filter(guide, src, 8, 1e-4, scale=2)
    assert (full - fast).abs().mean() < 0.02
    low = F.interpolate(src, size=(16, 16), mode="bilinear", align_corners=False)
    up = guided_upsample(guide, low, 8, 1e-4)
    assert up.shape == (1, 1, 64, 64)
    row = up[0, 0, 32]
    assert float(row[:20].max()) < 0.2 and float(row[44:].min()) > 0.8
    assert int((row[1:] - row[:-1]).abs().argmax()) == 31


def test_guided_filter_float64_and_many_channels():
    g = torch.rand(1, 5, 20, 24, dtype=torch.float64)
    p = torch.rand(1, 2, 20, 24, dtype=torch.float64)
    out = guided_filter(g, p, 3, 1e-2)
    assert out.shape == p.shape and out.dtype == torch.float64


@pytest.mark.parametrize("low,full", [((37, 51), (100, 141)), ((64, 80), (129, 333)), ((20, 30), (21, 29)), ((50, 50), (50, 50))])
def test_resize_window_is_a_slice_of_the_bilinear_resize(low, full):
    torch.manual_seed(0)
    x = torch.rand(2, 3, *low)
    ref = F.interpolate(x, size=full, mode="bilinear", align_corners=False)
    H, W = full
    for win in [(0, H, 0, W), (3, H // 2, 5, W - 1), (H - 4, H, 0, 7), (H // 3, H // 3 + 1, W - 1, W)]:
        y0, y1, x0, x1 = win
        out = resize_window(x, full, win)
        assert out.shape == (2, 3, y1 - y0, x1 - x0)
        torch.testing.assert_close(out, ref[..., y0:y1, x0:x1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("radius", [0, 2, 5])
def test_upsample_window_holds_everything_the_source_reaches(radius):
    torch.manual_seed(1)
    guide = torch.rand(1, 1, 300, 420)
    src = torch.zeros(1, 1, 110, 160)
    src[0, 0, 30:52, 40:95] = (torch.rand(22, 55) > 0.3).float()
    win = upsample_window(src[0, 0].numpy(), (300, 420), radius)
    y0, y1, x0, x1 = win
    if radius:
        full = guided_upsample(guide, src, radius, 1e-3)
        part = guided_upsample(guide, src, radius, 1e-3, window=win)
    else:
        full = F.interpolate(src, size=(300, 420), mode="bilinear", align_corners=False)
        part = resize_window(src, (300, 420), win)
    torch.testing.assert_close(part, full[..., y0:y1, x0:x1], atol=1e-5, rtol=0)
    outside = full.abs().clone()
    outside[..., y0:y1, x0:x1] = 0
    assert float(outside.max()) < 1e-5
    # and the window is not the whole canvas: it follows the source's box
    assert (y1 - y0) * (x1 - x0) < 0.5 * 300 * 420


@pytest.mark.parametrize("full,low", [((96, 128), (96, 128)), ((150, 210), (60, 84))])
def test_sparse_upsample_equals_the_whole_filter(full, low):
    torch.manual_seed(2)
    guide = torch.rand(2, 3, *full)
    src = torch.zeros(2, 1, *low)
    src[0, 0, 10:30, 20:50] = torch.rand(20, 30)
    src[1, 0, 0:12, 0:15] = torch.rand(12, 15)  # against the border
    ref = guided_upsample(guide, src, 3, 1e-4)
    out = guided_upsample(guide, src, 3, 1e-4, sparse=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert float(out[..., -10:, -10:].abs().max()) == 0.0
    zero = torch.zeros(1, 1, *low)
    assert float(guided_upsample(guide[:1], zero, 3, 1e-4, sparse=True).abs().max()) == 0.0
    with pytest.raises(ValueError, match="not both"):
        guided_upsample(guide, src, 3, 1e-4, sparse=True, window=(0, 4, 0, 4))


@pytest.mark.parametrize("radius", [1, 2])
def test_coefficients_on_tiles_are_those_of_the_whole_array(radius):
    """Every tile of a grid (the last row and column reaching past the array) gives the
    whole array's coefficients there, its windows clipped at the array's edges alike,
    and zeros past the array; a subset of tiles gives the same values."""
    torch.manual_seed(radius)
    h, w, tile = 45, 70, 16
    guide = torch.rand(3, h, w, dtype=torch.float64)
    guide[:, :, 30:] = 0.4 + 0.01 * guide[:, :, 30:]  # a smooth part: A grows large there
    src = (torch.rand(1, h, w, dtype=torch.float64) > 0.6).to(torch.float64)
    src[:, :20, :20] = 1.0
    a_ref, b_ref = guided_coefficients(guide[None], src[None], radius, 1e-4)
    nty, ntx = -(-h // tile), -(-w // tile)
    ty, tx = (t.flatten() for t in torch.meshgrid(torch.arange(nty), torch.arange(ntx), indexing="ij"))
    a, b = guided_coefficients_on_tiles(guide, src, radius, 1e-4, ty, tx, tile)
    assert a.shape == (nty * ntx, 3, tile, tile) and b.shape == (nty * ntx, 1, tile, tile)
    canvas_a = torch.zeros(3, nty * tile, ntx * tile, dtype=torch.float64)
    canvas_b = torch.zeros(1, nty * tile, ntx * tile, dtype=torch.float64)
    canvas_a.view(3, nty, tile, ntx, tile).permute(1, 3, 0, 2, 4)[ty, tx] = a
    canvas_b.view(1, nty, tile, ntx, tile).permute(1, 3, 0, 2, 4)[ty, tx] = b
    assert torch.allclose(canvas_a[:, :h, :w], a_ref[0, :, 0], atol=1e-9)
    assert torch.allclose(canvas_b[:, :h, :w], b_ref[0], atol=1e-9)
    assert canvas_a[:, h:].abs().max() == 0 and canvas_b[:, :, w:].abs().max() == 0
    some = torch.tensor([1, 5])
    a2, _ = guided_coefficients_on_tiles(guide, src, radius, 1e-4, ty[some], tx[some], tile)
    assert torch.equal(a2, a[some])
    # float32 inputs: float32 out, the sums taken in float64 (close to the float64 result)
    a32, _ = guided_coefficients_on_tiles(guide.float(), src.float(), radius, 1e-4, ty, tx, tile)
    assert a32.dtype == torch.float32 and (a32.double() - a).abs().max() < 1e-4
