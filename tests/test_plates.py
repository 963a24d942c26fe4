"""Licence plates: detection on synthetic plates with known corners, overlay geometry,
the stage's contract, and the real photo car-2.jpg (skipped without ../shared/data)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bgr_core.errors import NoData
from bgr_core.frame import Frame
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
from bgr_core.stages.plates import (
    NO_PLATE_WARNING,
    ContourPlateDetector,
    PlateDetection,
    PlateDetector,
    PlateReplacement,
    TorchScriptPlateDetector,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GLYPHS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


# -- synthetic scenes -------------------------------------------------------------------------------


def plate_texture(rng: np.random.Generator, long: bool) -> np.ndarray:
    """A white plate (h, w, 3) uint8 with dark characters (its outline is the white edge)."""
    w, h = (520, 112) if long else (300, 150)
    img = np.full((h, w, 3), 235, np.uint8)
    text = "".join(rng.choice(list(GLYPHS), 7 if long else 6))
    scale = h * 0.6 / 22.0
    thick = max(2, int(scale * 2.2))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    scale *= min(1.0, (w - 30) / tw)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.putText(img, text, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), thick,
                cv2.LINE_AA)
    return img


def plate_scene(seed: int, long: bool | None = None, size=(360, 480)):
    """A textured street, a car-coloured body (the vehicle box and matte) with a grille and
    lamps, and a plate warped by a random homography onto its lower middle.

    Returns (image uint8 (H, W, 3), quad (4, 2) float64 clockwise from top-left, box (4,),
    alpha (H, W) float32)."""
    rng = np.random.default_rng(seed)
    h, w = size
    if long is None:
        long = bool(rng.random() < 0.5)
    img = rng.normal(120, 18, (h, w, 3)).clip(0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    for _ in range(25):  # clutter: lines and blocks
        c = tuple(int(v) for v in rng.integers(40, 220, 3))
        p0 = tuple(int(v) for v in rng.integers(0, [w, h]))
        p1 = tuple(int(v) for v in rng.integers(0, [w, h]))
        if rng.random() < 0.5:
            cv2.line(img, p0, p1, c, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            cv2.rectangle(img, p0, (p0[0] + int(rng.integers(5, 60)), p0[1] + int(rng.integers(5, 40))), c, -1)
    x0, y0, x1, y1 = 60, 40, 420, 340
    body = np.zeros((h, w), np.uint8)
    cv2.rectangle(body, (x0, y0 + 40), (x1, y1), 1, -1)
    cv2.rectangle(body, (x0 + 50, y0), (x1 - 50, y0 + 60), 1, -1)
    paint = rng.integers(30, 220, 3)
    shade = np.linspace(1.1, 0.8, h)[:, None, None]
    car = (paint[None, None] * shade + rng.normal(0, 4, (h, w, 3))).clip(0, 255).astype(np.uint8)
    img[body.astype(bool)] = car[body.astype(bool)]
    cv2.rectangle(img, (x0 + 70, y0 + 5), (x1 - 70, y0 + 55), tuple(int(v * 0.4) for v in paint), -1)  # windscreen
    for k in range(4):  # grille bars
        yy = 175 + 12 * k
        cv2.rectangle(img, (x0 + 110, yy), (x1 - 110, yy + 5), (40, 40, 45), -1)
    for cx in (x0 + 45, x1 - 45):  # lamps
        cv2.ellipse(img, (cx, 170), (30, 14), 0, 0, 360, (230, 230, 225), -1)
    # the plate: a rectangle around the lower middle, rotated, skewed and in perspective
    pw = float(rng.uniform(95, 115)) if not long else float(rng.uniform(125, 150))
    ph = pw / (2.0 if not long else 4.6)
    cx, cy = 240 + rng.uniform(-12, 12), 265 + rng.uniform(-10, 10)
    rect = np.array([[-pw / 2, -ph / 2], [pw / 2, -ph / 2], [pw / 2, ph / 2], [-pw / 2, ph / 2]])
    ang = np.radians(rng.uniform(-7, 7))
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    quad = rect @ rot.T + [cx, cy] + rng.uniform(-0.05, 0.05, (4, 2)) * [pw, ph]
    tex = plate_texture(rng, long)
    th, tw = tex.shape[:2]
    s = 4  # render at 4x and shrink: anti-aliased edges
    src = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
    m = cv2.getPerspectiveTransform(src - 0.5, (quad * s - 0.5).astype(np.float32))
    big = cv2.warpPerspective(tex, m, (w * s, h * s), flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(np.full((th, tw), 255, np.uint8), m, (w * s, h * s), flags=cv2.INTER_LINEAR)
    big = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    a = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    plate = big / np.maximum(a, 1e-3)
    img = (img * (1 - a) + plate * a).clip(0, 255).astype(np.uint8)
    alpha = body.astype(np.float32)
    box = np.array([x0, y0, x1, y1], np.float32)
    return img, quad, box, alpha


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255


def scene_frame(seed: int, **kw) -> tuple[Frame, np.ndarray]:
    img, quad, box, alpha = plate_scene(seed, **kw)
    return Frame(image=to_tensor(img), alpha=torch.from_numpy(alpha)[None], box=torch.from_numpy(box)), quad


def corner_error(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1).mean())


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


# -- detection -----------------------------------------------------------------------------------------


# seed 7: a white plate on near-white paint; the detector takes the row of characters
# (top edge 16 px low). A known miss, kept visible rather than dropped.
_LOW_CONTRAST = pytest.mark.xfail(reason="white plate on near-white paint: the top edge is missed", strict=True)


@pytest.mark.parametrize("seed", [*range(7), pytest.param(7, marks=_LOW_CONTRAST)])
def test_detector_finds_synthetic_plates_corners(seed):
    frame, quad = scene_frame(seed)
    dets = ContourPlateDetector().detect(frame.image, frame.alpha, frame.box)
    assert dets, "no plate found"
    best = dets[0]
    assert quad_iou(best.quad.numpy(), quad) > 0.8
    assert corner_error(best.quad.numpy(), quad) < 3.0
    assert 0.5 <= best.score <= 1.0


def test_detector_without_matte_or_box():
    img, quad, _, _ = plate_scene(2)
    dets = ContourPlateDetector().detect(to_tensor(img))
    assert dets and quad_iou(dets[0].quad.numpy(), quad) > 0.7


def test_detector_is_a_plate_detector():
    assert isinstance(ContourPlateDetector(), PlateDetector)


# -- the stage -----------------------------------------------------------------------------------------


def test_stage_overlays_the_replacement_and_sets_plates():
    frame, quad = scene_frame(4)
    logo = torch.zeros(3, 40, 160)
    logo[2] = 1.0  # blue: easy to find
    before = frame.image.clone()
    (out,) = PlateReplacement("image", logo)([frame])
    assert torch.equal(frame.image, before), "the input frame is not mutated"
    assert out.plates.shape == (1, 4, 2) and out.plates.dtype == torch.float32
    assert corner_error(out.plates[0].numpy(), quad) < 3.0
    assert out.meta["plate_scores"] and NO_PLATE_WARNING not in out.warnings
    blue = (out.image[2] > out.image[0] + 0.2) & (out.image[2] > out.image[1] + 0.2)
    ys, xs = torch.nonzero(blue, as_tuple=True)
    assert len(xs) > 200
    # it lands on the plate grown to its outer border (the old plate's rim is covered too)
    outline = out.meta["plate_outlines"][0].numpy()
    inside = np.zeros(frame.size, np.uint8)
    cv2.fillConvexPoly(inside, np.round(outline * 16 - 8).astype(np.int32), 1, shift=4)
    assert inside[ys.numpy(), xs.numpy()].mean() > 0.98, "the replacement lands inside the plate's outline"
    pw, ph = np.ptp(quad[:, 0]), np.ptp(quad[:, 1])
    assert np.abs(outline - quad).max(0)[0] <= 0.1 * pw + 2 and np.abs(outline - quad).max(0)[1] <= 0.3 * ph + 2
    plain = PlateReplacement("image", logo, cover_border=False)([frame])[0]
    assert torch.equal(plain.meta["plate_outlines"], plain.plates)


def test_stage_blank_mode_removes_the_characters():
    frame, quad = scene_frame(6)
    (out,) = PlateReplacement("blank")([frame])
    assert out.plates.shape == (1, 4, 2)
    inner = np.zeros(frame.size, np.uint8)
    c = quad.mean(0)
    cv2.fillConvexPoly(inner, np.round((c + (quad - c) * 0.6) * 16 - 8).astype(np.int32), 1, shift=4)
    m = torch.from_numpy(inner.astype(bool))
    lum_before = frame.image.mean(0)[m]
    lum_after = out.image.mean(0)[m]
    assert float(lum_before.std()) > 0.2, "characters before"
    assert float(lum_after.std()) < 0.05, "a clean plate after"
    assert float(lum_after.mean()) > 0.6, "light plate colour"


def test_stage_no_plate_leaves_the_image_and_warns():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.normal(120, 30, (200, 300, 3)).clip(0, 255).astype(np.uint8), (0, 0), 3)
    frame = Frame(image=to_tensor(img), warnings=["earlier"])
    (out,) = PlateReplacement("blank")([frame])
    assert torch.equal(out.image, frame.image)
    assert out.plates.shape == (0, 4, 2)
    assert out.warnings == ["earlier", NO_PLATE_WARNING]
    assert frame.warnings == ["earlier"], "the input frame's warnings are not touched"
    assert out.error is None


def test_stage_passes_error_frames_through():
    frame, _ = scene_frame(0)
    bad = frame.replace(error=NoData("no vehicle"))
    out = PlateReplacement("blank")([bad, frame])
    assert out[0] is bad
    assert out[1].plates is not None and out[1].plates.shape[0] == 1


def test_stage_validates_its_arguments():
    with pytest.raises(ValueError):
        PlateReplacement("image")
    with pytest.raises(ValueError):
        PlateReplacement("image", torch.rand(2, 10, 10))
    with pytest.raises(ValueError):
        PlateReplacement("logo", torch.rand(3, 10, 10))
    with pytest.raises(TypeError):
        PlateReplacement("blank", detector=object())


class _FixedDetector:
    def __init__(self, quad):
        self.quad = quad

    def detect(self, image, alpha=None, box=None):
        return [PlateDetection(self.quad, 0.9), PlateDetection(self.quad + 100, 0.1)]


def test_stage_takes_any_detector_and_its_min_score():
    frame, quad = scene_frame(2)
    (out,) = PlateReplacement("blank", detector=_FixedDetector(torch.from_numpy(quad)), min_score=0.5)([frame])
    assert out.plates.shape == (1, 4, 2)
    np.testing.assert_allclose(out.plates[0].numpy(), quad, atol=1e-4)


class _TinyNet(torch.nn.Module):
    def forward(self, x):
        # one fixed plate at fractions of the input square, score 0.8
        q = torch.tensor([[0.25, 0.5, 0.5, 0.5, 0.5, 0.625, 0.25, 0.625, 0.8]])
        return q + 0 * x.mean()


def test_torchscript_detector_loads_a_weights_file(tmp_path):
    path = tmp_path / "plates.pt"
    torch.jit.save(torch.jit.script(_TinyNet()), str(path))
    det = TorchScriptPlateDetector(path, input_size=256, min_score=0.5)
    image = torch.rand(3, 100, 200)  # letterboxed into 256: 1.28 px per image px
    (d,) = det.detect(image)
    np.testing.assert_allclose(d.quad.numpy(), [[50, 100], [100, 100], [100, 125], [50, 125]], atol=1e-3)
    assert d.score == pytest.approx(0.8)
    assert isinstance(det, PlateDetector)
    with pytest.raises(FileNotFoundError):
        TorchScriptPlateDetector(tmp_path / "missing.pt")


# -- a real photo ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def car2():
    path = SHARED_DATA / "photos" / "car-2.jpg"
    if not path.is_file():
        pytest.skip("../shared/data is not present")
    from PIL import Image

    with Image.open(path) as im:
        return to_tensor(np.asarray(im.convert("RGB")).copy())


# the plate "JÆGER-AMLAND" on the white sports car, corners read off the photo by hand
CAR2_PLATE = np.array([[711, 452], [809, 449], [808, 481], [707, 486]], np.float64)
CAR2_BOX = torch.tensor([117.0, 234.0, 887.0, 558.0])  # the car, about as the matte stage boxes it


def test_real_photo_car2_plate_is_found(car2):
    dets = ContourPlateDetector().detect(car2, None, CAR2_BOX)
    assert dets
    assert quad_iou(dets[0].quad.numpy(), CAR2_PLATE) > 0.6
    assert corner_error(dets[0].quad.numpy(), CAR2_PLATE) < 8.0


def test_real_photo_car2_replacement_stays_on_the_plate(car2):
    frame = Frame(image=car2, box=CAR2_BOX)
    logo = torch.ones(3, 110, 520)
    logo[:, 20:90, 20:90] = torch.tensor([0.8, 0.1, 0.1]).view(3, 1, 1)
    (out,) = PlateReplacement("image", logo)([frame])
    assert out.plates.shape == (1, 4, 2)
    changed = (out.image - car2).abs().amax(0) > 0
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert 690 <= int(xs.min()) and int(xs.max()) <= 825
    assert 435 <= int(ys.min()) and int(ys.max()) <= 500


@pytest.mark.parametrize("aspect", [1.3, 2.0, 3.33, 4.7])
def test_blank_plate_any_height(aspect):
    # odd heights once gave a border ring one pixel off the canvas (a size mismatch)
    for height in (8, 31, 64, 97, 106, 107, 213):
        p = blank_plate(aspect, height=height)
        assert p.shape == (4, height, max(8, round(height * aspect)))
        assert 0.0 <= float(p.min()) and float(p.max()) <= 1.0


# -- the learned re-scorer of the candidates ---------------------------------------------------------------

SCORER_FILE = Path(__file__).resolve().parents[1] / "weights" / "plate_scorer.safetensors"
_needs_scorer = pytest.mark.skipif(not SCORER_FILE.is_file(), reason="weights/plate_scorer.safetensors not shipped")


@_needs_scorer
def test_learned_scorer_loads_strictly_on_cpu_and_is_the_default():
    from safetensors.torch import load_file

    from bgr_core.stages.plates import LearnedPlateScorer

    scorer = LearnedPlateScorer()
    assert scorer.path.name == "plate_scorer.safetensors"
    state = load_file(str(SCORER_FILE))
    assert set(state) == set(scorer.net.state_dict())
    assert all(t.device.type == "cpu" for t in scorer.net.state_dict().values())
    assert not scorer.net.training
    assert SCORER_FILE.stat().st_size < 1_000_000
    assert isinstance(ContourPlateDetector().scorer, LearnedPlateScorer)
    assert ContourPlateDetector(scorer=None).scorer is None


@_needs_scorer
def test_learned_scorer_is_deterministic():
    frame, quad = scene_frame(3)
    det = ContourPlateDetector()
    a = det.candidates(frame.image, frame.alpha, frame.box)
    b = ContourPlateDetector().candidates(frame.image, frame.alpha, frame.box)
    assert [d.score for d in a] == [d.score for d in b]
    assert all(torch.equal(x.quad, y.quad) for x, y in zip(a, b))
    assert "logistic" in a[0].meta and 0.0 <= a[0].score <= 1.0


@pytest.mark.parametrize("seed", [0, 4])
def test_logistic_score_alone_still_finds_synthetic_plates(seed):
    frame, quad = scene_frame(seed)
    dets = ContourPlateDetector(scorer=None).detect(frame.image, frame.alpha, frame.box)
    assert dets and quad_iou(dets[0].quad.numpy(), quad) > 0.8


def test_missing_scorer_weights(tmp_path, monkeypatch):
    from bgr_core import weights
    from bgr_core.errors import WeightsNotFound

    # a path given explicitly must exist
    with pytest.raises(WeightsNotFound, match="missing.safetensors"):
        ContourPlateDetector(scorer=tmp_path / "missing.safetensors")

    # the default falls back to the logistic score when no weights file is found anywhere
    real = weights.resolve

    def nowhere(key, explicit=None):  # the scorer's file only; the logistic weights stay
        if key == "plate_scorer":
            raise WeightsNotFound(f"{key}: not found")
        return real(key, explicit)

    monkeypatch.setattr(weights, "resolve", nowhere)
    det = ContourPlateDetector()
    assert det.scorer is None and "scorer=None" in repr(det)
    frame, quad = scene_frame(1)
    dets = det.detect(frame.image, frame.alpha, frame.box)
    assert dets and quad_iou(dets[0].quad.numpy(), quad) > 0.8


def test_foreign_scorer_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(ValueError, match="not a plate scorer"):
        ContourPlateDetector(scorer=path)


@_needs_scorer
def test_scorer_file_with_a_missing_tensor_does_not_load(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    state = load_file(str(SCORER_FILE))
    with safe_open(str(SCORER_FILE), framework="pt") as fh:
        meta = fh.metadata()
    state.pop(sorted(state)[0])
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path), metadata=meta)
    with pytest.raises(RuntimeError, match="Missing key"):
        ContourPlateDetector(scorer=path)


def test_plate_patch_rectifies_the_quad_with_context():
    from bgr_core.functional.plate_features import plate_patch

    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 80:120] = 255  # a white 40x20 rectangle
    quad = np.array([[80, 40], [120, 40], [120, 60], [80, 60]], np.float64)
    p = plate_patch(img, None, quad, (96, 48), (2.0, 3.0))
    assert p.shape == (4, 48, 96) and p.dtype == np.float32
    assert p[:3, 18:30, 27:69].min() > 0.9, "the quad fills the middle half of the width, the middle third of the height"
    assert p[:3, :14].max() < 0.1 and p[:3, :, :22].max() < 0.1
    assert np.all(p[3] == 1.0), "no matte: all vehicle"


def test_scorer_ensemble_file_averages_its_members(tmp_path):
    import json

    from safetensors.torch import save_file

    from bgr_core.functional.plate_features import FEATURES, SCORER_EXTRA, plate_patch, scorer_features
    from bgr_core.functional.plate_search import prepare_work
    from bgr_core.models.plate_scorer import PlateScorerEnsemble
    from bgr_core.stages.plate_detectors import LearnedPlateScorer

    names = list(FEATURES) + list(SCORER_EXTRA)
    torch.manual_seed(0)
    ens = PlateScorerEnsemble(3, len(names), width=8, size=(96, 48), hidden=8).eval()
    cfg = dict(features=names, size=[96, 48], context=[2.0, 3.0], width=8, hidden=8, members=3)
    path = tmp_path / "ens.safetensors"
    save_file({k: v.contiguous() for k, v in ens.state_dict().items()}, str(path), metadata=dict(config=json.dumps(cfg)))
    scorer = LearnedPlateScorer(path)
    assert isinstance(scorer.net, PlateScorerEnsemble) and len(scorer.net.members) == 3

    frame, _ = scene_frame(2)
    det = ContourPlateDetector(scorer=scorer)
    work = prepare_work(frame.image, frame.alpha, frame.box, det.work_size)
    scored = det.scored(work)[:6]
    probs = scorer(work, scored, det.aspect_range)
    patches = torch.from_numpy(np.stack([plate_patch(work.rgb, work.alpha, q, (96, 48), (2.0, 3.0)) for _, q, _ in scored]))
    feats = torch.tensor([scorer_features(f, s, det.aspect_range) for s, _, f in scored])
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(m(patches, feats)) for m in ens.members]).mean(0)
    assert probs.shape == (6,)
    assert np.allclose(probs, expected.double().numpy(), atol=1e-5)
    # the members differ, so the mean is not any one of them
    with torch.no_grad():
        one = torch.sigmoid(ens.members[0](patches, feats))
    assert not torch.allclose(one, expected)

    # a file of one bare net (no "members", as written before ensembles) still loads
    bare = tmp_path / "bare.safetensors"
    cfg.pop("members")
    save_file({k: v.contiguous() for k, v in ens.members[0].state_dict().items()}, str(bare),
              metadata=dict(config=json.dumps(cfg)))
    single = LearnedPlateScorer(bare)
    assert not isinstance(single.net, PlateScorerEnsemble)
    assert np.allclose(single(work, scored, det.aspect_range), one.double().numpy(), atol=1e-5)


def test_logistic_weights_are_data(tmp_path):
    import json

    from bgr_core.functional.plate_features import FEATURES
    from bgr_core.loaders import load_plate_logistic

    w = load_plate_logistic()
    assert set(w) == {"smooth", "text"} and set(w["smooth"]) == set(FEATURES) | {"bias"}
    w["smooth"]["bias"] = 0.0  # a caller's copy: the cache is untouched
    assert load_plate_logistic()["smooth"]["bias"] != 0.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"weights": {"smooth": {}}}))
    with pytest.raises(ValueError, match="not a plate logistic weights file"):
        load_plate_logistic(bad)
    # a detector given other weights scores with them
    zero = {"smooth": {"bias": -30.0}, "text": {"bias": -30.0}}
    frame, _ = scene_frame(1)
    assert ContourPlateDetector(scorer=None, weights=zero).detect(frame.image, frame.alpha, frame.box) == []
