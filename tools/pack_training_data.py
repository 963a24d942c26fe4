"""Pack the vehicle net's training data into a small copy, for a machine without ``../shared``.

A lent GPU machine gets the repository and whatever a call carries, 64 MiB in all
(weights/README.md: a run on a lent GPU). This writes, under `--out`, the part of
``shared/data`` that `tools/train_vehicle_net.py` reads, in the same layout, within
`--budget-mb`:

- ``carparts/annotations.json`` with the images that are not held out (odd COCO ids:
  the training and selection photos; the held-out half never travels) and their JPEGs,
  as they are;
- ``carvana/``: the selection cars' views that `train_vehicle_net.SelectionSet` reads,
  then training cars in a fixed order (by the hash rank of `vehicle_data.splits`), each
  with the views `--views`, photos and masks as they are, until the budget is spent;
- nothing of ``masks/carvana`` (the report cars never travel; without them, the split
  of the packed cars is the same as in ``shared/``: the selection cars stay the first 14
  by rank, and the report cars are not there to be trained on).

Files are copied unchanged (no re-encoding). The split is checked on the copy before it
is kept. Deterministic: the same shared/ and options give the same files.

    python tools/pack_training_data.py --out .pack/data      # then carry .pack to the machine
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools")]

import vehicle_data as V  # noqa: E402

SELECT_VIEWS = ("01", "05", "09", "13")  # train_vehicle_net.SelectionSet's views
EVERY_OTHER = tuple(f"{v:02d}" for v in range(1, 17, 2))


def _carvana_files(data: Path, car: str, view: str) -> list[tuple[Path, str]]:
    return [(data / "carvana" / "images" / f"{car}_{view}.jpg", f"carvana/images/{car}_{view}.jpg"),
            (data / "carvana" / "labels" / f"{car}_{view}_mask.gif", f"carvana/labels/{car}_{view}_mask.gif")]


def plan(data: Path, budget: int, views: tuple[str, ...]) -> tuple[dict, list[tuple[Path, str]], list[str], dict]:
    """(annotations to write, files to copy as (source, relative target), training cars
    packed, the splits of `data`)."""
    sp = V.splits(data)
    ann = json.loads((data / "carparts" / "annotations.json").read_text())
    keep = {i for i in sp["carparts_train"] + sp["carparts_select"]}
    ann = {**ann, "images": [im for im in ann["images"] if im["id"] in keep],
           "annotations": [a for a in ann["annotations"] if a["image_id"] in keep]}
    files = [(data / "carparts" / "JPEGImages" / im["file_name"], f"carparts/JPEGImages/{im['file_name']}")
             for im in ann["images"]]
    for car in sp["carvana_select"]:
        for view in SELECT_VIEWS:
            files += _carvana_files(data, car, view)
    used = len(json.dumps(ann)) + sum(src.stat().st_size for src, _ in files)
    if used > budget:
        raise SystemExit(f"the carparts photos and the selection cars alone take {used / 1e6:.1f} MB, over the "
                         f"budget of {budget / 1e6:.1f} MB")
    cars = []
    for car in sorted(sp["carvana_train"], key=V.car_rank):
        mine = [f for view in views for f in _carvana_files(data, car, view) if f[0].exists()]
        size = sum(src.stat().st_size for src, _ in mine)
        if not mine or used + size > budget:
            break
        files += mine
        used += size
        cars.append(car)
    return ann, files, cars, sp


def pack(data: Path, out: Path, budget: int, views: tuple[str, ...]) -> tuple[list[str], dict]:
    """Write the packed copy (replacing `out`); returns the training cars it holds and the
    copy's splits."""
    ann, files, cars, full = plan(data, budget, views)
    if out.exists():
        shutil.rmtree(out)
    (out / "carparts").mkdir(parents=True)
    (out / "carparts" / "annotations.json").write_text(json.dumps(ann))
    for src, rel in files:
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    packed = V.splits(out)
    if packed["carvana_select"] != full["carvana_select"] or packed["carparts_select"] != full["carparts_select"]:
        raise RuntimeError("the packed copy's selection split differs from shared/'s")
    if set(packed["carvana_train"]) != set(cars) or set(packed["carparts_train"]) != set(full["carparts_train"]):
        raise RuntimeError("the packed copy's training split is not what was packed")
    return cars, packed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / ".pack" / "data")
    ap.add_argument("--budget-mb", type=float, default=46.0, help="size of the copy, 1 MB = 1e6 bytes")
    ap.add_argument("--views", default=",".join(EVERY_OTHER), help="views of each training car (01..16)")
    args = ap.parse_args(argv)
    views = tuple(f"{int(v):02d}" for v in args.views.split(","))
    cars, packed = pack(args.data, args.out, int(args.budget_mb * 1e6), views)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total / 1e6:.1f} MB, {len(cars)} training cars x {len(views)} views, "
          f"{len(packed['carparts_train'])} carparts training photos, the selection split as in {args.data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
