"""Plate replacement through the API: image and blank modes, aliases, errors, the no-plate warning."""

import base64
import io

import cv2
import numpy as np
from PIL import Image

from bgr_core.testing import synthetic_car_scene


def _png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _scene_with_plate(seed=1):
    """The synthetic car with a white plate and dark characters on its lower middle:
    (image, plate corners (4, 2) clockwise from top-left)."""
    scene = synthetic_car_scene(360, 480, seed)
    image = scene.image.copy()
    x0, y0, x1, y1 = scene.box
    cx, py = (x0 + x1) // 2, y0 + int(0.6 * (y1 - y0))
    pw, ph = int(0.24 * (x1 - x0)), int(0.07 * (x1 - x0))
    quad = np.array([[cx - pw // 2, py], [cx + pw // 2, py], [cx + pw // 2, py + ph], [cx - pw // 2, py + ph]])
    cv2.rectangle(image, tuple(int(v) for v in quad[0]), tuple(int(v) for v in quad[2]), (236, 236, 232), -1)
    cv2.rectangle(image, tuple(int(v) for v in quad[0]), tuple(int(v) for v in quad[2]), (30, 30, 30), 1)
    scale = 0.55 * ph / 22  # characters about half the plate's height, centred, margins around
    (tw, th), _ = cv2.getTextSize("AB 123", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(image, "AB 123", (int(cx - tw / 2), int(py + (ph + th) / 2)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (20, 20, 20), 1, cv2.LINE_AA)
    return image, quad.astype(np.float64)


def test_plate_replacement_through_the_api(cpu_pipeline):
    image, quad = _scene_with_plate()
    red = np.zeros((40, 160, 3), np.uint8)
    red[..., 0] = 220
    logo = base64.b64encode(_png_bytes(red)).decode()
    base = {"image_file": image, "effect": "none", "window_correction": "none"}
    off = cpu_pipeline.remove_background(**base)
    r = cpu_pipeline.remove_background(**base, plate_replacement="image", plate_base64=logo)
    assert r.ok, r.error_description
    assert off.plate_quads is None and r.plate_quads.shape == (1, 4, 2)
    assert np.abs(r.plate_quads[0] - quad).max() < 6, r.plate_quads
    x0, y0 = quad[0].astype(int) + 4
    x1, y1 = quad[2].astype(int) - 4
    inside = r.array[y0:y1, x0:x1].reshape(-1, 3).astype(int)
    assert inside[:, 0].mean() > inside[:, 1].mean() + 60, "the red replacement covers the plate"
    # the seed's aliases do the same
    alias = cpu_pipeline.remove_background(**base, replace_license_plate="1", license_plate_input=logo)
    assert alias.ok and np.array_equal(alias.array, r.array)

    blank = cpu_pipeline.remove_background(**base, plate_replacement="blank")
    inner = blank.array[y0 + 2 : y1 - 2, x0 + 4 : x1 - 4].astype(int)
    assert inner.std() < 12 and inner.mean() > 150, "a clean light plate, no characters"
    assert off.array[y0 + 2 : y1 - 2, x0 + 4 : x1 - 4].astype(int).std() > 30  # there were characters

    bad = cpu_pipeline.remove_background(**base, plate_replacement="image", plate_base64="not base64!")
    assert bad.error == "invalid_input" and "plate_base64" in bad.error_description
    missing = cpu_pipeline.remove_background(**base, plate_replacement="image")
    assert missing.error == "invalid_input"


def test_no_plate_found_is_a_warning_not_an_error(cpu_pipeline):
    # a plain car-coloured body without wheels, lamps or plate: nothing plate-like at all
    # (wheels do fool the detector at times: benchmarks/plates.py counts those)
    rng = np.random.default_rng(0)
    image = np.full((240, 320, 3), (150, 170, 200), np.uint8)
    image[150:] = (110, 105, 100)
    image = (image + rng.normal(0, 3, image.shape)).clip(0, 255).astype(np.uint8)
    cv2.rectangle(image, (60, 100), (260, 170), (40, 90, 160), -1)
    cv2.rectangle(image, (100, 70), (220, 105), (40, 90, 160), -1)
    base = {"image_file": image, "effect": "none", "window_correction": "none"}
    off = cpu_pipeline.remove_background(**base)
    r = cpu_pipeline.remove_background(**base, plate_replacement="blank")
    assert off.ok and r.ok and not r.error, r.error_description
    assert "no licence plate found" in r.warnings
    assert r.plate_quads.shape == (0, 4, 2)
    assert np.array_equal(r.array, off.array)
