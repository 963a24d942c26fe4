"""remove_background: every error code, every input kind, every background, batching."""

import base64
import io
import re

import cv2

import numpy as np
import pytest
import torch
from PIL import Image

from bgr_core import Pipeline, loaders, remove_background
from bgr_core.testing import synthetic_car_scene

OFF = {"effect": "none", "window_correction": "none"}  # stages of later versions


def _scene(seed=2, h=240, w=320):
    return synthetic_car_scene(h, w, seed)


def _png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_white_background(cpu_pipeline):
    scene = _scene()
    r = cpu_pipeline.remove_background(image_file=scene.image, **OFF)
    assert r.ok, r.error_description
    out = r.array
    assert out.shape == scene.image.shape
    assert _iou(r.mask >= 0.5, scene.mask) > 0.9
    far = ~np.asarray(
        Image.fromarray(scene.mask.astype(np.uint8) * 255).filter(__import__("PIL.ImageFilter").ImageFilter.MaxFilter(15))
    ).astype(bool)
    assert out[far].mean() > 250  # background is white away from the car
    inside = scene.mask & ~scene.glass
    assert np.abs(out[inside].astype(int) - scene.image[inside]).mean() < 8  # car kept
    r.frame.check()
    assert set(r.timings) >= {"decode", "segment", "background"}


def test_transparent_background_is_rgba_with_the_soft_matte(cpu_pipeline):
    scene = _scene(3)
    r = cpu_pipeline.remove_background(image_file=scene.image, background="transparent_background", **OFF)
    assert r.ok and r.extension == "png"
    out = r.array
    assert out.shape[2] == 4
    np.testing.assert_allclose(out[..., 3] / 255.0, r.mask, atol=1 / 255 + 1e-6)
    soft = (r.mask > 0.05) & (r.mask < 0.95)
    assert soft.any(), "edges must stay soft"
    png = Image.open(io.BytesIO(r.encode()))
    assert png.mode == "RGBA"


def test_custom_background_covers_without_distortion(cpu_pipeline, tmp_path):
    scene = _scene(4)
    bg = np.zeros((100, 400, 3), np.uint8)
    bg[:, :200] = (255, 0, 0)
    bg[:, 200:] = (0, 0, 255)
    path = tmp_path / "bg.png"
    Image.fromarray(bg).save(path)
    for params in ({"background_file": str(path)}, {"custom_background": path}, {"background_url": path.as_uri()}):
        r = cpu_pipeline.remove_background(image_file=scene.image, background="custom_background", **params, **OFF)
        assert r.ok, r.error_description
        out = r.array
        # covered: scaled by 2.4 to 240 rows, centre-cropped to 320 columns: left red, right blue
        assert tuple(out[5, 5]) == (255, 0, 0) and tuple(out[5, -5]) == (0, 0, 255)


def test_every_input_kind(cpu_pipeline, tmp_path):
    scene = _scene(5)
    data = _png_bytes(scene.image)
    path = tmp_path / "car.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    kinds = [
        {"image_file": str(path)},
        {"image_file": data},
        {"image_file": io.BytesIO(data)},
        {"image_file": Image.fromarray(scene.image)},
        {"image_url": path.as_uri()},
        {"image_url": str(path)},
        {"image_base64": b64},
        {"image_base64": "data:image/png;base64," + b64},
    ]
    masks = []
    for kind in kinds:
        r = cpu_pipeline.remove_background(**kind, **OFF)
        assert r.ok, (kind.keys(), r.error_description)
        masks.append(r.mask)
    for mask in masks[1:]:
        np.testing.assert_allclose(mask, masks[0], atol=1e-5)


def test_error_codes(tmp_path):
    pipe = Pipeline("cpu", api_keys=["secret"])
    scene = _scene()
    assert pipe.remove_background(image_file=scene.image, key="wrong", **OFF).error == "unauthorized_request"
    assert pipe.remove_background(image_file=scene.image, **OFF).error == "unauthorized_request"
    assert pipe.remove_background(image_file=scene.image, key="secret", **OFF).ok

    r = remove_background(device="cpu", image_base64="%%%", **OFF)
    assert (r.error, r.ok, r.image) == ("invalid_input", False, None)
    assert "base64" in r.error_description

    flat = np.full((200, 300, 3), 128, np.uint8)
    r = remove_background(device="cpu", image_file=flat, **OFF)
    assert r.error == "no_data", r.error_description

    r = remove_background(device="cpu", image_file=scene.image, refine="sam", **OFF)  # no SAM checkpoint here
    assert r.error == "request_failed" and "sam_vit_b_01ec64.pth" in r.error_description
    assert "BGR_WEIGHTS_DIR" in r.error_description

    missing = Pipeline("cpu", weights={loaders.DEFAULT_MATTE_MODEL: tmp_path / "nope.safetensors"})
    r = missing.remove_background(image_file=scene.image, **OFF)
    assert r.error == "request_failed" and "nope.safetensors" in r.error_description

    r = remove_background(device="cpu", image_url="http://169.254.169.254/latest/meta-data", **OFF)
    assert r.error == "invalid_input" and "link-local" in r.error_description  # fetched by default, guarded


