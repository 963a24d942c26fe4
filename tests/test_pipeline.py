"""`bgr_core.pipeline.Pipeline` on its own: per-request inputs in the Frame, groups."""

import io

import numpy as np
from PIL import Image

from bgr_core.testing import synthetic_car_scene

OFF = {"effect": "none", "window_correction": "none"}


def _png(colour, size=(40, 60)):
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), colour, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_requests_with_different_backgrounds_share_the_stages(fast_pipeline):
    """Each request's custom background travels in its own Frame: requests that differ
    only in it run together, and each gets its own background."""
    scene = synthetic_car_scene(120, 160, 3)
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0)]
    params = [{"image_file": scene.image, "background": "custom_background", "background_file": _png(c), **OFF}
              for c in colours]
    results = fast_pipeline.remove_background_many(params)
    for colour, result in zip(colours, results):
        assert result.ok, result.error_description
        assert tuple(result.array[2, 2]) == colour
    for result, p in zip(results, params):  # batched = one by one, within float rounding (1 level)
        alone = fast_pipeline.remove_background(**p).array
        assert np.abs(result.array.astype(int) - alone.astype(int)).max() <= 1


def test_a_shared_background_is_decoded_once(fast_pipeline, monkeypatch):
    from bgr_core import pipeline as P

    decoded = []
    real = P.load_image

    def counting(source, param, limits):
        decoded.append(param)
        return real(source, param, limits)

    monkeypatch.setattr(P, "load_image", counting)
    scene = synthetic_car_scene(96, 128, 5)
    background = io.BytesIO(_png((10, 200, 30)))  # a file object: read once, by any image
    results = list(fast_pipeline.remove_backgrounds([scene.image] * 5, background="custom_background",
                                                    background_file=background, **OFF))
    assert all(r.ok for r in results) and all(tuple(r.array[1, 1]) == (10, 200, 30) for r in results)
    assert decoded.count("background_file") == 1 and decoded.count("image_file") == 5


def test_a_bad_background_is_that_requests_error(fast_pipeline):
    scene = synthetic_car_scene(96, 128, 6)
    good = {"image_file": scene.image, "background": "custom_background", "background_file": _png((0, 0, 0)), **OFF}
    bad = {**good, "background_file": b"not an image"}
    ok, failed = fast_pipeline.remove_background_many([good, bad])
    assert ok.ok and failed.error == "invalid_input" and "background_file" in failed.error_description


def test_the_frame_keeps_the_photo_as_decoded(fast_pipeline):
    """Windows and plates draw into `image` and the layout moves it; `photo` stays the
    decoded photo, whatever ran."""
    scene = synthetic_car_scene(120, 160, 7)
    result = fast_pipeline.remove_background(image_file=scene.image, layout="center", output_size="300x200",
                                             plate_replacement="blank")
    assert result.ok, result.error_description
    frame = result.frame
    decoded = np.asarray(frame.photo.permute(1, 2, 0).mul(255).round().byte())
    assert np.array_equal(decoded, scene.image)
    assert frame.size == (200, 300) and frame.photo.shape[-2:] == (120, 160)
