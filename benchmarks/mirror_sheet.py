"""Contact sheet of door mirrors: two vehicle-net weights side by side, zoomed on mirrors.

    python benchmarks/mirror_sheet.py --a OLD.safetensors --b NEW.safetensors -o /tmp/mirrors.png

(the net shipped until 5 December 2026, for instance: ``git show
f28c1e2:weights/u2netp_vehicle.safetensors > /tmp/vehicle_step900.safetensors``)

For carparts photos with a labelled door mirror (held-out half by default), each tile is
a crop around one mirror (its box grown 2.5x): the photo with the labelled mirror
outlined (yellow), the default matte's outline with weights A (red; default: the
shipped file) and with weights B (green), and B's cut-out on white. Photos are ordered
by A's mirror recall, worst first, so the sheet shows where A loses mirrors and what B
does there. Each tile is labelled with the photo and both recalls.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
DATA = ROOT.parent / "shared" / "data"
TILE = 200


def _matte(stage, image: np.ndarray) -> np.ndarray:
    from bgr_core.frame import Frame

    out = stage([Frame(image=torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255))])[0]
    return np.zeros(image.shape[:2], np.float32) if out.alpha is None else out.alpha[0].numpy()


def _outline(image: np.ndarray, mask: np.ndarray, colour, width: int) -> np.ndarray:
    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, width)
    return out


def _crops(mirrors: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) around each mirror component, grown 2.5x and at least 64 px."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mirrors.astype(np.uint8))
    h, w = mirrors.shape
    boxes = []
    for x, y, bw, bh, area in stats[1:]:
        if area < 16:
            continue
        side = max(64, int(2.5 * max(bw, bh)))
        cy, cx = y + bh // 2, x + bw // 2
        y0, x0 = max(0, cy - side // 2), max(0, cx - side // 2)
        boxes.append((y0, min(h, y0 + side), x0, min(w, x0 + side)))
    return boxes


def main(argv=None) -> int:
    from quality_data import load_carparts

    from bgr_core.loaders import load_edge_refiner, load_matte_net
    from bgr_core.stages.segment import VehicleMatte

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, default=None, help="weights A (default: the shipped vehicle net)")
    ap.add_argument("--b", type=Path, required=True, help="weights B")
    ap.add_argument("--split", default="held", help="carparts split: held, fit or all")
    ap.add_argument("--photos", type=int, default=24, help="at most this many photos, worst for A first")
    ap.add_argument("-o", "--out", type=Path, default=Path(tempfile.gettempdir()) / "mirror_sheet.png")
    args = ap.parse_args(argv)

    refiner = load_edge_refiner("cpu")
    stages = [VehicleMatte.fast(load_matte_net("u2netp_vehicle", "cpu", w), cpu_amp_dtype="auto", edge_refiner=refiner)
              for w in (args.a, args.b)]
    rows = []
    for s in load_carparts(DATA, split=args.split):
        if not s.mirrors.any():
            continue
        a, b = (_matte(st, s.image) >= 0.5 for st in stages)
        rec = [float((m & s.mirrors).sum() / s.mirrors.sum()) for m in (a, b)]
        rows.append((rec[0], s, a, b, rec))
    rows.sort(key=lambda r: r[0])
    tiles = []
    for _, s, a, b, rec in rows[: args.photos]:
        width = max(1, s.image.shape[0] // 300)
        shown = _outline(_outline(_outline(s.image, s.mirrors, (255, 230, 0), width), a, (255, 0, 0), width),
                         b, (0, 200, 0), width)
        cut = (s.image * b[..., None] + 255 * (1 - b[..., None])).astype(np.uint8)
        for y0, y1, x0, x1 in _crops(s.mirrors):
            pair = [cv2.resize(t[y0:y1, x0:x1], (TILE, TILE), interpolation=cv2.INTER_AREA) for t in (shown, cut)]
            tile = np.concatenate(pair, axis=1)
            cv2.putText(tile, f"{s.name} A {rec[0]:.2f} B {rec[1]:.2f}", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                        (255, 255, 255), 2)
            cv2.putText(tile, f"{s.name} A {rec[0]:.2f} B {rec[1]:.2f}", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                        (0, 0, 0), 1)
            tiles.append(tile)
    if not tiles:
        print("no photo with a labelled mirror")
        return 1
    per_row = 3
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % per_row)
    sheet = np.concatenate([np.concatenate(tiles[i : i + per_row], axis=1) for i in range(0, len(tiles), per_row)])
    cv2.imwrite(str(args.out), sheet[..., ::-1])
    recs = np.array([r[4] for r in rows])
    print(f"wrote {args.out}: {len(tiles)} mirrors of {min(len(rows), args.photos)} photos; over all {len(rows)} "
          f"photos with a mirror, recall A {recs[:, 0].mean():.4f} B {recs[:, 1].mean():.4f}, "
          f"below 0.5: A {(recs[:, 0] < 0.5).sum()} B {(recs[:, 1] < 0.5).sum()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
