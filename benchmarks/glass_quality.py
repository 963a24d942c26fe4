"""Window-glass detection on the Car Parts photos (``../shared/data/carparts``).

    python benchmarks/glass_quality.py [--data ../shared/data] [--limit N] [--worst K]
                                       [--cache DIR] [--device cpu]

For every photo with a labelled ``front_glass`` or ``back_glass`` it runs the default
pipeline's matte stage (`Pipeline().segment`) and then
`bgr_core.functional.glass.detect_glass`, and measures:

- **glass recall**: share of the ``front_glass`` + ``back_glass`` pixels marked as
  glass (``glass >= 0.5``); goal: mean >= 0.85;
- **outside share**: share of the marked glass that lies outside the union of the
  labelled glass and door polygons (side windows are inside the door polygons; roof,
  pillars, hood, body are not); goal: <= 0.10.

Both are printed as the mean over photos and pooled over all pixels, for all photos
and for the two halves: ``fit`` (odd COCO image ids, whose pixels calibrated the cue
weights of `glass_probability`) and ``held`` (even ids, never seen by the fit), with
the worst photos and the detector's CPU time per photo. ``--cache`` keeps the mattes
(``.npz`` per photo) so that reruns only time the detector.

`glass_recall`, `glass_outside_share` and `glass_counts` can be imported by other
scripts; `tools/fit_glass_cues.py` redoes the calibration with this file's label readers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bgr_core.functional import glass as G  # noqa: E402
from bgr_core.loaders import load_glass_cues  # noqa: E402

CUES = load_glass_cues().numpy_params()

GLASS = ("front_glass", "back_glass")
GOAL_RECALL = 0.85
GOAL_OUTSIDE = 0.10


# -- annotations ---------------------------------------------------------------------


@dataclass
class Annotation:
    """One photo's labels: ``parts`` is a list of (category name, COCO polygon list)."""

    file: str
    image_id: int
    height: int
    width: int
    parts: list[tuple[str, list[list[float]]]] = field(default_factory=list)

    def mask(self, names) -> np.ndarray:
        """(H, W) bool union of the polygons of the categories in `names`."""
        out = np.zeros((self.height, self.width), np.uint8)
        for name, polygons in self.parts:
            if name in names:
                for poly in polygons:
                    if len(poly) >= 6:
                        pts = np.asarray(poly, np.float64).reshape(-1, 2).round().astype(np.int32)
                        cv2.fillPoly(out, [pts], 1)
        return out.astype(bool)

    @property
    def glass(self) -> np.ndarray:
        return self.mask(GLASS)

    @property
    def allowed(self) -> np.ndarray:
        """Labelled glass and doors (which hold the side windows)."""
        return self.mask(set(GLASS) | {n for n, _ in self.parts if n.endswith("_door")})

    @property
    def has_glass(self) -> bool:
        return any(n in GLASS for n, _ in self.parts)


def load_annotations(carparts: Path) -> list[Annotation]:
    data = json.loads((carparts / "annotations.json").read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    by_image: dict[int, list] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append((cats[ann["category_id"]], ann["segmentation"]))
    return [
        Annotation(im["path"], im["id"], im["height"], im["width"], by_image.get(im["id"], []))
        for im in sorted(data["images"], key=lambda im: im["id"])
    ]


# -- measures ------------------------------------------------------------------------


def _marked(glass) -> np.ndarray:
    g = glass.detach().float().cpu().numpy() if isinstance(glass, torch.Tensor) else np.asarray(glass)
    g = np.squeeze(g)
    if g.ndim != 2:
        raise ValueError(f"glass must be (H, W) or (1, H, W), got {g.shape}")
    return g >= 0.5


def glass_counts(glass, ann: Annotation) -> tuple[int, int, int, int]:
    """(labelled glass marked, labelled glass, marked outside glass+doors, marked) pixels."""
    marked = _marked(glass)
    if marked.shape != (ann.height, ann.width):
        raise ValueError(f"glass is {marked.shape}, the photo {(ann.height, ann.width)}")
    truth, allowed = ann.glass, ann.allowed
    return int((marked & truth).sum()), int(truth.sum()), int((marked & ~allowed).sum()), int(marked.sum())


def glass_recall(glass, ann: Annotation) -> float:
    """Share of the labelled front/back glass marked as glass (``glass >= 0.5``); nan without labelled glass."""
    hit, labelled, _, _ = glass_counts(glass, ann)
    return hit / labelled if labelled else math.nan


def glass_outside_share(glass, ann: Annotation) -> float:
    """Share of the marked glass outside the labelled glass and door polygons (0 when nothing is marked)."""
    _, _, outside, marked = glass_counts(glass, ann)
    return outside / marked if marked else 0.0


# -- matte ---------------------------------------------------------------------------


def make_matte(device: str):
    """image (3, H, W) → alpha (1, H, W) or None: the default pipeline's matte stage
    (`Pipeline(device).segment`: the vehicle net, fast preset), which window correction
    runs after in `remove_background`."""
    from bgr_core import Pipeline
    from bgr_core.frame import Frame

    stage = Pipeline(device).segment

    def matte(image: torch.Tensor) -> torch.Tensor | None:
        frame = stage([Frame(image=image)])[0]
        return None if frame.error is not None else frame.alpha.float()

    return matte, f"the default pipeline's ({type(stage).__name__}, {stage.net_size} px)"


def load_image(path: Path, device: str) -> torch.Tensor:
    rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).to(device).permute(2, 0, 1).float().div_(255.0)


