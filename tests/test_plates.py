"""The plate stage (`bgr_core.stages.plates.PlateReplacement`): its contract on synthetic
scenes and the real photo car-2.jpg."""

import cv2
import numpy as np
import pytest
import torch

from bgr_core.errors import NoData
from bgr_core.frame import Frame
from bgr_core.stages.plates import (
    NO_PLATE_WARNING,
    PlateDetection,
    PlateReplacement,
)
from plate_scenes import CAR2_BOX, corner_error, load_car2, scene_frame, to_tensor


@pytest.fixture(scope="module")
def car2():
    return load_car2()


# -- the stage -----------------------------------------------------------------------------------------


def test_stage_overlays_the_replacement_and_sets_plates():
    frame, quad = scene_frame(4)
    logo = torch.zeros(3, 40, 160)
    logo[2] = 1.0  # blue: easy to find
    before = frame.image.clone()
    (out,) = PlateReplacement("image")([frame.replace(plate_image=logo)])
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
    plain = PlateReplacement("image", cover_border=False)([frame.replace(plate_image=logo)])[0]
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
        PlateReplacement("logo")
    frame, _ = scene_frame(2)
    with pytest.raises(ValueError, match="plate_image"):  # the plate is the frame's, per request
        PlateReplacement("image")([frame])
    with pytest.raises(ValueError, match="plate_image"):
        PlateReplacement("image")([frame.replace(plate_image=torch.rand(2, 10, 10))])
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


def test_real_photo_car2_replacement_stays_on_the_plate(car2):
    frame = Frame(image=car2, box=CAR2_BOX)
    logo = torch.ones(3, 110, 520)
    logo[:, 20:90, 20:90] = torch.tensor([0.8, 0.1, 0.1]).view(3, 1, 1)
    (out,) = PlateReplacement("image")([frame.replace(plate_image=logo)])
    assert out.plates.shape == (1, 4, 2)
    changed = (out.image - car2).abs().amax(0) > 0
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert 690 <= int(xs.min()) and int(xs.max()) <= 825
    assert 435 <= int(ys.min()) and int(ys.max()) <= 500


