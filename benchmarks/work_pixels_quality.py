"""What the working resolution costs in quality: large photos through the default pipeline
(stages at `WORK_PIXELS`, output composed at full size) against the same pipeline with
every stage at full size (``work_pixels=None``).

    python benchmarks/work_pixels_quality.py [--mp 12] [--limit 16] [--data ../shared/data]
                                             [--work-pixels N[,N...]] [--sheet out.jpg]

Photos: the held-out studio photos of ``masks/carvana`` (full masks; cars never trained
on), enlarged (bicubic, the mask linearly) to `--mp` megapixels: their detail is that of
the originals, so the figures measure the pipeline, not the photo. Printed per setting:
IoU of the output's alpha (transparent output, >= 128) with the mask, mean absolute
alpha error, seconds per photo; then each capped output's mean absolute difference from
the uncapped one (white background, 0-255) and the share of pixels that differ by more
than 16 levels. `--work-pixels` compares other caps (default: the pipeline's own).
`--sheet` writes 1:1 crops of the edge (each cap above, uncapped below) for looking.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    import cv2

    from bgr_core import Pipeline
    from quality_data import load_carvana

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mp", type=float, default=12.0)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work-pixels", default=None, help="comma list of caps to compare (default: the pipeline's)")
    ap.add_argument("--sheet", type=Path, default=None)
    args = ap.parse_args(argv)
    samples = load_carvana(args.data, args.limit) if args.data.is_dir() else []
    if not samples:
        print(f"no masks/carvana photos under {args.data}: nothing to measure", file=sys.stderr)
        return 1
    pipes = {"capped (default)": Pipeline("cpu")} if args.work_pixels is None else {
        f"capped at {int(n):,}": Pipeline("cpu", work_pixels=int(n)) for n in args.work_pixels.split(",")}
    capped = list(pipes)
    pipes["uncapped"] = Pipeline("cpu", work_pixels=None)
    stats = {k: {"iou": [], "mae": [], "s": []} for k in pipes}
    diffs, big, crops = {k: [] for k in capped}, {k: [] for k in capped}, []
    for sample in samples:
        h, w = sample.image.shape[:2]
        s = (args.mp * 1e6 / (h * w)) ** 0.5
        size = (round(w * s), round(h * s))
        photo = cv2.resize(sample.image, size, interpolation=cv2.INTER_CUBIC)
        truth = cv2.resize(sample.mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
        whites = {}
        for name, pipe in pipes.items():
            start = time.perf_counter()
            r = pipe.remove_background(image_file=photo, background="transparent_background")
            stats[name]["s"].append(time.perf_counter() - start)
            alpha = r.array[..., 3].astype(np.float32) / 255
            inter = ((alpha >= 0.5) & (truth >= 0.5)).sum()
            stats[name]["iou"].append(inter / max(1, ((alpha >= 0.5) | (truth >= 0.5)).sum()))
            stats[name]["mae"].append(np.abs(alpha - truth).mean())
            whites[name] = pipe.remove_background(image_file=photo).array
        for k in capped:
            d = np.abs(whites[k].astype(np.int16) - whites["uncapped"].astype(np.int16)).max(axis=2)
            diffs[k].append(d.mean())
            big[k].append((d > 16).mean())
        if args.sheet is not None:
            ys, xs = np.nonzero(cv2.morphologyEx((truth >= 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3))))
            i = len(ys) // 3
            y0, x0 = max(0, ys[i] - 128), max(0, xs[i] - 128)
            crops.append(np.concatenate([whites[k][y0 : y0 + 256, x0 : x0 + 256] for k in pipes], axis=0))
    print(f"{len(samples)} held-out studio photos (masks/carvana) at {args.mp:g} MP")
    for name, st in stats.items():
        print(f"  {name:20s} IoU {np.mean(st['iou']):.4f} (min {np.min(st['iou']):.4f}), "
              f"alpha MAE {np.mean(st['mae']):.4f}, {np.mean(st['s']):.2f} s per photo")
    for k in capped:
        print(f"  {k} against uncapped: outputs differ by {np.mean(diffs[k]):.2f} levels on average; "
              f"{100 * np.mean(big[k]):.2f} % of pixels by > 16")
    if args.sheet is not None and crops:
        sheet = np.concatenate([c for c in crops if c.shape == crops[0].shape], axis=1)
        cv2.imwrite(str(args.sheet), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"  sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
