"""Write the golden output of a shipped vehicle net for its test (`tests/test_u2net_vehicle.py`,
`tests/test_u2net_vehicle_half.py`).

    python tools/vehicle_golden.py    # --weights weights/u2netp_vehicle.safetensors --out tests/data/u2netp_vehicle_golden.npz
    python tools/vehicle_golden.py --model u2netp_vehicle_half   # weights/ and tests/data/ named after the model

The input is a seeded synthetic car scene (`bgr_core.testing.synthetic_car_scene`,
seed 3, resized to 160x160 uint8, stored in the file so the test does not depend on the
generator); the output is the net's (1, 160, 160) float32 vehicle probability computed
in float64 and stored with the weights' sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bgr_core.functional.matte import normalize  # noqa: E402
from bgr_core.models import MODEL_BUILDERS  # noqa: E402
from bgr_core.testing import synthetic_car_scene  # noqa: E402

SIZE = 160


def golden_input() -> np.ndarray:
    """(SIZE, SIZE, 3) uint8: the fixed scene."""
    import cv2

    return cv2.resize(synthetic_car_scene(240, 320, seed=3).image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def run(net: torch.nn.Module, image: np.ndarray, dtype=torch.float64) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(dtype).div(255)
    with torch.no_grad():
        return net.to(dtype)(normalize(x))[0].float().numpy()


def main(argv=None) -> int:
    from safetensors.torch import load_file

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="u2netp_vehicle", choices=("u2netp_vehicle", "u2netp_vehicle_half"))
    ap.add_argument("--weights", type=Path, default=None, help="default: weights/<model>.safetensors")
    ap.add_argument("--out", type=Path, default=None, help="default: tests/data/<model>_golden.npz")
    args = ap.parse_args(argv)
    args.weights = args.weights or ROOT / "weights" / f"{args.model}.safetensors"
    args.out = args.out or ROOT / "tests" / "data" / f"{args.model}_golden.npz"
    net = MODEL_BUILDERS[args.model]()
    net.load_state_dict(load_file(str(args.weights), device="cpu"), strict=True)
    image = golden_input()
    out = run(net.eval(), image)
    sha = hashlib.sha256(args.weights.read_bytes()).hexdigest()
    np.savez_compressed(args.out, image=image, out=out, weights_sha256=sha)
    print(f"wrote {args.out}: vehicle mean {out[0].mean():.4f}, weights {sha[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
