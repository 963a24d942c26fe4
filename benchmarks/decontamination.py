"""Foreground colour estimation (blur fusion) on real photos: the shipped soft-edge
version against the full-size passes it replaced, timed and compared.

    python benchmarks/decontamination.py [--data DIR] [--width 2000] [--limit 8] [--layout center]

Each photo (resized to `--width` px wide first, Lanczos, as `peer_rembg.py --width` does;
0 keeps its size) goes through the default pipeline's stages up to the background stage.
On the frame that stage would compose, `bgr_core.functional.compose.estimate_foreground`
and `full_size_blur_fusion` below (Germer et al.'s two passes over the whole box around
the matte, as shipped until 7 December 2026) are each timed (median of `--repeat`), and
their outputs composited on white are compared in levels of 255: the largest difference,
and the mean over the soft edge (0 < alpha < 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bgr_core import Pipeline  # noqa: E402
from bgr_core.functional.compose import blur_fusion_radii, composite, estimate_foreground  # noqa: E402
from bgr_core.functional.geometry import grown_bounds  # noqa: E402
from bgr_core.functional.guided_filter import box_filter  # noqa: E402
from bgr_core.request import parse_request  # noqa: E402


def blur_fusion_everywhere(image: torch.Tensor, alpha: torch.Tensor, radii) -> torch.Tensor:
    """Germer et al.'s blur fusion written out over the whole canvas, (B, 3, H, W): the
    image where alpha is 1, 0 where it is 0 (the reference of `tests/test_compose.py`)."""
    fg = bg = image
    for r in radii:
        mean_a = box_filter(alpha, r)
        blurred_fg = box_filter(fg * alpha, r) / (mean_a + 1e-5)
        blurred_bg = box_filter(bg * (1 - alpha), r) / (1 - mean_a + 1e-5)
        fg = (blurred_fg + alpha * (image - alpha * blurred_fg - (1 - alpha) * blurred_bg)).clamp(0, 1)
        bg = blurred_bg
    return torch.where(alpha >= 1, image, torch.where(alpha > 0, fg, torch.zeros_like(fg)))


def full_size_blur_fusion(image: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Both passes over the whole box around alpha > 0 (as shipped until 7 December
    2026): (1, 3, H, W), (1, 1, H, W) in [0, 1]."""
    radii = blur_fusion_radii(*image.shape[-2:])
    out = torch.where(alpha >= 1.0, image, torch.zeros_like(image))
    bounds = grown_bounds(alpha[0, 0] > 0, 2 * sum(radii) + 2)
    if bounds is not None:
        y0, y1, x0, x1 = bounds
        out[..., y0:y1, x0:x1] = blur_fusion_everywhere(image[..., y0:y1, x0:x1], alpha[..., y0:y1, x0:x1], radii)
    return out


def _timed(fn, repeat: int) -> tuple[float, torch.Tensor]:
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "photos" / "alpr_unconstrained"))
    ap.add_argument("--width", type=int, default=2000)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--layout", default="center")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.limit]
    if not files:
        print(f"no photos in {args.data}")
        return 1
    torch.set_grad_enabled(False)
    pipe = Pipeline("cpu")
    stages = [s for s in pipe.stages_for(parse_request({"image_file": str(files[0]), "layout": args.layout}))
              if s.name != "background"]
    rows = []
    for path in files:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if args.width:
                im = im.resize((args.width, max(1, round(im.height * args.width / im.width))), Image.LANCZOS)
            array = np.asarray(im)
        frame = pipe.run([pipe.frame(array)], stages)[0]
        if frame.error is not None:
            print(f"{path.name}: {frame.error}")
            continue
        image, alpha = frame.image[None], frame.alpha[None].to(frame.image.dtype)
        t_new, new = _timed(lambda: estimate_foreground(image, alpha), args.repeat)
        t_old, old = _timed(lambda: full_size_blur_fusion(image, alpha), args.repeat)
        white = torch.ones_like(image)
        diff = (composite(new, alpha, white) - composite(old, alpha, white)).abs() * 255
        soft = ((alpha > 0) & (alpha < 1)).expand_as(image)
        rows.append((t_old, t_new, float(diff.max()), float(diff[soft].mean()) if soft.any() else 0.0))
        print(f"{path.name:24s} {array.shape[1]}x{array.shape[0]}  full size {t_old:6.1f} ms  soft edge {t_new:6.1f} ms"
              f"  on white: max {rows[-1][2]:.2f}, soft-edge mean {rows[-1][3]:.3f} levels")
    if rows:
        olds, news, maxes, means = zip(*rows)
        print(f"median over {len(rows)} photos: full size {statistics.median(olds):.1f} ms, soft edge "
              f"{statistics.median(news):.1f} ms; largest difference {max(maxes):.2f} levels, soft-edge means "
              f"{min(means):.3f}-{max(means):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
