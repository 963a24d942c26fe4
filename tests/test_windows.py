"""Window correction: glass detection (`functional.glass`) and the `WindowCorrection` stage."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bgr_core.errors import NoData
from bgr_core.frame import Frame
from bgr_core.functional import glass as G
from bgr_core.functional import glass_finish as GF
from bgr_core.functional import matte as M
from bgr_core.loaders import load_glass_cues
from bgr_core.stages.background import ComposeBackground
from bgr_core.stages.windows import WindowCorrection
from bgr_core.testing import synthetic_car_scene

CUES = load_glass_cues().numpy_params()

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _scene(seed=0, height=240, width=320):
    scene = synthetic_car_scene(height, width, seed=seed)
    image = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    alpha = torch.from_numpy(scene.mask).float()[None]
    box = torch.tensor(scene.box, dtype=torch.float32)
    return Frame(image=image, alpha=alpha, box=box), torch.from_numpy(scene.glass)[None], scene


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


@pytest.fixture(scope="module")
def scene():
    return _scene(0)


@pytest.fixture(scope="module")
def tinted(scene):
    frame, _, _ = scene
    return WindowCorrection("tint")([frame])[0]


@pytest.fixture(scope="module")
def see_through(scene):
    frame, _, _ = scene
    return WindowCorrection("see_through")([frame])[0]


# -- detection ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_detects_the_known_glass(seed):
    frame, truth, _ = _scene(seed)
    glass = G.detect_glass(frame.image[None], frame.alpha[None], CUES)[0]
    assert glass.shape == (1, 240, 320) and glass.dtype == torch.float32
    assert float(glass.min()) >= 0 and float(glass.max()) <= 1
    assert _iou(glass >= 0.5, truth) > 0.75


def test_detection_at_a_larger_size_and_in_a_batch():
    frames = [_scene(s, 480, 640) for s in (1, 3)]
    image = torch.stack([f.image for f, _, _ in frames])
    alpha = torch.stack([f.alpha for f, _, _ in frames])
    glass = G.detect_glass(image, alpha, CUES)
    assert glass.shape == (2, 1, 480, 640)
    for k, (_, truth, _) in enumerate(frames):
        assert _iou(glass[k] >= 0.5, truth) > 0.75


def test_glass_never_outside_the_matte():
    frame, truth, _ = _scene(2)
    glass = G.detect_glass(frame.image[None], frame.alpha[None], CUES)[0]
    assert float(glass[frame.alpha == 0].max()) == 0.0
    # a window that the matte saw through (a hole) may be glass, the outside never
    holed = frame.alpha.clone()
    holed[truth] = 0.0
    glass = G.detect_glass(frame.image[None], holed[None], CUES)[0]
    support = torch.from_numpy(M.fill_holes((holed[0] > 0.5).numpy(), max_frac=math.inf))[None]
    assert float(glass[~support & (holed == 0)].max()) == 0.0


def test_empty_matte_gives_no_glass():
    frame, _, _ = _scene(0)
    glass = G.detect_glass(frame.image[None], torch.zeros_like(frame.alpha)[None], CUES)
    assert glass.shape == (1, 1, 240, 320) and float(glass.abs().max()) == 0.0


def test_detection_follows_dtype():
    frame, truth, _ = _scene(1)
    glass = G.detect_glass(frame.image[None].double(), frame.alpha[None].double(), CUES)
    assert glass.dtype == torch.float64 and _iou(glass[0] >= 0.5, truth) > 0.75


@pytest.mark.parametrize("size", [(48, 120), (300, 760)])  # below and above the half-size opening
def test_vehicles_joined_by_a_thin_bridge_get_a_crop_each(size):
    h, w = size
    alpha = torch.zeros(1, h, w)
    body = (slice(h // 3, 5 * h // 6),)
    alpha[(0, *body, slice(w // 20, 9 * w // 20))] = 1  # a car on the left
    alpha[(0, *body, slice(11 * w // 20, 19 * w // 20))] = 1  # one on the right
    bridge = max(1, h // 60)  # a contact shadow that joins them, a few pixels high
    alpha[0, 5 * h // 6 - bridge : 5 * h // 6, w // 20 : 19 * w // 20] = 1
    image = torch.full((3, h, w), 0.5)
    crops = G.vehicle_crops(image, alpha, 256)
    assert len(crops) == 2
    centres = sorted((x0 + x1) / 2 for _, _, (_, _, x0, x1) in crops)
    assert abs(centres[0] - w / 4) < w / 20 and abs(centres[1] - 3 * w / 4) < w / 20  # each around its car
    assert all(a.max() == 1.0 for _, a, _ in crops)
    # one car alone stays one vehicle
    alpha[0, :, w // 2 :] = 0
    assert len(G.vehicle_crops(image, alpha, 256)) == 1


def test_fill_holes():
    m = np.zeros((9, 9), bool)
    m[1:8, 1:8] = True
    m[3:6, 3:6] = False
    m[0:3, 0] = False
    assert M.fill_holes(m, max_frac=math.inf)[4, 4] and M.fill_holes(m, max_frac=math.inf).sum() == 49


def test_glass_tone_is_dark_neutral_and_lighter_at_the_top():
    glass = torch.zeros(1, 1, 40, 30)
    glass[..., 10:30, 5:25] = 1
    tone = GF.glass_tone(glass)
    top, bottom = tone[0, :, 10, 15], tone[0, :, 29, 15]
    assert float(top.mean()) > float(bottom.mean())
    assert float(tone[0, :, 10:30, 5:25].max()) < 0.35
    assert float((top.max() - top.min())) < 0.1  # neutral


# -- the stage ------------------------------------------------------------------------


def _unchanged_outside(before: Frame, after: Frame) -> None:
    outside = (after.glass == 0)[0]
    assert torch.equal(after.image[:, outside], before.image[:, outside])
    assert torch.equal(after.alpha[:, outside], before.alpha[:, outside])


def test_tint_replaces_the_glass_with_a_clean_tone(scene, tinted):
    frame, truth, _ = scene
    tinted.check()
    assert tinted.glass is not None and tinted.glass.shape == (1, 240, 320)
    assert _iou(tinted.glass >= 0.5, truth) > 0.75
    core = (tinted.glass[0] >= 0.99) & truth[0]
    assert core.sum() > 100
    new, old = tinted.image[:, core], frame.image[:, core]
    assert float(new.mean()) < float(old.mean()) - 0.1  # darker
    tone = GF.glass_tone(tinted.glass[None])[0][:, core]
    assert float((new - tone).abs().mean()) < 0.3 * float((old - tone).abs().mean())  # the old view is gone
    assert float((new.max(0).values - new.min(0).values).mean()) < 0.08  # neutral
    _unchanged_outside(frame, tinted)
    assert "windows" not in frame.timings and tinted.warnings == []


def test_tint_without_interior_is_exactly_the_tone(scene):
    frame, _, _ = scene
    out = WindowCorrection("tint", interior=0.0)([frame])[0]
    full = out.glass[0] == 1
    tone = GF.glass_tone(out.glass[None])[0]
    assert full.sum() > 100
    assert torch.allclose(out.image[:, full], tone[:, full], atol=1e-6)


def test_see_through_lowers_alpha_in_the_glass(scene, see_through):
    frame, _, _ = scene
    see_through.check()
    core = see_through.glass[0] >= 0.99
    inside = see_through.alpha[0, core]  # `opacity`, up to halfway to opaque where it shows the interior
    assert float(inside.min()) >= 0.4 - 0.01 and float(inside.max()) <= 0.7 + 0.01
    assert float(see_through.image[:, core].mean()) < float(frame.image[:, core].mean())
    _unchanged_outside(frame, see_through)


def test_strength_and_opacity(scene):
    frame, _, _ = scene
    weak = WindowCorrection("tint", strength=0.0)([frame])[0]
    assert torch.equal(weak.image, frame.image) and weak.glass is not None
    opaque = WindowCorrection("see_through", opacity=1.0)([frame])[0]
    assert torch.equal(opaque.alpha, frame.alpha)


def test_off_is_not_a_mode_of_the_stage():
    with pytest.raises(ValueError, match="leave the stage out"):  # the recipe leaves it out
        WindowCorrection("none")


def test_inputs_are_not_mutated(scene):
    frame, _, _ = scene
    image, alpha = frame.image.clone(), frame.alpha.clone()
    for mode in ("tint", "see_through"):
        out = WindowCorrection(mode)([frame])[0]
        assert out is not frame and frame.glass is None and frame.warnings == []
    assert torch.equal(frame.image, image) and torch.equal(frame.alpha, alpha)


def test_error_frames_pass_through_and_missing_alpha_raises(scene):
    frame, _, _ = scene
    bad = Frame(image=frame.image, error=NoData("no vehicle"))
    out = WindowCorrection()([bad, frame])
    assert out[0] is bad and out[1].glass is not None
    with pytest.raises(ValueError, match="segment"):
        WindowCorrection()([Frame(image=frame.image)])


def test_no_glass_found_warns():
    # a plain grey rectangle as "vehicle": nothing looks like glass
    image = torch.full((3, 120, 160), 0.5)
    alpha = torch.zeros(1, 120, 160)
    alpha[:, 40:100, 20:140] = 1
    out = WindowCorrection()([Frame(image=image, alpha=alpha)])[0]
    assert out.glass is not None
    if float(out.glass.max()) < 0.5:
        assert any("no glass" in w for w in out.warnings)
    _unchanged_outside(Frame(image=image, alpha=alpha), out)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        WindowCorrection("blur")
    with pytest.raises(ValueError, match="opacity"):
        WindowCorrection("see_through", opacity=1.5)
    with pytest.raises(ValueError, match="top"):
        WindowCorrection(top=(0.1, 0.2))


def test_followed_by_compose_background(scene, tinted, see_through):
    frame, _, _ = scene
    core = tinted.glass[0] >= 0.99
    outside = frame.alpha[0] == 0
    white = ComposeBackground("white_background")([tinted])[0].output
    assert white.shape == (3, 240, 320)
    assert float(white[:, core].mean()) < 0.35  # dark glass, no old background
    assert torch.allclose(white[:, outside], torch.ones(3, int(outside.sum())))
    clear = ComposeBackground("transparent_background")([see_through])[0].output
    assert clear.shape == (4, 240, 320)
    assert float(clear[3, see_through.glass[0] >= 0.99].max()) < 0.71  # see-through glass
    assert float(clear[3, (frame.alpha[0] == 1) & (see_through.glass[0] == 0)].min()) == 1.0
    clear_tint = ComposeBackground("transparent_background")([tinted])[0].output
    assert float(clear_tint[3, core].min()) > 0.99  # tinted glass stays opaque
    green = torch.zeros(3, 4, 4)
    green[1] = 1.0
    custom = ComposeBackground("custom_background")([see_through.replace(background_image=green)])[0].output
    glass_px = custom[:, see_through.glass[0] >= 0.99]
    assert float(glass_px[1].mean()) > float(glass_px[0].mean()) + 0.3  # the new background shows through


# -- the finish: structure under the tint, the new background through the glass ---------


def _local_contrast(lum: torch.Tensor, where: torch.Tensor, k: int = 7) -> float:
    """Mean local standard deviation (k x k windows) of (H, W) `lum` over `where`."""
    x = lum[None, None]
    mean = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)
    var = F.avg_pool2d(x * x, k, 1, k // 2, count_include_pad=False) - mean**2
    return float(var.clamp_min(0).sqrt()[0, 0][where].mean())


def _with_interior(seed: int = 1):
    """The synthetic scene with a dark car interior behind its glass: headrests, seat
    backs and a steering wheel rim as lighter and darker shapes."""
    frame, truth, scene = _scene(seed)
    image = frame.image.clone()
    g = truth[0]
    ys, xs = torch.meshgrid(torch.arange(image.shape[1]), torch.arange(image.shape[2]), indexing="ij")
    interior = 0.12 + 0.10 * ((xs // 9) % 2) + 0.08 * (((ys - xs // 3) // 7) % 2)
    image[:, g] = interior[g].float().expand(3, -1)
    return frame.replace(image=image), truth


def _lum(img: torch.Tensor) -> torch.Tensor:
    return 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]


def test_tint_keeps_a_third_of_the_interior_contrast_and_nothing_else_changes():
    frame, truth = _with_interior()
    out = WindowCorrection("tint")([frame])[0]
    core = (out.glass[0] >= 0.99) & truth[0]
    core = core & (F.max_pool2d((~core)[None, None].float(), 9, 1, 4)[0, 0] == 0)  # away from the frame
    assert core.sum() > 100
    before, after = _local_contrast(_lum(frame.image), core), _lum(out.image)
    assert _local_contrast(after, core) >= before / 3
    assert float(after[core].mean()) < float(_lum(frame.image)[core].mean()) + 0.05  # not lighter
    _unchanged_outside(frame, out)


def test_tint_edge_follows_the_window_frame():
    frame, truth, _ = _scene(2)
    out = WindowCorrection("tint")([frame])[0]
    changed = (out.image - frame.image).abs().amax(0) > 0.02
    frame_px = truth[0] ^ F.max_pool2d(truth[None].float(), 5, 1, 2)[0, 0].bool()  # a 2 px ring outside
    assert float(changed[frame_px].float().mean()) < 0.35


def test_see_through_shows_the_custom_background_pattern_and_leaves_pillars_alone():
    frame, truth, _ = _scene(0)
    h, w = frame.size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    stripes = (((xs + ys) // 6) % 2).float()
    bg = torch.stack([0.9 * stripes, 0.2 + 0.0 * stripes, 0.9 * (1 - stripes)])
    out = WindowCorrection("see_through")([frame])[0]
    composed = ComposeBackground("custom_background")([out.replace(background_image=bg)])[0].output
    core = (out.glass[0] >= 0.99) & truth[0]
    seen = composed[0, core] - composed[2, core]
    pattern = bg[0, core] - bg[2, core]
    corr = float(torch.corrcoef(torch.stack([seen, pattern]))[0, 1])
    assert corr > 0.8, corr  # the stripes read through the glass
    body = (frame.alpha[0] == 1) & (out.glass[0] == 0)  # pillars, frames, body
    assert torch.equal(composed[:, body], frame.image[:, body])


# -- a real photo -------------------------------------------------------------------------


def _matte(image: torch.Tensor) -> torch.Tensor:
    from bgr_core.loaders import load_u2netp

    net = load_u2netp("cpu")
    try:
        from bgr_core.stages.segment import VehicleMatte
    except ImportError:
        import torch.nn.functional as F

        x = F.interpolate(image[None], size=(320, 320), mode="bilinear", antialias=True)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        with torch.no_grad():
            p = net((x - mean) / std)
        return F.interpolate(p, size=image.shape[-2:], mode="bilinear", align_corners=False)[0].clamp(0, 1)
    frame = VehicleMatte(net)([Frame(image=image)])[0]
    assert frame.error is None
    return frame.alpha


def test_real_photo_trees_through_the_windows():
    path = SHARED_DATA / "photos" / "car-3.jpg"
    if not path.is_file():
        pytest.skip("../shared/data/photos/car-3.jpg is not present")
    from PIL import Image

    image = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
    alpha = _matte(image)
    frame = Frame(image=image, alpha=alpha)
    out = WindowCorrection("tint")([frame])[0]
    out.check()
    marked = out.glass[0] >= 0.5
    vehicle = alpha[0] >= 0.5
    # both cars' windows: a fair share of the silhouette, in its upper half, never outside it
    assert 0.03 < float(marked.sum()) / float(vehicle.sum()) < 0.4
    ys = torch.nonzero(vehicle)[:, 0].float()
    mid = float(ys.min() + 0.5 * (ys.max() - ys.min()))
    assert float(torch.nonzero(marked)[:, 0].float().mean()) < mid
    assert float(out.glass[0][alpha[0] == 0].max()) == 0.0
    # the glass is darker and plainer than the trees were
    assert float(out.image[:, marked].mean()) < float(image[:, marked].mean())
    _unchanged_outside(frame, out)


def test_the_cue_model_loads_strictly_from_its_file(tmp_path):
    from safetensors.torch import load_file, save_file

    from bgr_core import weights
    from bgr_core.models.glass_cues import GlassCueNet

    net = load_glass_cues()
    assert isinstance(net, GlassCueNet) and not net.training
    assert sum(p.numel() for p in net.parameters()) == 721
    w1, b1, w2, b2 = net.numpy_params()
    assert w1.shape == (43, 16) and w1.flags.c_contiguous and b2.dtype == np.float32
    # the torch forward and the numpy parameters agree
    x = np.random.default_rng(0).normal(size=(5, 43)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.allclose(G.glass_probability(x, (w1, b1, w2, b2)), ref, atol=1e-5)
    state = load_file(str(weights.resolve("glass_cues")))
    state.pop("out.bias")
    partial = tmp_path / "partial.safetensors"
    save_file(state, str(partial))
    with pytest.raises(RuntimeError, match="Missing key"):
        load_glass_cues(partial)


def test_likeness_tells_the_background_seen_through_from_the_interior_by_colour():
    # a grey car on green ground; its window shows green on the left, beige on the right,
    # equally light: only the colour comparison with the ground can tell them apart
    rng = np.random.default_rng(0)
    h, w = 120, 200
    img = np.clip(rng.normal((70, 140, 60), 5, (h, w, 3)), 0, 255)
    alpha = np.zeros((h, w), np.float32)
    alpha[30:100, 20:180] = 1
    img[30:100, 20:180] = np.clip(rng.normal(150, 5, (70, 160, 3)), 0, 255)
    glass = np.zeros((h, w), np.float32)
    glass[38:60, 50:150] = 1
    img[38:60, 50:100] = np.clip(rng.normal((70, 140, 60), 5, (22, 50, 3)), 0, 255)
    img[38:60, 100:150] = np.clip(rng.normal((150, 125, 95), 5, (22, 50, 3)), 0, 255)
    image = torch.from_numpy(img.astype(np.uint8)).permute(2, 0, 1).float()[None] / 255
    like = G.background_likeness(image, torch.from_numpy(alpha)[None, None], torch.from_numpy(glass)[None, None])[0, 0]
    green, beige = float(like[42:56, 55:90].mean()), float(like[42:56, 110:145].mean())
    assert green > beige + 0.2, (green, beige)
