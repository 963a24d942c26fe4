"""Fit the gated logistic score of `ContourPlateDetector` (``weights/plate_logistic.json``).

    python tools/fit_plate_logistic.py [--data ../shared/data] [--matte segment|none] [--cache DIR]
                                       [--table T.npz] [--lam 0.001] [--no-flat] [--out FILE]

The candidates of ``carparts-dev`` (hand-labelled, `benchmarks/data/carparts_plates.json`
train1..99), of the same photos with a synthetic legible plate warped onto the labelled
quad, and of ``openalpr_us`` are measured (`bgr_core.functional.plate_features`) and the
two weight sets of the score fitted as a ranking in each image (`fit`). The weights are
printed as JSON and, with ``--out``, written as a weights file like
``weights/plate_logistic.json`` (``bgr_core.loaders.load_plate_logistic(FILE)`` reads it).
The labels and the matte cache are those of ``benchmarks/plates.py``, which measures the
detector; figures on these images are not independent of the fit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from plates import Mattes, Sample, in_ignore, load_sets, read_rgb, tensor_from_rgb  # noqa: E402  (benchmarks/plates.py)
from synthetic_plates import long_quad, text_plate  # noqa: E402  (tools/synthetic_plates.py)
from bgr_core.functional.plates import overlay_plate, quad_iou  # noqa: E402
from bgr_core.functional.plate_features import FEATURES, GATE, measure, prior_logit  # noqa: E402
from bgr_core.functional.plate_search import find_candidates, prepare_work, refine_quad  # noqa: E402
from bgr_core.stages.plate_detectors import ContourPlateDetector  # noqa: E402


def collect(data: Path, mattes: Mattes, seed: int = 0, flat: bool = True) -> dict[str, np.ndarray]:
    """Features of every candidate (before and after the refit) of the fitting images:
    ``carparts-dev`` as photographed (source 0), the same with a synthetic legible plate
    warped onto the labelled quad or onto a long (EU-like) quad as wide as it (source 1),
    and ``openalpr_us`` (source 2). Label 1 for IoU >= 0.6 with a labelled plate, 0 below
    0.3 (outside ignore boxes); others are left out."""
    sets = load_sets(data, ["carparts", "openalpr"])
    rng = np.random.default_rng(seed)
    det = ContourPlateDetector(flat=flat, scorer=None)
    jobs: list[tuple[np.ndarray, Sample, int]] = []
    for s in sets["carparts-dev"]:
        jobs.append((read_rgb(s.path), s, 0))
    for s in sets["carparts-dev"]:
        if not s.plates:
            continue
        for long in (False, True):
            image = tensor_from_rgb(read_rgb(s.path))
            quads = []
            for q in s.plates:
                if long:
                    q = long_quad(q, float(np.clip(rng.normal(0.27, 0.03), 0.2, 0.33)))
                plate = torch.from_numpy(text_plate(rng, long=long)).permute(2, 0, 1).float() / 255
                image, _ = overlay_plate(image, torch.from_numpy(q), plate, fill="white")
                quads.append(q)
            rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            jobs.append((rgb, Sample(s.path, quads, True, s.ignore), 1))
    for s in sets["openalpr_us"]:
        jobs.append((read_rgb(s.path), s, 2))
    feats: list[list[float]] = []
    labels: list[int] = []
    groups: list[int] = []
    sources: list[int] = []
    offsets: list[float] = []
    for gi, (rgb, s, src) in enumerate(jobs):
        alpha, box = mattes(s.path, rgb)
        work = prepare_work(tensor_from_rgb(rgb), alpha, box, det.work_size)
        if work is None:
            continue
        gts = [(g - [work.x0, work.y0]) * work.scale for g in s.plates]
        ign = [[(b[0] - work.x0) * work.scale, (b[1] - work.y0) * work.scale, (b[2] - work.x0) * work.scale,
                (b[3] - work.y0) * work.scale] for b in s.ignore]
        for q, _ in find_candidates(work, det.flat, det.box_width):
            for qq in (q, refine_quad(work, q)):
                f = measure(work, qq, det.aspect_range)
                if f is None:
                    continue
                iou = max([quad_iou(qq, g) for g in gts] or [0.0])
                if 0.3 <= iou < 0.6 or (iou < 0.3 and in_ignore(qq, ign)):
                    continue
                feats.append([f[k] for k in FEATURES])  # the table holds FEATURES only
                labels.append(int(iou >= 0.6))
                groups.append(gi)
                sources.append(src)
                offsets.append(prior_logit(f, det.aspect_range))
    return dict(x=np.array(feats), y=np.array(labels, np.float64), group=np.array(groups), source=np.array(sources),
                offset=np.array(offsets))


def fit(table: dict[str, np.ndarray], lam: float = 0.001, source_weights=(2.0, 1.0, 2.0)) -> dict[str, dict[str, float]]:
    """Weights of the detector's gated logistic score from `collect`'s table.

    A conditional-logit (ranking) fit: in every image the candidates compete with a
    "no plate" option of logit 0, and the loss is minus the log share of the labelled
    plate's candidates (or of "no plate" in an image without one). That is what the
    detector does with the score: take the best candidate when its logit is above 0.
    Images weigh `source_weights` by source; L2 penalty `lam` on standardised features;
    the "smooth" and "text" halves share the fixed gate (`bgr_core.functional.plate_features.GATE` on
    the texture feature) and are fitted jointly with L-BFGS (torch)."""
    names = list(FEATURES)
    x, y, g, src, off = table["x"], table["y"], table["group"], table["source"], table["offset"]
    lo, hi = GATE
    gate = np.clip((x[:, names.index("texture")] - lo) / (hi - lo), 0, 1)[:, None]
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xs = (x - mu) / sd
    z_in = torch.tensor(np.hstack([xs * (1 - gate), 1 - gate, xs * gate, gate]), dtype=torch.float64)
    offset = torch.tensor(off, dtype=torch.float64)
    groups = [np.nonzero(g == k)[0] for k in np.unique(g)]
    index = torch.tensor(np.concatenate(groups))
    seg = torch.tensor(np.concatenate([np.full(len(m), i) for i, m in enumerate(groups)]))
    pos = torch.tensor(y[np.concatenate(groups)] > 0.5)
    has_pos = torch.zeros(len(groups), dtype=torch.bool).index_put_((seg[pos],), torch.tensor(True))
    wimg = torch.tensor([source_weights[int(src[m[0]])] for m in groups], dtype=torch.float64)
    wimg = wimg / wimg.sum()
    nf = len(names)
    beta = torch.zeros(z_in.shape[1], dtype=torch.float64, requires_grad=True)
    mask = torch.ones_like(beta)
    mask[nf] = mask[-1] = 0.0  # biases are not penalised
    opt = torch.optim.LBFGS([beta], max_iter=500, line_search_fn="strong_wolfe", tolerance_grad=1e-9)
    ngroups = len(groups)

    def closure():
        opt.zero_grad()
        z = (z_in @ beta + offset)[index]
        zmax = torch.zeros(ngroups, dtype=torch.float64).scatter_reduce(0, seg, z, "amax", include_self=True)
        ez = torch.exp(z - zmax[seg])
        total = torch.exp(-zmax) + torch.zeros(ngroups, dtype=torch.float64).index_add(0, seg, ez)
        good = torch.zeros(ngroups, dtype=torch.float64).index_add(0, seg, ez * pos)
        good = torch.where(has_pos, good, torch.exp(-zmax))
        loss = -(wimg * (torch.log(good) - torch.log(total))).sum() + lam * (mask * beta ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    b = beta.detach().numpy()
    out = {}
    for part, start in (("smooth", 0), ("text", nf + 1)):
        coef = b[start : start + nf] / sd
        weights = {k: round(float(v), 4) for k, v in zip(names, coef)}
        weights["bias"] = round(float(b[start + nf] - (mu * b[start : start + nf] / sd).sum()), 4)
        out[part] = weights
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--matte", choices=("segment", "none"), default="segment")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bgr_plates_mattes")
    ap.add_argument("--table", type=Path, default=None,
                    help="the candidates' features are read from this .npz if it exists, else collected and saved "
                         "there (delete it after changing candidates or features)")
    ap.add_argument("--no-flat", dest="flat", action="store_false",
                    help="ContourPlateDetector(flat=False): without the smooth-rectangle candidates")
    ap.add_argument("--lam", type=float, default=0.001, help="L2 penalty on standardised weights")
    ap.add_argument("--out", type=Path, default=None, help="write the weights file here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        print(f"no data at {args.data}")
        return 1
    if args.table is not None and args.table.exists():
        with np.load(args.table) as z:
            table = {k: z[k] for k in z.files}
    else:
        table = collect(args.data, Mattes(args.matte, args.cache), flat=args.flat)
        if args.table is not None:
            np.savez_compressed(args.table, **table)
    print(f"fitted on {len(table['y'])} candidates ({int(table['y'].sum())} positive)")
    fitted = fit(table, lam=args.lam)
    print(json.dumps(fitted))
    if args.out is not None:
        args.out.write_text(json.dumps({"description": "gated logistic plate score (tools/fit_plate_logistic.py)",
                                        "fitted_by": f"python tools/fit_plate_logistic.py --lam {args.lam}",
                                        "weights": fitted}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
