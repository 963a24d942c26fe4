"""Photos without a vehicle should give `no_data`; photos with one should not.

    python benchmarks/no_vehicle.py [--models u2netp_vehicle_half,u2netp_vehicle,u2netp] [--data ../shared/data]

Without a vehicle: scikit-image's shipped photos that the vehicle net never trained on
(`tools/vehicle_data.HELD_OUT_EMPTY`: an astronaut, coffee cups, a rocket, coins, a
clock, a page of text) and 12 generated scenes of a shaded ball on a floor (nothing like
them is in the training data). With a vehicle: the unlabelled photos of
``../shared/data/photos``. For each matte net it prints how many of each give
`no_data`, through `Pipeline(matte_model=...).remove_background` with its defaults.
scikit-image comes with the ``train`` extra (``pip install ".[train]"``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]


def ball_scene(seed: int, h: int = 360, w: int = 480) -> np.ndarray:
    """(h, w, 3) uint8: a shaded coloured ball with a soft shadow on a floor and wall."""
    import cv2

    rng = np.random.default_rng(10_000 + seed)
    wall, floor = rng.uniform(60, 230, 3), rng.uniform(40, 200, 3)
    horizon = int(h * rng.uniform(0.4, 0.7))
    img = np.empty((h, w, 3), np.float32)
    img[:horizon], img[horizon:] = wall, floor
    r = int(min(h, w) * rng.uniform(0.12, 0.3))
    cx, cy = int(w * rng.uniform(0.3, 0.7)), min(h - r - 2, horizon + int(r * rng.uniform(0.2, 1.5)))
    shadow = np.zeros((h, w), np.float32)
    cv2.ellipse(shadow, (cx, cy + r), (r, max(2, r // 5)), 0, 0, 360, 1.0, -1)
    img *= 1 - 0.5 * cv2.GaussianBlur(shadow, (0, 0), r / 6)[..., None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / r**2
    inside = d2 <= 1
    light = np.clip(1.1 - np.sqrt(((xx - cx + 0.4 * r) ** 2 + (yy - cy + 0.4 * r) ** 2)) / (1.6 * r), 0.2, 1.0)
    colour = rng.uniform(0, 255, 3)
    img[inside] = (colour * light[..., None])[inside]
    return np.clip(img, 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    import vehicle_data as V
    from bgr_core import Pipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="u2netp_vehicle_half,u2netp_vehicle,u2netp")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    empty = V.empty_scenes(V.HELD_OUT_EMPTY)
    if not empty:
        print("scikit-image is not installed (pip install '.[train]'): only the generated scenes", file=sys.stderr)
    sets = {
        "held-out photos, no vehicle": empty,
        "generated ball scenes": [ball_scene(i) for i in range(12)],
        "vehicle photos": [str(p) for p in sorted((args.data / "photos").rglob("*.jpg"))],
    }
    for model in args.models.split(","):
        pipe = Pipeline("cpu", matte_model=model)
        cells = []
        for name, images in sets.items():
            if images:
                n = sum(pipe.remove_background(image_file=im, window_correction="none").error == "no_data" for im in images)
                cells.append(f"{name}: {n}/{len(images)} no_data")
        print(f"{model:15s} " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
