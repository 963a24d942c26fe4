"""Licence-plate detection on labelled real photos.

    python benchmarks/plates.py [--data ../shared/data] [--matte segment|none] [--sets carparts,openalpr,alpr]
                                [--cache DIR] [--show N] [--scorer learned|logistic|PATH]
                                [--fit [--table T.npz] [--lam L]]

For each set it prints recall (a labelled plate counts as found when a detection
overlaps it with quad IoU >= 0.5, computed with ``cv2.intersectConvexConvex``), false
detections per image (detections matching no labelled plate; detections whose centre
lies in a labelled "ignore" box are not counted), the mean corner error in pixels of
the matched plates where corners are known, and detector CPU time per image.

Sets:

- ``carparts``: ``benchmarks/data/carparts_plates.json``, plates labelled by hand on
  ``carparts/JPEGImages`` (blurred by the dataset authors, outline visible), plus images
  without a visible plate. Reported as ``carparts-dev`` (``train1..99``, used while
  developing and to fit the score) and ``carparts-held`` (``train100+``, not looked at
  while tuning) and both together.
- ``openalpr``: ``plates/openalpr_us`` and ``openalpr_eu``: one pixel box per image
  (``<name>.txt``: file, x, y, w, h, text); corner error is measured against the box
  corners, which is only meaningful for plates seen straight on.
- ``alpr``: ``plates/alpr_unconstrained``: four corners as fractions of the image.

The detector sees what the pipeline gives it: the vehicle matte and box of the
`VehicleMatte` stage (``--matte segment``, cached in ``--cache``), or nothing
(``--matte none``).

The detector is `ContourPlateDetector` with the shipped learned re-scorer of its
candidates (``--scorer learned``, trained by ``benchmarks/train_plate_scorer.py`` on
``carparts-dev``, the training-only labels of ``benchmarks/data/carparts_plates_train.json``
and synthetic plates: ``carparts-held``, ``openalpr`` and ``alpr`` are held out), or with
its fitted logistic score alone (``--scorer logistic``, the detector before the
re-scorer).

``--fit`` refits the logistic weights of `ContourPlateDetector` (printed as JSON;
``--fit-out FILE`` writes them as a weights file like ``weights/plate_logistic.json``, which
``ContourPlateDetector(weights=bgr_core.loaders.load_plate_logistic(FILE))`` uses) on the candidates of ``carparts-dev``, of
the same images with a synthetic legible plate warped onto the labelled quad, and of
``openalpr_us``; so figures on those images are not independent of the fit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bgr_core.functional.plates import overlay_plate, quad_iou  # noqa: E402
from bgr_core.functional.plate_features import FEATURES, GATE, measure, prior_logit  # noqa: E402
from bgr_core.functional.plate_search import find_candidates, prepare_work, refine_quad  # noqa: E402
from bgr_core.stages.plate_detectors import ContourPlateDetector  # noqa: E402

LABELS = ROOT / "benchmarks" / "data" / "carparts_plates.json"
IOU = 0.5


@dataclass
class Sample:
    path: Path
    plates: list[np.ndarray]  # (4, 2) each
    corners_known: bool
    ignore: list[list[float]] = field(default_factory=list)  # XYXY boxes
    group: str = ""


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def load_sets(data: Path, names: list[str]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    if "carparts" in names:
        doc = json.loads(LABELS.read_text())
        dev, held = [], []
        for e in doc["images"]:
            s = Sample(data / "carparts" / "JPEGImages" / e["file"], [np.array(q, np.float64) for q in e["plates"]], True,
                       e.get("ignore", []))
            (dev if int(e["file"][5:-4]) < 100 else held).append(s)
        out["carparts-dev"], out["carparts-held"] = dev, held
    if "openalpr" in names:
        for sub in ("openalpr_us", "openalpr_eu"):
            items = []
            for txt in sorted((data / "plates" / sub).glob("*.txt")):
                name, x, y, w, h, *_ = txt.read_text().strip().split("\t")
                x, y, w, h = map(float, (x, y, w, h))
                box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
                items.append(Sample(txt.parent / name, [box], False))
            out[sub] = items
    if "alpr" in names:
        items = []
        for txt in sorted((data / "plates" / "alpr_unconstrained").glob("*.txt")):
            v = txt.read_text().strip().split(",")
            img = txt.with_suffix(".jpg")
            hgt, wid = read_rgb(img).shape[:2]
            xs = np.array(list(map(float, v[1:5]))) * wid
            ys = np.array(list(map(float, v[5:9]))) * hgt
            items.append(Sample(img, [np.stack([xs, ys], 1)], True))
        out["alpr_unconstrained"] = items
    return out


# -- the vehicle matte the pipeline would give the detector ---------------------------------------


class Mattes:
    def __init__(self, mode: str, cache: Path):
        self.mode = mode
        self.cache = cache
        self._stage = None
        self._pipe = None

    def __call__(self, path: Path, rgb: np.ndarray):
        if self.mode == "none":
            return None, None
        key = self.cache / (str(path.resolve()).replace(os.sep, "__") + ".npz")
        if key.exists():
            z = np.load(key)
            if z["alpha"].size == 0:
                return None, None
            return torch.from_numpy(z["alpha"].astype(np.float32) / 255)[None], torch.from_numpy(z["box"]).float()
        if self._stage is None:
            from bgr_core import Pipeline

            self._pipe = Pipeline("cpu", batch_size=1)
            self._stage = self._pipe.segment
        frame = self._pipe.run([self._pipe.frame(rgb)], [self._stage])[0]
        self.cache.mkdir(parents=True, exist_ok=True)
        if frame.error is not None:
            np.savez_compressed(key, alpha=np.zeros(0), box=np.zeros(0))
            return None, None
        alpha = (frame.alpha[0].numpy() * 255).round().astype(np.uint8)
        np.savez_compressed(key, alpha=alpha, box=frame.box.numpy())
        return torch.from_numpy(alpha.astype(np.float32) / 255)[None], frame.box.float()


def tensor_from_rgb(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255


def in_ignore(quad: np.ndarray, boxes) -> bool:
    c = quad.mean(0)
    return any(b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3] for b in boxes)


def evaluate(samples: list[Sample], detector, mattes: Mattes, show: int = 0) -> dict:
    hits = plates = false = 0
    corner_err: list[float] = []
    cpu = 0.0
    misses: list[str] = []
    for s in samples:
        rgb = read_rgb(s.path)
        image = tensor_from_rgb(rgb)
        alpha, box = mattes(s.path, rgb)
        t0 = time.process_time()
        dets = detector.detect(image, alpha, box)
        cpu += time.process_time() - t0
        plates += len(s.plates)
        matched: set[int] = set()
        for d in dets:
            q = d.quad.numpy().astype(np.float64)
            ious = [quad_iou(q, g) for g in s.plates]
            j = int(np.argmax(ious)) if ious else -1
            if j >= 0 and ious[j] >= IOU and j not in matched:
                matched.add(j)
                if s.corners_known:
                    corner_err.append(float(np.linalg.norm(q - s.plates[j], axis=1).mean()))
            elif not in_ignore(q, s.ignore):
                false += 1
                misses.append(f"{s.path.name}: false detection {np.round(q).astype(int).tolist()} score {d.score:.2f}")
        hits += len(matched)
        if len(matched) < len(s.plates):
            misses.append(f"{s.path.name}: missed {len(s.plates) - len(matched)} plate(s)")
    if show:
        for m in misses[:show]:
            print("   ", m)
    return dict(images=len(samples), plates=plates, recall=hits / max(plates, 1), false_per_image=false / max(len(samples), 1),
                corner_px=float(np.mean(corner_err)) if corner_err else float("nan"),
                corner_median_px=float(np.median(corner_err)) if corner_err else float("nan"), cpu_s=cpu / max(len(samples), 1))


# -- fitting the score -------------------------------------------------------------------------------

_GLYPHS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def text_plate(rng: np.random.Generator, long: bool | None = None) -> np.ndarray:
    """A synthetic legible plate (h, w, 3) uint8: light paint, thin dark border, dark
    characters; EU-like (long, optional blue strip) or US/Asian-like (about 2:1)."""
    eu = rng.random() < 0.5 if long is None else long
    w, h = (520, 112) if eu else (300, 150)
    paint = np.array([235, 235, 228]) if rng.random() < 0.8 else np.array([240, 205, 40])
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (paint + rng.integers(-15, 10, 3)).clip(0, 255)
    ink = tuple(int(v) for v in rng.integers(0, 50, 3))
    cv2.rectangle(img, (3, 3), (w - 4, h - 4), ink, 3)
    x0 = 8
    if eu and rng.random() < 0.7:
        cv2.rectangle(img, (6, 6), (46, h - 7), (30, 60, 170), -1)
        x0 = 56
    n = int(rng.integers(5, 8))
    text = "".join(rng.choice(list(_GLYPHS), n))
    scale = (h * 0.62) / 22.0
    thick = max(2, int(scale * 2.2))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    sx = min(1.0, (w - x0 - 12) / max(tw, 1))
    canvas = np.zeros((h, max(w, tw + 20), 3), np.uint8)
    cv2.putText(canvas, text, (4, int(h / 2 + th / 2)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    mask = cv2.resize(canvas[:, : tw + 8, 0], (max(1, int((tw + 8) * sx)), h)).astype(np.float32) / 255
    x1 = x0 + (w - x0 - mask.shape[1]) // 2
    region = img[:, x1 : x1 + mask.shape[1]].astype(np.float32)
    img[:, x1 : x1 + mask.shape[1]] = (region * (1 - mask[..., None]) + np.array(ink) * mask[..., None]).astype(np.uint8)
    return img


def long_quad(q: np.ndarray, k: float) -> np.ndarray:
    """A long (EU-like) plate quad of height / width `k` on the bottom side of quad `q`."""
    left = min(1.0, k * np.linalg.norm(q[1] - q[0]) / max(np.linalg.norm(q[3] - q[0]), 1e-6))
    right = min(1.0, k * np.linalg.norm(q[2] - q[3]) / max(np.linalg.norm(q[2] - q[1]), 1e-6))
    return np.stack([q[3] + (q[0] - q[3]) * left, q[2] + (q[1] - q[2]) * right, q[2], q[3]])


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
    ap.add_argument("--sets", default="carparts,openalpr,alpr")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bgr_plates_mattes")
    ap.add_argument("--split", choices=("all", "dev", "held"), default="all",
                    help="carparts: train1-99 (dev), train100+ (held out), or both")
    ap.add_argument("--show", type=int, default=0, help="list this many misses and false detections per set")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier timings on a shared machine)")
    ap.add_argument("--fit", action="store_true", help="refit the detector's score weights and print them")
    ap.add_argument("--table", type=Path, default=None,
                    help="with --fit: the candidates' features are read from this .npz if it exists, else "
                         "collected and saved there (delete it after changing candidates or features)")
    ap.add_argument("--no-flat", dest="flat", action="store_false",
                    help="ContourPlateDetector(flat=False): without the smooth-rectangle candidates")
    ap.add_argument("--lam", type=float, default=0.001, help="with --fit: L2 penalty on standardised weights")
    ap.add_argument("--fit-out", type=Path, default=None, help="with --fit: write the weights file here")
    ap.add_argument("--scorer", default="learned",
                    help="'learned': the shipped learned re-scorer (weights/plate_scorer.safetensors, see "
                         "benchmarks/train_plate_scorer.py; an error when missing), 'logistic': the fitted logistic "
                         "score alone (the detector before the re-scorer), or a path to a scorer file")
    ap.add_argument("--rescore-top", type=int, default=20, help="the learned scorer re-scores this many candidates")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        print(f"no data at {args.data}")
        return 1
    mattes = Mattes(args.matte, args.cache)
    if args.fit:
        if args.table is not None and args.table.exists():
            with np.load(args.table) as z:
                table = {k: z[k] for k in z.files}
        else:
            table = collect(args.data, mattes, flat=args.flat)
            if args.table is not None:
                np.savez_compressed(args.table, **table)
        print(f"fitted on {len(table['y'])} candidates ({int(table['y'].sum())} positive)")
        fitted = fit(table, lam=args.lam)
        print(json.dumps(fitted))
        if args.fit_out is not None:
            args.fit_out.write_text(json.dumps({"description": "gated logistic plate score (benchmarks/plates.py --fit)",
                                                "fitted_by": f"python benchmarks/plates.py --fit --lam {args.lam}",
                                                "weights": fitted}, indent=1) + "\n")
        return 0
    if args.scorer == "logistic":
        scorer = None
    else:
        from bgr_core.stages.plate_detectors import LearnedPlateScorer

        scorer = LearnedPlateScorer(None if args.scorer == "learned" else args.scorer)
    detector = ContourPlateDetector(flat=args.flat, scorer=scorer, rescore_top=args.rescore_top)
    sets = load_sets(args.data, args.sets.split(","))
    if "carparts-dev" in sets:
        if args.split == "dev":
            del sets["carparts-held"]
        elif args.split == "held":
            del sets["carparts-dev"]
    print(f"detector: {detector!r}, matte: {args.matte}, IoU >= {IOU}")
    print(f"{'set':<20}{'images':>7}{'plates':>7}{'recall':>8}{'false/img':>10}{'corner px':>10}{'median':>8}"
          f"{'cpu s/img':>10}")
    results = {}
    for name, samples in sets.items():
        r = evaluate(samples, detector, mattes, args.show)
        results[name] = r
        print(f"{name:<20}{r['images']:>7}{r['plates']:>7}{r['recall']:>8.3f}{r['false_per_image']:>10.3f}"
              f"{r['corner_px']:>10.2f}{r['corner_median_px']:>8.2f}{r['cpu_s']:>10.3f}")
    if "carparts-dev" in results and "carparts-held" in results:
        a, b = results["carparts-dev"], results["carparts-held"]
        n = a["plates"] + b["plates"]
        m = a["images"] + b["images"]
        rec = (a["recall"] * a["plates"] + b["recall"] * b["plates"]) / max(n, 1)
        fp = (a["false_per_image"] * a["images"] + b["false_per_image"] * b["images"]) / max(m, 1)
        print(f"{'carparts (all)':<20}{m:>7}{n:>7}{rec:>8.3f}{fp:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
