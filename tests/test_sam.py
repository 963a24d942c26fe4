"""Segment Anything refinement with a tiny random SAM saved and loaded through the real paths."""

import numpy as np
import pytest
import torch

pytest.importorskip("segment_anything")

from bgr_core import loaders, weights  # noqa: E402
from bgr_core.errors import NoData, WeightsNotFound  # noqa: E402
from bgr_core.frame import Frame  # noqa: E402
from bgr_core.functional.prompts import exterior_points, interior_points, mask_iou  # noqa: E402
from bgr_core.stages.refine_sam import SamRefine  # noqa: E402
from bgr_core.testing import synthetic_car_scene, tiny_sam  # noqa: E402

CHECKPOINT = weights.KNOWN_WEIGHTS["sam"].filename


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sam-weights")
    torch.save(tiny_sam(0).state_dict(), folder / CHECKPOINT)
    return folder


@pytest.fixture(scope="module")
def sam(sam_dir):
    return loaders.load_sam("cpu", sam_dir / CHECKPOINT)


def scene_frame(height=97, width=131, seed=1):
    scene = synthetic_car_scene(height, width, seed=seed)
    image = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    alpha = torch.from_numpy(scene.mask).float()[None]
    return Frame(image=image, alpha=alpha, box=torch.tensor(scene.box, dtype=torch.float32))


def test_checkpoint_loads_back_from_explicit_path_and_env(sam_dir, sam, monkeypatch):
    reference = tiny_sam(0).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in sam.state_dict().items())
    assert not sam.training and not any(p.requires_grad for p in sam.parameters())
    monkeypatch.setenv(weights.ENV_VAR, str(sam_dir))
    assert loaders.load_sam("cpu") is sam  # same file, same device: cached


def test_other_official_checkpoint_names_are_found(tmp_path, monkeypatch):
    torch.save(tiny_sam(1).state_dict(), tmp_path / "sam_vit_h_4b8939.pth")
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path))
    model = loaders.load_sam("cpu", model_type="vit_tiny")
    assert torch.equal(model.mask_decoder.mask_tokens.weight, tiny_sam(1).mask_decoder.mask_tokens.weight)


def test_model_type_is_told_from_the_state_dict():
    def fake(dim, depth):
        state = {"image_encoder.patch_embed.proj.weight": torch.empty(dim, 3, 16, 16)}
        state.update({f"image_encoder.blocks.{i}.norm1.weight": torch.empty(dim) for i in range(depth)})
        return state

    assert loaders.sam_model_type(fake(768, 12)) == "vit_b"
    assert loaders.sam_model_type(fake(1280, 32)) == "vit_h"
    assert loaders.sam_model_type(tiny_sam(0).state_dict()) == "vit_tiny"
    with pytest.raises(ValueError, match="embed dim 512, 6 blocks"):
        loaders.sam_model_type(fake(512, 6))


def test_missing_checkpoint_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path))
    with pytest.raises(WeightsNotFound) as info:
        loaders.load_sam("cpu")
    message = str(info.value)
    assert info.value.code == "request_failed"
    assert CHECKPOINT in message and str(tmp_path) in message
    with pytest.raises(WeightsNotFound, match="given explicitly"):
        loaders.load_sam("cpu", tmp_path / "nope.pth")


def test_api_refine_sam_without_checkpoint_is_request_failed(tmp_path, monkeypatch):
    from bgr_core import remove_background

    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path))
    result = remove_background(image_file=synthetic_car_scene(120, 160).image, refine="sam")
    if "not available yet" in (result.error_description or ""):
        pytest.xfail("Pipeline.stages_for does not wire refine='sam' yet")
    assert result.error == "request_failed"
    assert CHECKPOINT in result.error_description and str(tmp_path) in result.error_description


@pytest.mark.parametrize("work_size", [1024, 48])
def test_refined_matte_shapes_range_and_box(sam, work_size):
    frame = scene_frame()
    failed = Frame(image=frame.image, error=NoData("no vehicle"))
    out, passed = SamRefine(sam, min_iou=0.0, work_size=work_size)([frame, failed])
    assert passed is failed
    out.check()  # alpha (1, H, W) in [0, 1], box inside the image
    assert out.alpha.shape == (1, 97, 131) and out.alpha.dtype == frame.image.dtype
    assert not out.warnings and 0.0 <= out.meta["sam_iou"] <= 1.0
    assert not torch.equal(out.alpha, frame.alpha)  # SAM's mask was used
    # the box follows the new matte
    ys, xs = torch.nonzero(out.alpha[0] >= 0.5, as_tuple=True)
    assert out.box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert frame.alpha is not None and frame.meta == {}  # input untouched


def test_disagreeing_mask_keeps_the_matte_with_a_warning(sam):
    frame = scene_frame()
    out = SamRefine(sam, min_iou=1.0)([frame])[0]
    assert out.meta["sam_iou"] < 1.0
    assert torch.equal(out.alpha, frame.alpha) and torch.equal(out.box, frame.box)
    assert len(out.warnings) == 1 and "kept the U2NetP matte" in out.warnings[0]


def test_deterministic_and_predictor_accepted(sam):
    from segment_anything import SamPredictor

    frame = scene_frame(seed=3)
    a = SamRefine(sam, min_iou=0.0)([frame])[0]
    b = SamRefine(SamPredictor(sam), min_iou=0.0)([frame])[0]
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.box, b.box)


def test_needs_a_matte_and_checks_its_options(sam):
    frame = scene_frame()
    with pytest.raises(ValueError, match="run the segment stage first"):
        SamRefine(sam)([Frame(image=frame.image)])
    with pytest.raises(ValueError, match=r"`min_iou` must be in \[0, 1\] but is 1.5"):
        SamRefine(sam, min_iou=1.5)
    with pytest.raises(ValueError, match="`n_positive` must be >= 1 but is 0"):
        SamRefine(sam, n_positive=0)


def test_prompt_points_and_iou():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:50] = True
    inside = interior_points(mask, 3)
    assert len(inside) >= 1 and all(mask[int(y), int(x)] for x, y in inside)
    assert abs(inside[0][1] - 19.5) <= 1  # deepest point: the middle row
    outside = exterior_points(mask, (0, 0, 60, 40), 2, min_dist=2)
    assert len(outside) >= 1 and not any(mask[int(y), int(x)] for x, y in outside)
    a = torch.from_numpy(mask)
    assert float(mask_iou(a, a)) == 1.0 and float(mask_iou(a, ~a)) == 0.0
