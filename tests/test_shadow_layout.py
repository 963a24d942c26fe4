"""Shadow and layout on synthetic cars whose geometry is known."""

import math
import numpy as np
import pytest
import torch

from bgr_core.frame import Frame
from bgr_core.functional.geometry import Placement, grown_bounds, place_layer
from bgr_core.functional.shadow import ground_contact, shadow_room, synthesize_shadow
from bgr_core.stages.layout import Layout, parse_aspect
from bgr_core.stages.shadow import Shadow
from bgr_core.testing import synthetic_car_scene


def _frame(seed=2, h=240, w=320, plates=True):
    scene = synthetic_car_scene(h, w, seed)
    image = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    alpha = torch.from_numpy(scene.mask.astype(np.float32))[None]
    quads = torch.tensor([[[150.0, 170.0], [180.0, 170.0], [180.0, 180.0], [150.0, 180.0]]]) if plates else None
    return scene, Frame(image=image, alpha=alpha, box=torch.tensor(scene.box, dtype=torch.float32),
                        glass=torch.from_numpy(scene.glass.astype(np.float32))[None], plates=quads)


def test_contact_points_are_the_tyre_bottoms():
    scene, frame = _frame()
    contact = ground_contact(frame.alpha)
    ground_y = scene.box[3]  # the tyres are the lowest part of the synthetic car
    assert contact.slope == pytest.approx(0.0, abs=1e-6)
    assert contact.ground_y(0.0) == pytest.approx(ground_y, abs=1.0)
    xs = contact.contacts[:, 0]
    x0, _, x1, _ = scene.box
    mid = (x0 + x1) / 2
    assert (xs < mid).any() and (xs > mid).any(), "one contact patch per tyre"
    assert ((xs > x0 + 0.35 * (x1 - x0)) & (xs < x0 + 0.65 * (x1 - x0))).sum() == 0, "no contact between the wheels"


def test_bottom_profile_is_each_columns_lowest_pixel():
    # ragged mattes with empty columns, gaps and a stray blob: the profile is the lowest
    # pixel >= 0.5 of every column (NaN where none), the box spans every such pixel
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = (rng.random((60, 80)) < 0.15).astype(np.float32) * rng.random((60, 80)).astype(np.float32)
        a[:, :7] = 0
        a[rng.integers(10, 50), 70:] = 0.9
        contact = ground_contact(torch.from_numpy(a)[None])
        on = a >= 0.5
        rows = np.arange(60)[:, None]
        expected = np.where(on.any(0), np.where(on, rows, -1).max(0), np.nan)
        np.testing.assert_array_equal(contact.bottom, expected.astype(np.float32))
        ys, xs = np.nonzero(on)
        assert contact.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert ground_contact(torch.zeros(1, 20, 30)) is None


def test_shadow_past_the_cars_end_is_not_lifted_by_a_thin_tip():
    # a side view whose last columns are a thin tip at mid-height (a bumper's corner, a
    # tow bar): the shadow past the end lies by the body's lower outline, not beside the
    # tip, where it floated at wheel-hub height
    alpha = torch.zeros(1, 260, 520)
    alpha[0, 100:160, 100:400] = 1.0  # body
    yy, xx = torch.meshgrid(torch.arange(260), torch.arange(520), indexing="ij")
    for cx in (150, 350):  # tyres standing on row 190
        alpha[0][(yy - 165) ** 2 + (xx - cx) ** 2 <= 25**2] = 1.0
    alpha[0, 128:134, 400:404] = 1.0  # the tip, narrower than 2 % of the car
    shadow = synthesize_shadow(alpha, border=0.0)
    darkest = shadow[0, :, 408:416].mean(1).argmax()
    assert shadow[0, :, 408:416].max() > 0.02
    assert darkest >= 160, int(darkest)


def test_tilted_ground_line_follows_the_tyres():
    _, frame = _frame()
    h, w = frame.size
    # shear the car: the right side sits 20 px lower, like a three-quarter view
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    src_y = (ys - (xs.float() / w * 20)).round().long().clamp(0, h - 1)
    sheared = frame.alpha[0][src_y, xs][None]
    contact = ground_contact(sheared)
    assert contact.slope == pytest.approx(20 / w, rel=0.2)


