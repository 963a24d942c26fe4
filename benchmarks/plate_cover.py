"""How much of the old plate's coloured rim, banner or strip a blank replacement leaves.

    python benchmarks/plate_cover.py [--data ../shared/data]

On the labelled openalpr plates (``plates/openalpr_us``, ``openalpr_eu``: one pixel box
per photo) the matte and `PlateReplacement("blank")` run with the replacement drawn into
the detected quad (``cover_border=False``) and into the quad grown to the plate's outer
border (the default). Within the labelled box widened by 10 % on the sides, 30 % above
and 20 % below, the strongly coloured pixels of the photo (HSV saturation > 110 and value
> 70 of 255: red rims, state banners, EU strips, but also a red or blue bumper around the
plate) are counted, and the share of them still coloured after the replacement is
printed for both, over the photos where a plate was found. The labels give the printed
plate, not its outer outline, so this is a proxy: the floor is the bumper's own colour.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def coloured(rgb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return (hsv[..., 1] > 110) & (hsv[..., 2] > 70)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    labels = sorted((args.data / "plates" / "openalpr_us").glob("*.txt")) + sorted(
        (args.data / "plates" / "openalpr_eu").glob("*.txt"))
    if not labels:
        print(f"no openalpr plates under {args.data}: nothing to measure", file=sys.stderr)
        return 1
    from PIL import Image

    from bgr_core import Pipeline
    from bgr_core.stages.plates import PlateReplacement

    pipe = Pipeline("cpu")
    stages = {False: PlateReplacement("blank", cover_border=False), True: PlateReplacement("blank")}
    left: dict[bool, list[float]] = {False: [], True: []}
    for txt in labels:
        _, x, y, w, h, *_ = txt.read_text().split("\t")
        x, y, w, h = map(int, (x, y, w, h))
        with Image.open(txt.with_suffix(".jpg")) as im:
            photo = np.asarray(im.convert("RGB"))
        frame = pipe.segment([pipe.frame(photo)])[0]
        if frame.error is not None:
            continue
        H, W = photo.shape[:2]
        x0, y0 = max(0, int(x - 0.1 * w)), max(0, int(y - 0.3 * h))
        x1, y1 = min(W, int(x + 1.1 * w)), min(H, int(y + 1.2 * h))
        before = coloured(photo[y0:y1, x0:x1])
        outs = {k: stage([frame])[0] for k, stage in stages.items()}
        if any(o.plates is None or len(o.plates) == 0 for o in outs.values()):
            continue
        for k, out in outs.items():
            img = (out.image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            after = coloured(np.ascontiguousarray(img[y0:y1, x0:x1]))
            left[k].append(float((after & before).sum() / max(1, before.sum())))
    a, b = np.array(left[False]), np.array(left[True])
    print(f"{len(a)} of {len(labels)} labelled plates found; share of their strongly coloured pixels left after "
          f"a blank replacement: detected quad {a.mean():.3f} (photos above 5 %: {(a > 0.05).sum()}), "
          f"grown to the outer border {b.mean():.3f} ({(b > 0.05).sum()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
