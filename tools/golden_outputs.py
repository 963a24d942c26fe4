"""Golden outputs of the whole pipeline on the shared photos, for refactors that must not
change a pixel.

    python tools/golden_outputs.py --write            # tests/data/golden_outputs.npz
    python tools/golden_outputs.py --check            # exact: every output's sha256

Cases: the shared example photos (``photos/car-1..3.jpg``, ``truck.jpg``) and four
carparts photos, each under five parameter sets that together run every stage
(defaults; center + aspect + blank plate; transparent crop + see-through; a custom
background without shadow; center to an output size without windows or shadow), on the
CPU in float32 (bfloat16 autocast depends on the CPU). Stored per case: the output's
shape, its sha256 (exact, for this machine: `--check`) and its 24 x 24 block means
(`tests/test_golden_outputs.py` compares those within a level or two, on any machine).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
GOLDEN = ROOT / "tests" / "data" / "golden_outputs.npz"
PHOTOS = ["photos/car-1.jpg", "photos/car-2.jpg", "photos/car-3.jpg", "photos/truck.jpg",
          "carparts/JPEGImages/train1.jpg", "carparts/JPEGImages/train10.jpg",
          "carparts/JPEGImages/train100.jpg", "carparts/JPEGImages/train101.jpg"]
GRID = 24


def background() -> np.ndarray:
    """A deterministic custom background (a gradient with a few bands), (96, 128, 3) uint8."""
    yy, xx = np.mgrid[0:96, 0:128]
    return np.stack([xx * 2, yy * 2 + 40, 120 + 40 * ((xx // 16) % 2)], -1).astype(np.uint8)


PARAMS = {
    "default": {},
    "center_plate": {"layout": "center", "aspect_ratio": "4:3", "plate_replacement": "blank"},
    "crop_transparent": {"layout": "crop", "background": "transparent_background", "window_correction": "see_through"},
    "custom": {"background": "custom_background", "background_file": background(), "effect": "none"},
    "sized": {"layout": "center", "output_size": "640x480", "window_correction": "none", "effect": "none"},
}


def block_means(array: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(grid, grid, C) uint8: the means of a grid x grid split of (H, W, C)."""
    h, w, c = array.shape
    ys = np.linspace(0, h, grid + 1).astype(int)
    xs = np.linspace(0, w, grid + 1).astype(int)
    out = np.empty((grid, grid, c), np.float64)
    for i in range(grid):
        for j in range(grid):
            out[i, j] = array[ys[i] : max(ys[i + 1], ys[i] + 1), xs[j] : max(xs[j + 1], xs[j] + 1)].reshape(-1, c).mean(0)
    return np.round(out).astype(np.uint8)


def cases(shared: Path = SHARED):
    """(name, photo path, params) for every case whose photo is present."""
    for rel in PHOTOS:
        path = shared / rel
        if path.is_file():
            for key, params in PARAMS.items():
                yield f"{Path(rel).stem}:{key}", path, params


def run(shared: Path = SHARED) -> dict[str, np.ndarray]:
    """Every case's output (H, W, C) uint8, or its error code as a 0-d string array."""
    sys.path.insert(0, str(ROOT))
    from bgr_core import Pipeline

    pipe = Pipeline("cpu", cpu_dtype="float32")
    out = {}
    for name, path, params in cases(shared):
        r = pipe.remove_background(image_file=str(path), refine="none", **params)
        out[name] = r.array if r.ok else np.array(r.error)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    outputs = run()
    if not outputs:
        print(f"no shared photos under {SHARED}", file=sys.stderr)
        return 1
    if args.write:
        data = {}
        for name, array in outputs.items():
            data[f"{name}|sha256"] = np.array(hashlib.sha256(array.tobytes()).hexdigest() + str(array.shape))
            if array.ndim == 3:
                data[f"{name}|blocks"] = block_means(array)
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(GOLDEN, **data)
        print(f"wrote {len(outputs)} cases to {GOLDEN}")
    if args.check:
        golden = np.load(GOLDEN)
        bad = [name for name, array in outputs.items()
               if str(golden[f"{name}|sha256"]) != hashlib.sha256(array.tobytes()).hexdigest() + str(array.shape)]
        print(f"{len(outputs) - len(bad)} of {len(outputs)} cases bit-identical" + (f"; differ: {bad}" if bad else ""))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
