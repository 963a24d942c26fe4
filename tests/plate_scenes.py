"""Synthetic plate scenes with known corners, and the real photo car-2.jpg, shared by the
plate tests (test_plate_overlay.py, test_plate_detectors.py, test_plates.py)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bgr_core.frame import Frame

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




def load_car2() -> torch.Tensor:
    """car-2.jpg as a (3, H, W) tensor (skips the test without ../shared/data)."""
    path = SHARED_DATA / "photos" / "car-2.jpg"
    if not path.is_file():
        pytest.skip("../shared/data is not present")
    from PIL import Image

    with Image.open(path) as im:
        return to_tensor(np.asarray(im.convert("RGB")).copy())


# the plate "JÆGER-AMLAND" on the white sports car, corners read off the photo by hand
CAR2_PLATE = np.array([[711, 452], [809, 449], [808, 481], [707, 486]], np.float64)
CAR2_BOX = torch.tensor([117.0, 234.0, 887.0, 558.0])  # the car, about as the matte stage boxes it


