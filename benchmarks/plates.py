"""Licence-plate detection on labelled real photos.

    python benchmarks/plates.py [--data ../shared/data] [--matte segment|none] [--sets carparts,openalpr,alpr]
                                [--cache DIR] [--show N] [--scorer learned|logistic|PATH]

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
candidates (``--scorer learned``, trained by ``tools/train_plate_scorer.py`` on
``carparts-dev``, the training-only labels of ``benchmarks/data/carparts_plates_train.json``
and synthetic plates: ``carparts-held``, ``openalpr`` and ``alpr`` are held out), or with
its fitted logistic score alone (``--scorer logistic``, the detector before the
re-scorer).

The logistic score's weights (``weights/plate_logistic.json``) are fitted by
``tools/fit_plate_logistic.py`` on ``carparts-dev``, the same images with a synthetic
legible plate, and ``openalpr_us``: figures on those images are not independent of the fit.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bgr_core.functional.plates import quad_iou  # noqa: E402
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
    ap.add_argument("--no-flat", dest="flat", action="store_false",
                    help="ContourPlateDetector(flat=False): without the smooth-rectangle candidates")
    ap.add_argument("--scorer", default="learned",
                    help="'learned': the shipped learned re-scorer (weights/plate_scorer.safetensors, see "
                         "tools/train_plate_scorer.py; an error when missing), 'logistic': the fitted logistic "
                         "score alone (the detector before the re-scorer), or a path to a scorer file")
    ap.add_argument("--rescore-top", type=int, default=20, help="the learned scorer re-scores this many candidates")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        print(f"no data at {args.data}")
        return 1
    mattes = Mattes(args.matte, args.cache)
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