def test_api_never_raises_on_garbage():
    for params in ({}, {"image_file": object()}, {"image_file": b"\x89PNG\r\n\x1a\n garbage"}, {"layout": 5, "image_file": "x"}):
        r = remove_background(device="cpu", **params)
        assert r.error == "invalid_input", params
        assert r.to_dict()["error"] == "invalid_input"


def test_output_dir_gives_a_file_url(tmp_path):
    pipe = Pipeline("cpu", output_dir=tmp_path)
    scene = _scene()
    src = tmp_path / "in" / "my car.png"
    src.parent.mkdir()
    src.write_bytes(_png_bytes(scene.image))
    r = pipe.remove_background(image_file=src, **OFF)
    assert r.ok and r.output_url.startswith("file://")
    name = r.output_url.rsplit("/", 1)[1]
    assert re.fullmatch(r"my_car-[0-9a-f]{24}\.jpg", name) and (tmp_path / name).is_file()
    assert r.to_dict() == {"output_url": r.output_url, "error": "", "error_description": ""}


def test_output_names_never_collide_and_cannot_be_guessed(tmp_path):
    pipe = Pipeline("cpu", output_dir=tmp_path / "out")
    scene = _scene()
    urls = []
    for sub in ("a", "b"):  # a/car.png and b/car.png: two callers, the same file name
        src = tmp_path / sub / "car.png"
        src.parent.mkdir()
        src.write_bytes(_png_bytes(scene.image))
        urls.append(pipe.remove_background(image_file=src, **OFF).output_url)
    urls.append(pipe.remove_background(image_file=scene.image, **OFF).output_url)  # no name at all
    assert len(set(urls)) == 3 and len(list((tmp_path / "out").iterdir())) == 3
    assert all(re.search(r"-[0-9a-f]{24}\.jpg$", u) for u in urls)


def test_batched_equals_one_by_one():
    scenes = [_scene(s, 200 + 20 * s, 300) for s in (1, 2, 3)]
    batched = list(Pipeline("cpu", batch_size=3).remove_backgrounds([s.image for s in scenes], **OFF))
    single = [Pipeline("cpu", batch_size=1).remove_background(image_file=s.image, **OFF) for s in scenes]
    for b, s in zip(batched, single):
        assert b.ok and s.ok
        np.testing.assert_allclose(b.mask, s.mask, atol=1e-4)
        assert np.abs(b.array.astype(int) - s.array.astype(int)).max() <= 1


def test_batch_keeps_going_past_a_bad_image():
    scene = _scene()
    results = list(Pipeline("cpu", batch_size=4).remove_backgrounds([scene.image, b"junk", scene.image], **OFF))
    assert [r.error for r in results] == ["", "invalid_input", ""]


def _float32_pipeline(device):
    """The default pipeline with its matte net in float32 at 288 px on `device`. By
    default CUDA runs the net in float16 and a CPU with native bfloat16 in bfloat16 (at
    224 px in float32 without it): only the same precision and size on both compares the
    devices' code paths rather than their precisions (`test_cuda_matches_cpu` compares
    the defaults)."""
    from bgr_core.stages.segment import VehicleMatte

    net = loaders.load_matte_net(loaders.DEFAULT_MATTE_MODEL, device)
    segment = VehicleMatte.fast(net, net_size=288, amp_dtype=None, cpu_amp_dtype=None,
                                edge_refiner=loaders.load_edge_refiner(device))
    return Pipeline(device, components={"segment": segment})


def _same_results(a, b):
    """Float32 on two devices: the mask within rounding but for the few pixels whose
    side of a 0.5 decision (the edge refiner's band) rounding may flip."""
    assert a.ok and b.ok
    diff = np.abs(a.mask - b.mask)
    assert diff.mean() < 1e-4 and np.quantile(diff, 0.999) < 2e-3
    levels = np.abs(a.array.astype(int) - b.array.astype(int))
    assert (levels > 2).mean() < 1e-3


