"""Plate detectors (`bgr_core.stages.plate_detectors`): synthetic plates with known corners,
the real photo car-2.jpg, the learned re-scorer and the logistic weights."""

from pathlib import Path

import numpy as np
import pytest
import torch

from bgr_core.functional.plates import quad_iou
from bgr_core.stages.plates import (
    ContourPlateDetector,
    PlateDetector,
    TorchScriptPlateDetector,
)
from plate_scenes import CAR2_BOX, CAR2_PLATE, corner_error, load_car2, plate_scene, scene_frame, to_tensor


@pytest.fixture(scope="module")
def car2():
    return load_car2()


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



def test_real_photo_car2_plate_is_found(car2):
    dets = ContourPlateDetector().detect(car2, None, CAR2_BOX)
    assert dets
    assert quad_iou(dets[0].quad.numpy(), CAR2_PLATE) > 0.6
    assert corner_error(dets[0].quad.numpy(), CAR2_PLATE) < 8.0



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