def test_shadow_is_under_the_car_and_never_above_its_outline():
    scene, frame = _frame()
    shadow = synthesize_shadow(frame.alpha)
    assert shadow.shape == frame.alpha.shape and 0 <= float(shadow.min()) and float(shadow.max()) <= 1
    x0, y0, x1, y1 = scene.box
    rows = shadow[0].sum(1)
    assert rows[: y1 - 30].sum() == 0, "nothing above the lower outline, beside the body"
    # dark under the tyres, soft beyond the bumpers, gone far away
    contact = ground_contact(frame.alpha)
    cx = int(contact.contacts[np.argmax(contact.contacts[:, 1]), 0])  # under a tyre
    assert shadow[0, y1, cx] > 0.4
    assert shadow[0, y1 + 2, x1 + 5] < shadow[0, y1 + 2, cx]
    assert shadow[0, y1 + 2, min(x1 + 60, shadow.shape[-1] - 1)] < 0.05
    assert shadow[0, -1].max() < 0.05
    softer = synthesize_shadow(frame.alpha, strength=0.4, softness=2.0)
    assert softer.max() < shadow.max()


@pytest.mark.parametrize("raise_by", [0, 37, 120])
def test_shadow_does_not_depend_on_the_empty_rows_above_the_car(raise_by):
    # the layer is computed from just above the car's lower outline down; more or fewer
    # empty rows above must not change it (the border fade is kept out of the comparison)
    _, frame = _frame()
    ref = synthesize_shadow(frame.alpha, border=0)
    taller = torch.nn.functional.pad(frame.alpha, (0, 0, raise_by, 0))
    out = synthesize_shadow(taller, border=0)
    assert out.shape == taller.shape
    assert float(out[:, :raise_by].abs().sum()) == 0.0
    torch.testing.assert_close(out[:, raise_by:], ref, atol=1e-5, rtol=0)
    # and its upper edge fades out (the blur's tail), it is not cut where computing starts
    first = int(torch.nonzero(out[0].amax(1) > 0)[0, 0])
    assert float(out[0, first].max()) < 2e-3


def test_shadow_stage_and_effect_none():
    _, frame = _frame()
    out = Shadow()([frame])[0]
    assert out.shadow is not None and frame.shadow is None
    assert "ground_contacts" in out.meta
    with pytest.raises(ValueError, match="strength"):
        Shadow(strength=2)


def _moved_centroid(layer):
    ys, xs = torch.nonzero(layer[0] > 0.5, as_tuple=True)
    return float(xs.float().mean()), float(ys.float().mean())


def test_center_layout_even_margins_and_everything_aligned():
    scene, frame = _frame(seed=3, h=240, w=320)
    # move the car off-centre first
    frame = Layout.apply(frame, Placement(1.0, -60.0, 10.0, (240, 320)))
    frame = Shadow()([frame])[0]
    out = Layout("center")([frame])[0]
    out.check()
    assert out.size == (240, 320)
    x0, y0, x1, y1 = out.box.tolist()
    ys, xs = torch.nonzero(out.shadow[0] > 0.1, as_tuple=True)
    sx0, sy0, sx1, sy1 = min(x0, xs.min().item()), y0, max(x1, xs.max().item() + 1), max(y1, ys.max().item() + 1)
    assert abs(sx0 - (320 - sx1)) <= 2 and abs(sy0 - (240 - sy1)) <= 2, "even margins"
    # matte, glass, image and box moved by the same transform
    a_box = torch.nonzero(out.alpha[0] > 0.5)
    assert abs(a_box[:, 1].min().item() - x0) <= 1 and abs(a_box[:, 0].max().item() + 1 - y1) <= 1
    assert (out.glass[0] > 0.5).float().mul(out.alpha[0] < 0.5).sum() == 0, "glass stays inside the car"
    before, moved = frame.plates[0, 0], out.plates[0, 0]
    p = out.meta["placement"]
    expected = before * p["scale"] + torch.tensor([p["offset_x"], p["offset_y"]])
    assert torch.allclose(moved, expected)


def test_center_scales_down_only_when_it_does_not_fit():
    _, frame = _frame()
    big = Layout("center", margin=0.3).placement(frame)
    assert big.scale < 1.0
    assert Layout("center", margin=0.0).placement(frame).scale == 1.0
    sized = Layout("center", size=(1600, 1200)).placement(frame)
    assert sized.scale > 1.0 and sized.out_size == (1200, 1600)