def test_float32_pipeline_for_the_device_comparison():
    scene = _scene()
    pipe = _float32_pipeline("cpu")
    assert not pipe.segment.reduced_precision and pipe.segment.net_size == 288
    assert pipe.segment.edge_refiner is not None
    r = pipe.remove_background(image_file=scene.image, **OFF)
    default = Pipeline("cpu").remove_background(image_file=scene.image, **OFF)
    assert r.ok and default.ok
    assert _iou(r.mask >= 0.5, default.mask >= 0.5) > 0.98


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cpu_equals_cuda(monkeypatch):
    # TensorFloat-32 convolutions and products would be a third precision
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    scene = _scene()
    cpu = _float32_pipeline("cpu").remove_background(image_file=scene.image, **OFF)
    gpu = _float32_pipeline("cuda").remove_background(image_file=scene.image, **OFF)
    _same_results(cpu, gpu)


def test_real_photo_white_background(shared_data, cpu_pipeline):
    r = cpu_pipeline.remove_background(image_file=shared_data / "photos" / "car-2.jpg", **OFF)
    assert r.ok, r.error_description
    h, w = r.frame.size
    x0, y0, x1, y1 = r.box
    assert (x1 - x0) * (y1 - y0) > 0.1 * h * w  # the sports car fills much of the frame
    assert r.array[: h // 20, : w // 20].mean() > 245  # top-left corner (houses) is white now


def test_shadow_and_layouts_through_the_api(cpu_pipeline):
    scene = _scene(3)
    base = {"image_file": scene.image, "window_correction": "none"}
    plain = cpu_pipeline.remove_background(**base, effect="none")
    shaded = cpu_pipeline.remove_background(**base)  # effect=shadow is the default
    assert plain.shadow is None and shaded.shadow is not None
    x0, y0, x1, y1 = (int(v) for v in shaded.box)
    below = shaded.array[y1 : y1 + 3, x0:x1].astype(int)
    assert below.mean() < plain.array[y1 : y1 + 3, x0:x1].astype(int).mean() - 10, "darker under the car"
    clear = cpu_pipeline.remove_background(**base, background="transparent_background")
    assert clear.array[y1 : y1 + 3, x0:x1, 3].mean() > 20, "shadow in the alpha channel"

    centred = cpu_pipeline.remove_background(**base, layout="center", output_size="400x300")
    assert centred.array.shape == (300, 400, 3)
    cx0, cy0, cx1, cy1 = centred.box
    assert abs((cx0 + cx1) / 2 - 200) < 0.15 * 400
    cropped = cpu_pipeline.remove_background(**base, layout="crop", aspect_ratio="16:9")
    h, w = cropped.array.shape[:2]
    assert abs(w / h - 16 / 9) < 0.02 and w < 320
    assert cropped.mask.shape == (h, w) and cropped.shadow.shape == (h, w)

    bad = cpu_pipeline.remove_background(**base, shadow_strength=3)
    assert bad.error == "invalid_input" and "`shadow_strength`" in bad.error_description
    bad = cpu_pipeline.remove_background(**base, output_size="huge")
    assert bad.error == "invalid_input" and "`output_size`" in bad.error_description


@pytest.mark.parametrize("background", ["white_background", "transparent_background"])
def test_window_correction_through_the_api(cpu_pipeline, background):
    scene = _scene(2)
    base = {"image_file": scene.image, "effect": "none", "background": background}
    off = cpu_pipeline.remove_background(**base, window_correction="none")
    tint = cpu_pipeline.remove_background(**base)  # window_correction="tint" is the default
    see = cpu_pipeline.remove_background(**base, window_correction="see_through")
    assert off.ok and tint.ok and see.ok, (tint.error_description, see.error_description)
    assert off.glass_mask is None and tint.glass_mask is not None
    glass = tint.glass_mask > 0
    truth = scene.glass
    assert (glass & truth).sum() > 0.75 * truth.sum()
    # away from the glass nothing changes (the edge decontamination near it may blend);
    # inside, the trees of the scene are gone
    near = cv2.dilate(glass.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    if off.array.shape[-1] == 4:  # colour under (near-)zero alpha is moot: compare premultiplied
        assert np.array_equal(tint.array[~near][:, 3], off.array[~near][:, 3])
        pre = lambda a: a[..., :3].astype(float) * a[..., 3:] / 255  # noqa: E731
        assert np.abs(pre(tint.array)[~near] - pre(off.array)[~near]).max() <= 1.0
    else:
        assert np.array_equal(tint.array[~near], off.array[~near])
    inside = tint.glass_mask >= 0.99
    assert np.abs(tint.array[inside][:, :3].astype(int) - off.array[inside][:, :3]).mean() > 10
    if background == "transparent_background":
        assert see.array[inside][:, 3].mean() < 0.7 * 255, "see-through glass is semi-transparent"
        assert tint.array[inside][:, 3].min() >= 250, "tinted glass is opaque"



class _OomAboveOne:
    """A stage that runs out of CUDA memory on any batch of more than one frame."""

    name = "oom"

    def __init__(self):
        self.sizes = []

    def __call__(self, frames):
        self.sizes.append(len(frames))
        if len(frames) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return [f.replace() for f in frames]


def test_out_of_memory_halves_the_batch_and_goes_on():
    scenes = [_scene(s, 200 + 20 * s, 300) for s in (1, 2, 3, 4, 5)]
    pipe = Pipeline("cpu", batch_size=4, streams=1)  # one stream: the sizes come in order
    oom = _OomAboveOne()
    plain = pipe.stages_for
    pipe.stages_for = lambda *a, **k: [oom, *plain(*a, **k)]
    results = list(pipe.remove_backgrounds([s.image for s in scenes], **OFF))
    assert [r.error for r in results] == [""] * 5
    assert pipe.effective_batch_size == 1 and pipe.batch_size == 4
    assert oom.sizes[:3] == [4, 2, 1] and max(oom.sizes[3:]) == 1
    single = [Pipeline("cpu", batch_size=1).remove_background(image_file=s.image, **OFF) for s in scenes]
    for b, s in zip(results, single):
        np.testing.assert_allclose(b.mask, s.mask, atol=1e-4)
        assert "oom" in b.timings and "segment" in b.timings


def test_out_of_memory_on_one_image_is_request_failed():
    pipe = Pipeline("cpu", batch_size=1)
    pipe.stages_for = lambda *a, **k: [_Raise()]
    result = pipe.remove_background(image_file=_scene().image, **OFF)
    assert result.error == "request_failed" and "out of memory" in result.error_description


class _Raise:
    name = "raise"

    def __call__(self, frames):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")


def test_threaded_batches_equal_sequential(tmp_path):
    scenes = [_scene(s, 200, 260 + 10 * s) for s in range(1, 6)]
    images = [s.image for s in scenes[:2]] + [b"junk"] + [s.image for s in scenes[2:]]
    threaded = list(Pipeline("cpu", batch_size=2, workers=2, output_dir=tmp_path / "a").remove_backgrounds(images, **OFF))
    plain = list(Pipeline("cpu", batch_size=2, workers=0, output_dir=tmp_path / "b").remove_backgrounds(images, **OFF))
    assert [r.error for r in threaded] == [r.error for r in plain] == ["", "", "invalid_input", "", "", ""]
    for t, p in zip(threaded, plain):
        if t.ok:
            assert np.array_equal(t.mask, p.mask)
            assert t.output_url and "encode" in t.timings and "decode" in t.timings


def test_parallel_streams_equal_one_stream(tmp_path):
    scenes = [_scene(s, 200, 240 + 10 * s) for s in range(1, 7)]
    images = [s.image for s in scenes[:3]] + [b"junk"] + [s.image for s in scenes[3:]]
    one = list(Pipeline("cpu", batch_size=2, streams=1).remove_backgrounds(images, **OFF))
    for streams, workers in ((2, 2), (3, 0)):
        pipe = Pipeline("cpu", batch_size=2, streams=streams, workers=workers, output_dir=tmp_path / f"s{streams}")
        many = list(pipe.remove_backgrounds(images, **OFF))
        assert [r.error for r in many] == [r.error for r in one] == ["", "", "", "invalid_input", "", "", ""]
        for a, b in zip(many, one):
            if a.ok:
                assert np.array_equal(a.mask, b.mask) and np.array_equal(a.array, b.array)
    # early exit from the generator leaves no thread hanging
    gen = Pipeline("cpu", batch_size=1, streams=2).remove_backgrounds(images, **OFF)
    assert next(gen).ok
    gen.close()
    with pytest.raises(ValueError, match="`streams` must be >= 1 but is 0"):
        Pipeline("cpu", streams=0)


def test_net_size_option_reaches_the_matte():
    scene = _scene(2)
    pipe = Pipeline("cpu", fast=True, net_size=224)
    assert pipe.segment.net_size == 224 and not pipe.segment.flip
    assert Pipeline("cpu", cpu_dtype="float32").segment.net_size == 224
    assert Pipeline("cpu", cpu_dtype="bfloat16").segment.net_size == 288  # reduced precision: a larger input
    assert Pipeline("cpu", fast=False).segment.net_size == 320
    r = pipe.remove_background(image_file=scene.image, **OFF)
    best = Pipeline("cpu", fast=False).remove_background(image_file=scene.image, **OFF)
    assert r.ok and _iou(r.mask >= 0.5, best.mask >= 0.5) > 0.9
    with pytest.raises(ValueError, match="`net_size` must be between 64 and 1024 but is 8"):
        Pipeline("cpu", net_size=8)


def test_cpu_dtype_option_reaches_the_matte_and_bfloat16_stays_close():
    scene = _scene(4)
    assert Pipeline("cpu", cpu_dtype="float32").segment.cpu_amp_dtype is None
    assert Pipeline("cpu", cpu_dtype="bfloat16").segment.cpu_amp_dtype is torch.bfloat16
    auto = Pipeline("cpu").segment
    assert auto.cpu_amp_dtype is (torch.bfloat16 if loaders.cpu_native_bfloat16() else None)
    exact = Pipeline("cpu", cpu_dtype="float32", net_size=288).remove_background(image_file=scene.image, **OFF)
    half = Pipeline("cpu", cpu_dtype="bfloat16", net_size=288).remove_background(image_file=scene.image, **OFF)
    assert exact.ok and half.ok and _iou(exact.mask >= 0.5, half.mask >= 0.5) > 0.98
    with pytest.raises(ValueError, match="`cpu_dtype` must be one of 'auto', 'float32', 'bfloat16' but is 'half'"):
        Pipeline("cpu", cpu_dtype="half")


def test_fast_default_is_close_to_the_thorough_preset():
    scene = _scene(3)
    fast = Pipeline("cpu").remove_background(image_file=scene.image, **OFF)
    best = Pipeline("cpu", fast=False).remove_background(image_file=scene.image, **OFF)
    assert fast.ok and best.ok
    assert _iou(fast.mask >= 0.5, best.mask >= 0.5) > 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    scenes = [_scene(s) for s in (1, 2, 3)]
    cpu = list(Pipeline("cpu", batch_size=3).remove_backgrounds([s.image for s in scenes], **OFF))
    gpu = list(Pipeline("cuda", batch_size=3).remove_backgrounds([s.image for s in scenes], **OFF))
    for c, g in zip(cpu, gpu):
        assert c.ok and g.ok
        assert _iou(c.mask >= 0.5, g.mask >= 0.5) > 0.98  # fp16 autocast on CUDA
        assert np.abs(c.mask - g.mask).mean() < 0.01


def test_the_fast_preset_tests_the_vehicle_nets_confidence():
    assert Pipeline("cpu").segment.min_confidence == 0.75
    assert Pipeline("cpu", matte_model="u2netp_vehicle").segment.min_confidence == 0.8
    assert Pipeline("cpu", matte_model="u2netp").segment.min_confidence == 0.0
    assert Pipeline("cpu", fast=False).segment.min_confidence == 0.0  # flip-averaged: no test


def test_matte_model_by_name():
    vehicle = Pipeline("cpu").segment.net
    generic = Pipeline("cpu", matte_model="u2netp").segment.net
    teacher = Pipeline("cpu", matte_model="u2netp_vehicle").segment.net
    assert vehicle is loaders.load_matte_net("u2netp_vehicle_half", "cpu")
    assert teacher is loaders.load_matte_net("u2netp_vehicle", "cpu") and teacher is not vehicle
    assert generic is loaders.load_matte_net("u2netp", "cpu") and generic is not vehicle
    with pytest.raises(ValueError, match="`matte_model`"):
        Pipeline("cpu", matte_model="u2net")


def test_remove_backgrounds_takes_a_folder_or_a_single_image(tmp_path):
    scene = _scene()
    for name in ("b.png", "a.png"):
        (tmp_path / name).write_bytes(_png_bytes(scene.image))
    (tmp_path / "notes.txt").write_text("not an image")
    pipe = Pipeline("cpu", batch_size=2)
    for folder in (str(tmp_path), tmp_path):
        results = list(pipe.remove_backgrounds(folder, **OFF))
        assert len(results) == 2 and all(r.ok for r in results)  # not one per character of the path
    assert len(list(pipe.remove_backgrounds(str(tmp_path / "a.png"), **OFF))) == 1
    assert len(list(pipe.remove_backgrounds(_png_bytes(scene.image), **OFF))) == 1
    assert len(list(pipe.remove_backgrounds(scene.image, **OFF))) == 1
