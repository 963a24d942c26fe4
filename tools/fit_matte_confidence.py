"""Choose each vehicle net's confidence test (``weights/matte_confidence.json``).

    python tools/fit_matte_confidence.py [--data ../shared/data] [--models u2netp_vehicle_half,u2netp_vehicle]
                                         [--margin 0.15] [--out weights/matte_confidence.json]

`VehicleMatte.fast` gives `NoData` when the main component's mean probability
(`bgr_core.functional.matte.Selection.confidence`) is below ``min_confidence``: the
vehicle net is sure of real vehicles and lukewarm on objects it half takes for one (a
shaded ball, a clock). For each net this measures that confidence on the first pass of
the fast preset (as the stage selects, on the working canvas) over the training side only:

- vehicles: the carparts photos with odd COCO ids (training and checkpoint selection) and
  one random view of each Carvana training car (`tools/vehicle_data.splits`);
- without a vehicle: scikit-image's training photos (`vehicle_backdrops.TRAIN_EMPTY`) and
  40 generated backdrops (printed, not used by the rule).

The threshold is the lowest vehicle confidence less ``--margin``, rounded down to 0.05:
a margin for vehicles harder than the training photos (small, dark, far). The held-out
photos (carparts even ids, the Carvana report cars, CamVid, ``benchmarks/no_vehicle.py``'s
scenes) are never read here. The generic salient-object net is not a vehicle net and gets
no test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import vehicle_data as V  # noqa: E402  (tools/)
from vehicle_backdrops import TRAIN_EMPTY, empty_scenes, synthetic_backdrop  # noqa: E402


def first_pass_confidence(stage, image: np.ndarray) -> float | None:
    """(H, W, 3) uint8 → `VehicleMatte.first_pass_confidence` (None: nothing selected)."""
    return stage.first_pass_confidence(torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div(255.0))


def training_photos(data: Path, seed: int = 0) -> dict[str, list[np.ndarray]]:
    split = V.splits(data)
    ann = json.loads((data / "carparts" / "annotations.json").read_text())
    files = {im["id"]: Path(im["file_name"]).name for im in ann["images"]}
    rng = np.random.default_rng(seed)
    return {
        "carparts (odd ids)": [V.read_rgb(data / "carparts" / "JPEGImages" / files[i])
                               for i in split["carparts_train"] + split["carparts_select"]],
        "Carvana training cars": [V.load_carvana(data, car, f"{rng.integers(1, 17):02d}").image
                                  for car in split["carvana_train"]],
        "scikit-image, no vehicle": empty_scenes(TRAIN_EMPTY),
        "generated backdrops": [synthetic_backdrop(rng, 360, 480) for _ in range(40)],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--models", default="u2netp_vehicle_half,u2netp_vehicle")
    ap.add_argument("--margin", type=float, default=0.15)
    ap.add_argument("--out", type=Path, default=None, help="write the weights file here")
    args = ap.parse_args(argv)
    from bgr_core import loaders
    from bgr_core.stages.segment import VehicleMatte

    torch.set_grad_enabled(False)
    photos = training_photos(args.data)
    table = {}
    for name in args.models.split(","):
        stage = VehicleMatte.fast(loaders.load_matte_net(name, "cpu"), cpu_amp_dtype="auto")
        lowest = math.inf
        for group, images in photos.items():
            found = sorted(c for c in (first_pass_confidence(stage, im) for im in images) if c is not None)
            print(f"{name} ({stage.net_size} px, {'bfloat16' if stage.reduced_precision else 'float32'}), {group}: "
                  f"{len(images)} photos, {len(images) - len(found)} with nothing selected, lowest confidences "
                  f"{', '.join(f'{c:.3f}' for c in found[:5]) or '-'}", flush=True)
            if group in ("carparts (odd ids)", "Carvana training cars") and found:
                lowest = min(lowest, found[0])
        table[name] = math.floor((lowest - args.margin) * 20 + 1e-9) / 20
        print(f"{name}: lowest vehicle {lowest:.3f} -> min_confidence {table[name]:.2f}", flush=True)
    doc = {
        "description": "VehicleMatte.fast's confidence test per matte net: NoData when the main component's "
                       "mean probability (Selection.confidence) is below this; a net not listed is not tested",
        "chosen_by": "python tools/fit_matte_confidence.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rule": f"lowest confidence over the training side's vehicle photos less {args.margin:g}, rounded down to 0.05",
        "min_confidence": table,
    }
    print(json.dumps(doc, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