@pytest.mark.parametrize("aspect, ratio", [(None, None), ("4:3", 4 / 3), ("16:9", 16 / 9)])
def test_crop_is_tight_keeps_the_car_and_honours_aspect(aspect, ratio):
    scene, frame = _frame(seed=4)
    frame = Shadow()([frame])[0]
    out = Layout("crop", aspect=aspect)([frame])[0]
    h, w = out.size
    if ratio:
        assert w / h == pytest.approx(ratio, abs=0.02)
    car_pixels = frame.alpha.sum().item()
    assert out.alpha.sum().item() == pytest.approx(car_pixels, rel=0.01), "nothing of the car cut off"
    if ratio is None:
        x0, y0, x1, y1 = scene.box
        assert w < (x1 - x0) * 1.3 and h < (y1 - y0) * 1.4


def test_layout_none_is_identity_and_bad_options_are_refused():
    _, frame = _frame()
    assert Layout("none")([frame])[0] is frame
    with pytest.raises(ValueError, match="`layout` must be one of"):
        Layout("wide")
    with pytest.raises(ValueError, match="aspect"):
        parse_aspect("wide")


def test_place_layer_integer_shift_is_exact_and_area_is_kept():
    x = torch.rand(1, 2, 20, 30)
    y = place_layer(x, Placement(1.0, 5.0, 3.0, (40, 50)))
    assert torch.equal(y[..., 3:23, 5:35], x)
    ones = place_layer(torch.ones(1, 1, 200, 300), Placement(0.37, 10.25, 4.5, (400, 500)))
    assert ones.sum().item() == pytest.approx(0.37**2 * 60000, rel=1e-3)



def _placed_by_definition(layer, p, fill):
    """Every canvas pixel sampled on its own: the input point ((x + 0.5 - offset) / scale)
    of the (antialiased, for a shrink) layer, `fill` off the layer's span or beyond its
    one-pixel fade."""
    _, _, h, w = layer.shape
    out_h, out_w = p.out_size
    src = layer if p.scale >= 1 else torch.nn.functional.interpolate(
        layer, size=(max(1, round(h * p.scale)), max(1, round(w * p.scale))), mode="bilinear",
        align_corners=False, antialias=True)
    sh, sw = src.shape[-2:]
    xs = ((torch.arange(out_w, dtype=torch.float32) + 0.5 - p.offset_x) / p.scale) * (sw / w)
    ys = ((torch.arange(out_h, dtype=torch.float32) + 0.5 - p.offset_y) / p.scale) * (sh / h)
    grid = torch.stack(torch.meshgrid(ys / sh * 2 - 1, xs / sw * 2 - 1, indexing="ij")[::-1], dim=-1)[None]
    out = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ix0, iy0 = math.floor(p.offset_x), math.floor(p.offset_y)
    cols, rows = torch.arange(out_w), torch.arange(out_h)
    on_x = (cols >= ix0) & (cols < math.ceil(p.offset_x + p.scale * w)) & (xs >= -0.5) & (xs <= sw + 0.5)
    on_y = (rows >= iy0) & (rows < math.ceil(p.offset_y + p.scale * h)) & (ys >= -0.5) & (ys <= sh + 0.5)
    return torch.where(on_y[:, None] & on_x[None, :], out, torch.full_like(out, fill))


@pytest.mark.parametrize("scale, ox, oy", [(0.74, 271.2, -116.2), (0.95, -20.6, 30.3), (1.0, 37.5, -295.8),
                                           (1.6, -80.25, -40.5), (0.5, 310.0, 5.0), (0.8, 500.0, 10.0)])
def test_place_layer_is_every_canvas_pixel_sampled_on_its_own(scale, ox, oy):
    # the block is cut by the canvas on either side, lies inside it, or misses it altogether
    torch.manual_seed(0)
    layer = torch.rand(1, 2, 150, 200)
    p = Placement(scale, ox, oy, (140, 300))
    got = place_layer(layer, p, fill=0.25)
    assert torch.allclose(got, _placed_by_definition(layer, p, 0.25), atol=1e-6)