# -- report --------------------------------------------------------------------------


def summary(rows: list[dict]) -> str:
    if not rows:
        return "no photos"
    rec = np.array([r["recall"] for r in rows])
    out = np.array([r["outside"] for r in rows])
    c = np.array([r["counts"] for r in rows], np.float64)
    pooled_rec = c[:, 0].sum() / max(c[:, 1].sum(), 1)
    pooled_out = c[:, 2].sum() / max(c[:, 3].sum(), 1)
    ok = lambda v, goal, up: "ok" if (v >= goal if up else v <= goal) else "below goal" if up else "above goal"  # noqa: E731
    return (
        f"n={len(rows):3d}  recall mean {rec.mean():.3f} ({ok(rec.mean(), GOAL_RECALL, True)}) "
        f"pooled {pooled_rec:.3f} | outside mean {out.mean():.3f} ({ok(out.mean(), GOAL_OUTSIDE, False)}) "
        f"pooled {pooled_out:.3f} | recall<0.5: {(rec < 0.5).sum()}, outside>0.3: {(out > 0.3).sum()}"
    )


def run(args: argparse.Namespace) -> list[dict]:
    carparts = Path(args.data) / "carparts"
    if not (carparts / "annotations.json").is_file():
        sys.exit(f"no Car Parts data under {carparts}")
    torch.set_grad_enabled(False)
    anns = [a for a in load_annotations(carparts) if a.has_glass]
    if args.limit:
        anns = anns[: args.limit]
    matte_fn, matte_name = make_matte(args.device)
    cache = Path(args.cache) if args.cache else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    print(f"{len(anns)} photos with labelled front/back glass; matte: {matte_name}")
    rows, cpu = [], []
    for k, ann in enumerate(anns):
        image = load_image(carparts / ann.file, args.device)
        cached = cache / (Path(ann.file).stem + ".npz") if cache else None
        if cached and cached.is_file():
            alpha = torch.from_numpy(np.load(cached)["alpha"]).to(args.device).float()[None] / 255
        else:
            alpha = matte_fn(image)
            if alpha is None:
                alpha = torch.zeros(1, *image.shape[-2:], device=args.device)
            if cached:
                np.savez_compressed(cached, alpha=(alpha[0].float().cpu().numpy() * 255).round().astype(np.uint8))
        t0 = time.process_time()
        glass = G.detect_glass(image[None], alpha[None], CUES)[0]
        cpu.append(time.process_time() - t0)
        counts = glass_counts(glass, ann)
        rows.append(
            {
                "file": Path(ann.file).name,
                "split": "fit" if ann.image_id % 2 == 1 else "held",
                "recall": counts[0] / max(counts[1], 1),
                "outside": counts[2] / counts[3] if counts[3] else 0.0,
                "counts": counts,
            }
        )
        if args.progress and (k + 1) % 25 == 0:
            print(f"  {k + 1}/{len(anns)}", file=sys.stderr, flush=True)
    print(f"all   {summary(rows)}")
    for split in ("held", "fit"):
        print(f"{split:5s} {summary([r for r in rows if r['split'] == split])}")
    print(f"detector CPU time: {1000 * np.mean(cpu):.0f} ms per photo (median {1000 * np.median(cpu):.0f})")
    worst = sorted(rows, key=lambda r: r["recall"])[: args.worst]
    print("lowest recall: " + ", ".join(f"{r['file']} {r['recall']:.2f}" for r in worst))
    worst = sorted(rows, key=lambda r: -r["outside"])[: args.worst]
    print("highest outside share: " + ", ".join(f"{r['file']} {r['outside']:.2f}" for r in worst))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=0, help="first N photos only")
    parser.add_argument("--worst", type=int, default=8)
    parser.add_argument("--cache", default="", help="folder for the mattes (reused on reruns)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--progress", action="store_true")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
