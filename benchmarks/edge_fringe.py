"""The matte's edge on busy backgrounds: how wide the fringe is, in pixels.

    python benchmarks/edge_fringe.py [--data ../shared/data] [--variants default,eps1e-3,...]

The 16 studio cars of ``masks/carvana`` (never trained on) are cut out by their masks and
pasted, large and centred, on CamVid street frames (buildings, trees, sky: the textures
that leave a fringe along roof lines), then reduced to 1200 x 800. The pasted mask,
reduced the same way, is the true alpha. `VehicleMatte.fast` (the default matte, on the
shipped vehicle net) runs on each composite and the script prints, per variant of its
edge options:

- **IoU** of ``alpha >= 0.5`` with the true silhouette;
- **fringe out** (px): the matte's mass on true background (alpha summed over pixels whose
  true alpha is 0, CamVid's own cars left out), divided by the silhouette's outline
  length: the mean width of the halo that carries background colours;
- **bite in** (px): the same for what the matte takes off the car (1 - alpha summed over
  pixels whose true alpha is 1).

The composites have the hard edges of binary masks, so the figures compare variants of
the edge; they are not the edge quality on real photos. Variants: ``default``,
``epsX`` (guided filter regularisation), ``radiusN`` (its window on the working canvas),
``contrastL-H`` (soft threshold of the net's probability), ``edgecontrastL-H`` or
``edgecontrastnone`` (soft threshold of the final alpha; the default is (0.2, 0.8)),
``refined`` (the edge refiner, ``--refiner FILE`` or the shipped
``weights/edge_refiner.safetensors``), ``refineramp`` (the refiner under the net's CPU
autocast), joined with ``+`` (``eps1e-3+radius3``, ``refined+refineramp``).
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
from quality_data import load_camvid, load_carvana  # noqa: E402

SIZE = (1200, 800)  # (W, H) of the composites


def composites(data: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rgb uint8, true alpha float32, ignore bool) per car, each on a CamVid frame."""
    cars, frames = load_carvana(data), load_camvid(data)
    out = []
    for i, car in enumerate(cars):
        bg = frames[i % len(frames)]
        h, w = car.mask.shape
        back = cv2.resize(bg.image, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        theirs = cv2.resize(bg.cars.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        # the car large and low in the frame, as a dealer photographs it
        ys, xs = np.nonzero(car.mask)
        s = 0.8 * w / (xs.max() - xs.min() + 1)
        m = np.float32([[s, 0, w / 2 - s * (xs.min() + xs.max()) / 2], [0, s, 0.92 * h - s * ys.max()]])
        rgb = cv2.warpAffine(car.image.astype(np.float32), m, (w, h), flags=cv2.INTER_AREA)
        alpha = cv2.warpAffine(car.mask.astype(np.float32), m, (w, h), flags=cv2.INTER_AREA)
        comp = alpha[..., None] * rgb + (1 - alpha[..., None]) * back
        comp = cv2.resize(comp, SIZE, interpolation=cv2.INTER_AREA).round().clip(0, 255).astype(np.uint8)
        true = cv2.resize(alpha, SIZE, interpolation=cv2.INTER_AREA)
        ignore = cv2.dilate(cv2.resize(theirs, SIZE, interpolation=cv2.INTER_NEAREST), np.ones((9, 9), np.uint8)) > 0
        out.append((comp, true, ignore & (true < 0.01)))
    return out


def measure(alpha: np.ndarray, true: np.ndarray, ignore: np.ndarray) -> dict[str, float]:
    inside = true >= 0.5
    outline = float(cv2.morphologyEx(inside.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).sum()) / 2
    pred = alpha >= 0.5
    iou = float((pred & inside).sum() / max((pred | inside).sum(), 1))
    out = float(alpha[(true < 0.01) & ~ignore].sum()) / max(outline, 1.0)
    bite = float((1 - alpha[true > 0.99]).sum()) / max(outline, 1.0)
    return {"iou": iou, "fringe_out": out, "bite_in": bite}


def options(variant: str, refiner: Path | None = None) -> dict:
    opts: dict = {}
    for part in variant.split("+"):
        if part == "default":
            continue
        if part == "refined":
            opts["edge_refiner"] = loaders.load_edge_refiner(path=refiner)
            continue
        if part == "refineramp":
            opts["refiner_amp"] = True
            continue
        if part.startswith("eps"):
            opts["eps"] = float(part[3:])
        elif part.startswith("radius"):
            opts["radius"] = int(part[6:])
        elif part.startswith("edgecontrast"):  # edgecontrast0.1-0.9, edgecontrastnone
            spec = part[12:]
            opts["edge_contrast"] = None if spec == "none" else tuple(float(v) for v in spec.split("-"))
        elif part.startswith("contrast"):
            low, high = part[8:].split("-")
            opts["contrast"] = (float(low), float(high))
        else:
            raise SystemExit(f"unknown variant part {part!r}")
    return opts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--variants", default="default,refined")
    ap.add_argument("--refiner", type=Path, default=None, help="edge refiner weights for 'refined' (default: shipped)")
    ap.add_argument("--model", default=None, help="matte net (bgr_core.loaders.MATTE_MODELS; default: the pipeline's)")
    args = ap.parse_args(argv)
    if not (args.data / "masks" / "carvana").is_dir():
        print(f"no data at {args.data}")
        return 1
    scenes = composites(args.data)
    net = loaders.load_matte_net(args.model or loaders.DEFAULT_MATTE_MODEL, torch.device("cpu"))
    print(f"{len(scenes)} composites of held-out cars on CamVid frames, {SIZE[0]}x{SIZE[1]}")
    print(f"{'variant':<34}{'IoU':>8}{'fringe out px':>15}{'bite in px':>12}")
    for variant in args.variants.split(","):
        stage = VehicleMatte.fast(net, **options(variant, args.refiner))
        rows = []
        for rgb, true, ignore in scenes:
            frame = Frame(image=torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
            (done,) = stage([frame])
            alpha = np.zeros(true.shape, np.float32) if done.alpha is None else done.alpha[0].float().numpy()
            rows.append(measure(alpha, true, ignore))
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"{variant:<34}{mean['iou']:>8.4f}{mean['fringe_out']:>15.2f}{mean['bite_in']:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