@pytest.mark.parametrize("scale", [0.37, 0.74, 1.6])
def test_place_layer_on_whole_pixels_samples_at_exactly_the_scale(scale):
    # a ramp whose value is its own column: each placed pixel holds the input column it
    # maps back to, (x + 0.5 - offset) / scale - 0.5, in one resampling
    ramp = torch.arange(300, dtype=torch.float32).expand(1, 1, 40, 300).contiguous()
    p = Placement(scale, 7.0, 3.0, (120, 700))
    got = place_layer(ramp, p, fill=-1.0)[0, 0, 8]
    cols = torch.arange(700, dtype=torch.float32)
    expected = (cols + 0.5 - 7.0) / scale - 0.5
    inside = (got >= 0) & (expected > 2) & (expected < 297)  # away from the clamped ends
    assert inside.sum() > 0.8 * math.floor(300 * scale)
    assert (got[inside] - expected[inside]).abs().max() < 0.07  # the antialias window's rounding
    assert (got[: 7] == -1).all()  # nothing before the offset
    # a hard edge stays as sharp as the scale allows: one soft pixel on a whole-pixel placement
    step = (torch.arange(300) >= 150).float().expand(1, 1, 40, 300).contiguous()
    row = place_layer(step, p)[0, 0, 8]
    assert ((row > 0.02) & (row < 0.98)).sum() <= math.ceil(1 / min(scale, 1.0)) + 1


def test_layouts_place_on_whole_pixels():
    _, frame = _frame(seed=3, h=240, w=320)
    for layout in (Layout("center"), Layout("crop"), Layout("center", size=(1000, 700)), Layout("none", aspect="1:1")):
        p = layout.placement(frame)
        assert p.offset_x == round(p.offset_x) and p.offset_y == round(p.offset_y), layout

# -- a grounded shadow that no canvas edge cuts -------------------------------------------

BORDER = 2 / 255


def _border_max(layer: torch.Tensor) -> float:
    s = layer[0]
    return max(float(s[0].max()), float(s[-1].max()), float(s[:, 0].max()), float(s[:, -1].max()))


def _steepest_away_from(layer: torch.Tensor, alpha: torch.Tensor, band: float = 0.03) -> float:
    """Largest gradient (per pixel) of the layer farther than `band` of the car's height
    from the car: a cut or a step shows there, a soft shadow does not."""
    import cv2

    car = (alpha[0] >= 0.5).numpy().astype(np.uint8)
    ys = np.nonzero(car)[0]
    k = max(3, int(band * (ys.max() - ys.min() + 1)))
    far = cv2.dilate(car, np.ones((2 * k + 1, 2 * k + 1), np.uint8)) == 0
    gy, gx = np.gradient(layer[0].double().numpy())
    return float(np.hypot(gx, gy)[far].max())


def _touching(frame: Frame, dx: float, dy: float) -> Frame:
    """The frame moved so that the car runs off the canvas (cut by the photo's edge)."""
    return Layout.apply(frame, Placement(1.0, dx, dy, frame.size))


@pytest.mark.parametrize("dx, dy", [(0.0, 0.0), (0.0, 30.0), (-80.0, 0.0), (90.0, 25.0)])
def test_shadow_fades_before_the_canvas_border(dx, dy):
    _, frame = _frame(plates=False)
    frame = _touching(frame, dx, dy)
    shadow = synthesize_shadow(frame.alpha)
    assert _border_max(shadow) <= BORDER
    assert float(shadow.max()) > 0.4  # and is still there under the tyres
    assert _steepest_away_from(shadow, frame.alpha) < 0.12


def test_three_quarter_view_gets_no_slab_along_the_tyre_line():
    _, frame = _frame(plates=False)
    h, w = frame.size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    src_y = (ys - (xs.float() / w * 40)).round().long().clamp(0, h - 1)  # the right side 40 px lower
    alpha = frame.alpha[0][src_y, xs][None]
    shadow = synthesize_shadow(alpha)
    car = alpha[0] >= 0.5
    cols = torch.nonzero(car.any(0))[:, 0]
    x0, x1 = int(cols.min()), int(cols.max()) + 1
    side, below = shadow_room()
    car_h = int(torch.nonzero(car.any(1))[:, 0].max() - torch.nonzero(car.any(1))[:, 0].min()) + 1
    # nothing past the room beside the car, nor deeper than the room below its lowest pixel
    s = shadow[0].numpy()
    assert s[:, : max(0, int(x0 - side * (x1 - x0)))].max(initial=0) <= BORDER
    assert s[:, int(x1 + side * (x1 - x0)) :].max(initial=0) <= BORDER
    lowest = int(torch.nonzero(car.any(1))[:, 0].max())
    assert s[lowest + int(below * car_h) + 2 :].max(initial=0) <= BORDER


