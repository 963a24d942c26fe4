"""Where the default matte loses IoU on the held-out studio cars.

    python benchmarks/studio_errors.py [--data ../shared/data] [--limit N] [--weights FILE]
                                       [--refiner FILE | --no-refiner] [--cpu-dtype auto|float32|bfloat16]
                                       [--net-size N] [--width W]

Runs `VehicleMatte.fast` (the default matte: the shipped vehicle net and edge refiner, at
this CPU's default size and precision unless pinned) on every view of the 16 validation
cars of ``masks/carvana`` found in ``carvana/`` (`quality_data.load_carvana_cars`, 768x512,
never trained or chosen on) and splits what the IoU of ``alpha >= 0.5`` loses:

- by **distance from the true outline** (px, Euclidean, on the 768x512 grid): 0-1, 1-2,
  2-4, 4-8 and beyond 8; kept background (false positive) and cut car (false negative)
  apart, each as a share of the view's union, averaged over views (the columns add up to
  1 - mean IoU);
- by **height**: the lowest 12 % of the car's true height (sills, tyres' contact with the
  floor, the dark underbody between the wheels that the Carvana masks count as car) against
  the rest;
- the worst views, with their false positive and false negative shares.

A 1 px disagreement all round a car of this size costs about 0.02 IoU (its outline's
ring is 1.6-2.5 % of its area), so the first band says how much of the gap is the
outline's placement, the later ones how much is a wrong part (floor or the wall's
lettering kept, underbody or antenna cut).

``--width W`` enlarges each photo (bicubic) and its label (linear, then 0.5) to W px wide
first: a large photo as soft as an enlarged one (their detail is the 768 px originals'),
which is where a matte step tied to the photo's pixel size shows (the edge refiner's
patches: README, Quality). Distances then count in the enlarged photo's pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bgr_core import loaders  # noqa: E402
from bgr_core.frame import Frame  # noqa: E402
from bgr_core.stages.segment import VehicleMatte  # noqa: E402
from quality_data import load_carvana_cars  # noqa: E402

BANDS = (0.0, 1.0, 2.0, 4.0, 8.0, np.inf)  # px from the true outline; a band is [lo, hi)
LOW = 0.12  # share of the car's height counted as its bottom


def band_names() -> list[str]:
    return [f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">{lo:g}" for lo, hi in zip(BANDS, BANDS[1:])]


def split_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray | float]:
    """(H, W) bool matte and truth → IoU and its losses: ``fp`` / ``fn`` (5,) shares of
    the union per distance band, ``low_fp`` / ``low_fn`` the shares in the car's bottom."""
    union = int((pred | true).sum())
    if union == 0:
        return {"iou": 1.0, "fp": np.zeros(5), "fn": np.zeros(5), "low_fp": 0.0, "low_fn": 0.0}
    inside = cv2.distanceTransform(true.astype(np.uint8), cv2.DIST_L2, 5)
    outside = cv2.distanceTransform((~true).astype(np.uint8), cv2.DIST_L2, 5)
    dist = np.where(true, inside, outside)
    # a pixel next to the outline lies 1 px from it (the transform's distance to the
    # nearest pixel of the other side); shift so the first band holds the outline's own ring
    dist = dist - 1.0
    fp, fn = pred & ~true, true & ~pred
    band = np.digitize(dist, BANDS[1:-1])
    rows = np.flatnonzero(true.any(axis=1))
    low = np.zeros_like(true)
    if rows.size:
        top, bottom = rows[0], rows[-1]
        low[max(top, int(round(bottom - LOW * (bottom - top + 1)))) :] = True
    return {
        "iou": float((pred & true).sum() / union),
        "fp": np.bincount(band[fp], minlength=5)[:5] / union,
        "fn": np.bincount(band[fn], minlength=5)[:5] / union,
        "low_fp": float((fp & low).sum() / union),
        "low_fn": float((fn & low).sum() / union),
    }


def enlarged(photo: np.ndarray, mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 photo and (H, W) bool mask → both at `width` px wide, the aspect
    kept: the photo bicubic (as soft as an enlarged photo is), the mask linear then 0.5."""
    size = (int(width), max(1, round(width * photo.shape[0] / photo.shape[1])))
    return (cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC),
            cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--model", default=None, help="matte net (bgr_core.loaders.MATTE_MODELS; default: the pipeline's)")
    ap.add_argument("--weights", type=Path, default=None, help="that net's weights (default: shipped)")
    ap.add_argument("--refiner", type=Path, default=None, help="edge refiner weights (default: shipped)")
    ap.add_argument("--no-refiner", action="store_true")
    ap.add_argument("--cpu-dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    ap.add_argument("--net-size", type=int, default=None, help="the net's input side (default: the preset's; the recheck at 320 stays)")
    ap.add_argument("--width", type=int, default=None, help="enlarge photo and label to this width first")
    ap.add_argument("--worst", type=int, default=8)
    args = ap.parse_args(argv)
    samples = load_carvana_cars(args.data, args.limit)
    if not samples:
        print(f"no validation cars under {args.data}: nothing to measure")
        return 0
    torch.set_grad_enabled(False)
    net = loaders.load_matte_net(args.model or loaders.DEFAULT_MATTE_MODEL, "cpu", args.weights)
    refiner = None if args.no_refiner else loaders.load_edge_refiner("cpu", args.refiner)
    amp = {"auto": "auto", "float32": None, "bfloat16": torch.bfloat16}[args.cpu_dtype]
    size = {} if args.net_size is None else {"net_size": args.net_size}
    stage = VehicleMatte.fast(net, cpu_amp_dtype=amp, edge_refiner=refiner, **size)
    print(f"VehicleMatte.fast: net {stage.net_size} px, {'bfloat16' if stage.reduced_precision else 'float32'}, "
          f"refiner {'none' if refiner is None else args.refiner or 'shipped'}; {len(samples)} views"
          + ("" if args.width is None else f", enlarged to {args.width} px wide"))
    rows = []
    for s in samples:
        photo, mask = (s.image, s.mask) if args.width is None else enlarged(s.image, s.mask, args.width)
        image = torch.from_numpy(np.array(photo, copy=True)).permute(2, 0, 1).float().div(255.0)
        frame = stage([Frame(image=image)])[0]
        pred = np.zeros(mask.shape, bool) if frame.alpha is None else frame.alpha[0].numpy() >= 0.5
        rows.append((s.name, split_errors(pred, mask)))
        s.__dict__.pop("image", None)
    ious = np.array([r["iou"] for _, r in rows])
    fp = np.mean([r["fp"] for _, r in rows], axis=0)
    fn = np.mean([r["fn"] for _, r in rows], axis=0)
    print(f"IoU mean {ious.mean():.4f}, min {ious.min():.4f}; lost {1 - ious.mean():.4f}")
    print(f"{'px from outline':>16} {'kept bg':>8} {'cut car':>8}")
    for name, a, b in zip(band_names(), fp, fn):
        print(f"{name:>16} {a:8.4f} {b:8.4f}")
    low_fp, low_fn = np.mean([r["low_fp"] for _, r in rows]), np.mean([r["low_fn"] for _, r in rows])
    print(f"{f'lowest {LOW:.0%}':>16} {low_fp:8.4f} {low_fn:8.4f}")
    print(f"{'the rest':>16} {fp.sum() - low_fp:8.4f} {fn.sum() - low_fn:8.4f}")
    print("worst views (IoU, kept bg, cut car):")
    for name, r in sorted(rows, key=lambda x: x[1]["iou"])[: args.worst]:
        print(f"  {name} {r['iou']:.4f} {r['fp'].sum():.4f} {r['fn'].sum():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
