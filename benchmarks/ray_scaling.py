"""Images/s through Ray Data (`bgr_core.integrations.ray`) with 1 and 2 CPU actors, next
to the single-process batched path, on this machine.

    python benchmarks/ray_scaling.py [--photos N] [--actors 1,2] [--batch-size 4] [--gpu]

Photos: the first N carparts photos of ../shared/data (else copies of examples/car.jpg),
written to a temporary folder; parameters: ``layout=center`` (white, shadow, tint).
Printed: the single-process path (`Pipeline.remove_backgrounds` with `output_dir`, one
process, its default two streams), then for each actor count the Ray path's images/s
(from files to written files, Ray already started, actors started inside the timing)
and its ratio to the single process. `--gpu` adds one GPU actor (needs a GPU).

On a GPU cluster (Ray's batch-inference pattern: one actor per GPU, CPU tasks for
decoding and encoding around them):

    bgr run s3-or-nfs-folder/ -o out/ --engine ray --address auto \\
        --workers <number of GPUs> --gpus-per-worker 1 --batch-size 16 --device cuda
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    import ray

    from bgr_core import Pipeline
    from bgr_core.integrations.ray import process_files

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--actors", default="1,2")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--gpu", action="store_true")
    args = ap.parse_args(argv)
    shared = sorted((ROOT.parent / "shared" / "data" / "carparts" / "JPEGImages").glob("*.jpg"))[: args.photos]
    photos = shared or [ROOT / "examples" / "car.jpg"] * args.photos
    params = {"layout": "center"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        sources = []
        for i, p in enumerate(photos):
            shutil.copy(p, src / f"{i:04d}.jpg")
            sources.append(src / f"{i:04d}.jpg")

        pipe = Pipeline("cpu", batch_size=args.batch_size, output_dir=Path(tmp) / "local")
        pipe.remove_background(image_file=sources[0], **params)  # load and warm up
        start = time.perf_counter()
        ok = sum(r.ok for r in pipe.remove_backgrounds(sources, **params))
        local = len(sources) / (time.perf_counter() - start)
        print(f"{len(sources)} photos, {params}, batch {args.batch_size}")
        print(f"  single process (2 streams): {local:.2f} images/s ({ok} ok)")

        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        runs = [(int(a), 0) for a in args.actors.split(",")] + ([(1, 1)] if args.gpu else [])
        for actors, gpus in runs:
            out = Path(tmp) / f"ray{actors}-{gpus}"
            targets = [out / s.name for s in sources]
            start = time.perf_counter()
            rows = process_files(sources, targets, params, workers=actors, gpus_per_worker=gpus,
                                 batch_size=args.batch_size, device="cuda" if gpus else "cpu")
            rate = len(sources) / (time.perf_counter() - start)
            bad = sum(1 for r in rows if r["error"])
            kind = "GPU" if gpus else "CPU"
            print(f"  ray, {actors} {kind} actor(s): {rate:.2f} images/s ({len(rows) - bad} ok), "
                  f"{rate / local:.2f}x the single process")
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