@pytest.mark.parametrize("layout", ["center", "crop", "none"])
def test_pipeline_shadow_is_whole_for_every_layout_even_when_the_photo_cuts_the_car(layout):
    from bgr_core import Pipeline

    scene = synthetic_car_scene(240, 320, 5)
    cut = np.ascontiguousarray(scene.image[:, 40:])  # the car's left end off the photo
    r = Pipeline("cpu").remove_background(image_file=cut, layout=layout, window_correction="none")
    assert r.ok and r.shadow is not None
    shadow = torch.from_numpy(r.shadow)[None]
    assert _border_max(shadow) <= BORDER
    assert _steepest_away_from(shadow, torch.from_numpy(r.mask)[None]) < 0.12
    if layout != "none":  # the layout kept room for the shadow: its soft end is inside the canvas
        h, w = shadow.shape[-2:]
        assert float(shadow[0, :, : w // 20].max()) < 0.05


def test_layout_reserve_keeps_room_beside_and_below_the_car():
    from bgr_core.functional.geometry import place_box

    _, frame = _frame(plates=False)
    side, below = shadow_room()
    for mode, size in (("center", None), ("center", (200, 150)), ("crop", None)):
        placement = Layout(mode, margin=0.0, size=size, reserve=(side, below)).placement(frame)
        bx0, by0, bx1, by1 = frame.box.tolist()
        x0, y0, x1, y1 = place_box(frame.box.float(), placement).tolist()
        out_h, out_w = placement.out_size
        k = placement.scale
        assert x0 - k * side * (bx1 - bx0) >= -1 and x1 + k * side * (bx1 - bx0) <= out_w + 1
        assert y1 + k * below * (by1 - by0) <= out_h + 1
    with pytest.raises(ValueError, match="`reserve`"):
        Layout("center", reserve=(0.1, -1))


def test_gallery_photos_shadow_is_whole_for_every_layout(shared_data):
    """The finish gallery's photos (side, front, rear, three-quarter, close-ups cut by the
    frame): no shadow on the canvas border, no step away from the car, in every layout."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from finish_gallery import GALLERY

    from bgr_core import Pipeline

    pipe = Pipeline("cpu")
    photos = [shared_data / f for f, _ in GALLERY if (shared_data / f).exists()]
    assert len(photos) >= 12
    for path in photos:
        for layout in ("center", "crop", "none"):
            r = pipe.remove_background(image_file=str(path), layout=layout, window_correction="none")
            assert r.ok, (path.name, r.error_description)
            shadow = torch.from_numpy(r.shadow)[None]
            assert _border_max(shadow) <= BORDER, (path.name, layout)
            assert _steepest_away_from(shadow, torch.from_numpy(r.mask)[None]) < 0.12, (path.name, layout)


def test_shadow_on_a_large_canvas_is_drawn_small_and_matches_the_full_drawing(monkeypatch):
    from bgr_core.stages import shadow as S

    _, frame = _frame(plates=False)
    full = Shadow()([frame])[0]
    monkeypatch.setattr(S, "WORK_PIXELS", 240 * 320 // 4)  # this canvas now counts as large
    small = Shadow()([frame])[0]
    assert small.shadow.shape == full.shadow.shape
    assert float((small.shadow - full.shadow).abs().mean()) < 0.01
    assert _border_max(small.shadow) <= BORDER
    assert np.abs(small.meta["ground_contacts"][:, 1].mean() - full.meta["ground_contacts"][:, 1].mean()) < 3


def test_grown_bounds_grow_the_true_pixels_and_clip_to_the_mask():
    mask = torch.zeros(20, 30, dtype=torch.bool)
    assert grown_bounds(mask, 3) is None
    mask[5:8, 10:12] = True
    assert grown_bounds(mask, 0) == (5, 8, 10, 12)
    assert grown_bounds(mask, 3) == (2, 11, 7, 15)
    assert grown_bounds(mask, 50) == (0, 20, 0, 30)
