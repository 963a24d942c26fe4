"""Fit the glass cue model of window correction (``weights/glass_cues.safetensors``).

    python tools/fit_glass_cues.py --out OUT.safetensors [--data ../shared/data] [--cache DIR]
                                   [--limit N] [--device cpu]

`bgr_core.models.glass_cues.GlassCueNet` (cross-entropy, L-BFGS, weight decay 1e-4) on
4000 pixels per photo of the carparts photos with an odd COCO id, mattes from the
default pipeline's matte stage (``--cache``: the ``.npz`` mattes of
``benchmarks/glass_quality.py``; the shipped file was fitted on the generic net's
mattes of its day, so this no longer reproduces it byte for byte):
front / back glass and the top 35 % of each door polygon as glass, the rest of the
silhouette above `BAND` and the lower half of the doors as not glass. Even ids are held
out: ``benchmarks/glass_quality.py`` measures on them, with the same label readers.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from glass_quality import Annotation, load_annotations, load_image, make_matte  # noqa: E402  (benchmarks/)
from bgr_core.functional import glass as G  # noqa: E402
from bgr_core.functional import matte as M  # noqa: E402
from bgr_core.models.glass_cues import GlassCueNet  # noqa: E402


def _door_windows(ann: Annotation, top: float = 0.35, bottom: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The top `top` share (side window) and the part below `bottom` of each door polygon."""
    up = np.zeros((ann.height, ann.width), bool)
    low = np.zeros_like(up)
    rows = np.arange(ann.height)[:, None]
    for name, polygons in ann.parts:
        if name.endswith("_door"):
            for poly in polygons:
                if len(poly) < 6:
                    continue
                pts = np.asarray(poly, np.float64).reshape(-1, 2)
                m = np.zeros_like(up, np.uint8)
                cv2.fillPoly(m, [pts.round().astype(np.int32)], 1)
                y0, y1 = pts[:, 1].min(), pts[:, 1].max()
                up |= (m > 0) & (rows < y0 + top * (y1 - y0))
                low |= (m > 0) & (rows > y0 + bottom * (y1 - y0))
    return up, low


def fit(args: argparse.Namespace) -> None:
    """Redo the cue calibration of `glass_probability` on the photos with an odd id."""
    carparts = Path(args.data) / "carparts"
    anns = [a for a in load_annotations(carparts) if a.has_glass and a.image_id % 2 == 1]
    matte_fn, _ = make_matte(args.device)
    cache = Path(args.cache) if args.cache else None
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for ann in anns[: args.limit or None]:
        image = load_image(carparts / ann.file, args.device)
        cached = cache / (Path(ann.file).stem + ".npz") if cache else None
        if cached and cached.is_file():
            alpha = torch.from_numpy(np.load(cached)["alpha"]).float()[None] / 255
        else:
            alpha = matte_fn(image)
            if alpha is None:
                continue
        truth, allowed = ann.glass, ann.allowed
        up, low = _door_windows(ann)
        for rgb, aw, (y0, y1, x0, x1) in G.vehicle_crops(image, alpha.to(image.device), G.WORK_SIZE):
            inside = aw > 0.5
            if inside.sum() < 64:
                continue
            support = M.fill_holes(inside, max_frac=math.inf)
            feats, r = G.glass_features(rgb, support)

            def small(m: np.ndarray) -> np.ndarray:
                return cv2.resize(m[y0:y1, x0:x1].astype(np.uint8), rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0

            pos = small(truth | up)
            domain = support & (r < G.BAND) & (~(small(allowed) & ~pos) | small(low))
            idx = np.flatnonzero(domain.ravel())
            if len(idx) > 4000:
                idx = rng.choice(idx, 4000, replace=False)
            xs.append(feats.reshape(-1, feats.shape[-1])[idx])
            ys.append(pos.ravel()[idx])
    x = torch.from_numpy(np.concatenate(xs)).float()
    y = torch.from_numpy(np.concatenate(ys)).float()
    torch.manual_seed(0)
    torch.set_grad_enabled(True)
    model = GlassCueNet(x.shape[1])
    opt = torch.optim.LBFGS(model.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logit = model.out(torch.tanh(model.hidden(x)))[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        loss = loss + 1e-4 * sum((p**2).sum() for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata={"fitted_by": "python tools/fit_glass_cues.py --out " + str(args.out)})
    print(f"fitted on {len(x)} pixels of {len(anns)} photos; weights in {args.out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the weights file to write")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=0, help="first N photos only")
    ap.add_argument("--cache", default="", help="the mattes of benchmarks/glass_quality.py --cache")
    ap.add_argument("--device", default="cpu")
    fit(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
