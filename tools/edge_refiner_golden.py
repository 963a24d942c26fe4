"""Write the golden output of the shipped edge refiner for `tests/test_edge_refiner.py`.

    python tools/edge_refiner_golden.py    # --weights weights/edge_refiner.safetensors --out tests/data/edge_refiner_golden.npz

The input is a seeded synthetic car scene (`bgr_core.testing.synthetic_car_scene`, seed
3, 120x160) and, as the coarse alpha, its true matte blurred and shifted by a pixel (both
stored in the file, so the test does not depend on the generator); the output is
`refine_edges` of it with the shipped net in float64, stored with the weights' sha256.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bgr_core.functional.edge_refine import refine_edges  # noqa: E402
from bgr_core.loaders import load_edge_refiner  # noqa: E402
from bgr_core.testing import synthetic_car_scene  # noqa: E402


def golden_input() -> tuple[np.ndarray, np.ndarray]:
    """(120, 160, 3) uint8 scene and (120, 160) float32 coarse alpha."""
    import cv2

    scene = synthetic_car_scene(120, 160, seed=3)
    coarse = cv2.GaussianBlur(np.roll(scene.mask.astype(np.float32), 1, axis=1), (5, 5), 1.2)
    return scene.image, np.clip(coarse, 0, 1).astype(np.float32)


def run(net: torch.nn.Module, image: np.ndarray, coarse: np.ndarray, dtype=torch.float64) -> np.ndarray:
    """`refine_edges` of the stored input with a copy of `net` in `dtype` (the loader's
    cached net is shared, so it is never converted in place)."""
    x = torch.from_numpy(image).permute(2, 0, 1).to(dtype).div(255)
    a = torch.from_numpy(coarse)[None].to(dtype)
    with torch.no_grad():
        return refine_edges(x, a, copy.deepcopy(net).to(dtype))[0].float().numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "edge_refiner.safetensors")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "edge_refiner_golden.npz")
    args = ap.parse_args(argv)
    net = load_edge_refiner(path=args.weights)
    image, coarse = golden_input()
    out = run(net, image, coarse)
    sha = hashlib.sha256(args.weights.read_bytes()).hexdigest()
    np.savez_compressed(args.out, image=image, coarse=coarse, out=out, weights_sha256=sha)
    print(f"wrote {args.out}: changed {(np.abs(out - coarse) > 0.05).mean():.4f} of pixels, weights {sha[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
