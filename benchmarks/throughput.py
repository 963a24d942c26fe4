"""Throughput of the whole pipeline on a folder of photos: images/s and per-stage ms.

    python benchmarks/throughput.py [--data ../shared/data/carparts/JPEGImages] [--limit 16]
                                    [--device cpu[,cuda]] [--batch 1,4] [--sizes native,1024]
                                    [--modes default,fast,fast@224] [--workers 2] [--rounds 2]
    python benchmarks/throughput.py --scaling 10,100,400 [--scaling-side 256] [--modes fast]

The request is the web API's usual one: white background, shadow, centre layout (and
window correction, on by default), each output encoded (jpg) and written to a temporary
folder, so decode → matte → windows → shadow → layout → background → encode are all
counted. ``native`` runs the photos as they are; ``1024`` first resizes each photo so its
long side is 1024 px (written as jpg quality 95 to a temporary folder, so decoding is
still timed). For each device x batch size x size x mode it prints images/s (wall clock
over the folder, after a one-image warm-up; the median over `--rounds`, configurations
alternating round by round) and the mean milliseconds of each stage from
``Result.timings`` (a batch's time split evenly over its images; decode and encode run on
worker threads, so their sum can exceed the wall time per image).

``--scaling`` runs N images (the folder repeated when it holds fewer) each in a fresh
process and prints wall time, images/s and peak RSS (``ru_maxrss``): time should grow
linearly and peak memory stay flat, bounded by the batch size rather than N.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "carparts" / "JPEGImages"
REQUEST = {"background": "white_background", "effect": "shadow", "layout": "center"}
STAGES = ("decode", "segment", "windows", "shadow", "layout", "background", "encode")


def list_images(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    return files[:limit] if limit else files


def resized_copies(files: list[Path], side: int, dest: Path) -> list[Path]:
    """Each photo resized so its long side is `side` px, as jpg (quality 95) in `dest`."""
    from PIL import Image

    out = []
    dest.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert("RGB")
            scale = side / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
            path = dest / f"{i:05d}-{f.stem}.jpg"
            im.save(path, quality=95)
        out.append(path)
    return out


def run_folder(pipe, files: list[Path]) -> tuple[float, dict[str, float], int]:
    """(wall seconds, mean ms per stage, errors) for `files` through `pipe`."""
    sums: dict[str, float] = {}
    errors = 0
    start = time.perf_counter()
    for result in pipe.remove_backgrounds(files, **REQUEST):
        if not result.ok:
            errors += 1
            continue
        for k, v in result.timings.items():
            sums[k] = sums.get(k, 0.0) + v
    wall = time.perf_counter() - start
    done = max(1, len(files) - errors)
    return wall, {k: v / done for k, v in sums.items()}, errors


def mode_options(mode: str) -> dict:
    """"default" (the Pipeline's, which is fast), "fast", "thorough" (fast=False), each
    optionally with "@N" (net input NxN, e.g. "fast@224")."""
    name, _, size = mode.partition("@")
    if name not in ("default", "fast", "thorough"):
        raise SystemExit(f"mode must be default, fast or thorough (optionally @N), got {mode!r}")
    return {"fast": name != "thorough", "net_size": int(size) if size else None}


def make_pipeline(device: str, batch: int, mode: str, workers: int, out: Path):
    from bgr_core import Pipeline

    return Pipeline(device, batch_size=batch, workers=workers, output_dir=out, **mode_options(mode))


def bench(args) -> None:
    import torch

    files = list_images(Path(args.data), args.limit)
    if not files:
        sys.exit(f"no images in {args.data}")
    devices = [d for d in args.device.split(",") if d != "cuda" or torch.cuda.is_available()]
    tmp = Path(tempfile.mkdtemp(prefix="bgr-throughput-"))
    sets = {}
    for size in args.sizes.split(","):
        sets[size] = files if size == "native" else resized_copies(files, int(size), tmp / f"in-{size}")
    configs = list(itertools.product(devices, [int(b) for b in args.batch.split(",")], sets, args.modes.split(",")))
    pipes = {}
    for device, batch, size, mode in configs:
        pipe = make_pipeline(device, batch, mode, args.workers, tmp / "out")
        list(pipe.remove_backgrounds(sets[size][:1], **REQUEST))  # warm-up: weights, kernels
        pipes[(device, batch, size, mode)] = pipe
    runs: dict[tuple, list] = {c: [] for c in configs}
    for _ in range(args.rounds):  # configurations alternate, round by round
        for c in configs:
            runs[c].append(run_folder(pipes[c], sets[c[2]]))
    print(f"{len(files)} images from {args.data}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; request {REQUEST} (+ window correction)")
    head = ["device", "batch", "size", "mode", "img/s", "rounds img/s"] + list(STAGES)
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    rows = []
    for c in configs:
        rates = [len(files) / wall for wall, _, _ in runs[c]]
        ms = {k: statistics.median(r[1].get(k, 0.0) for r in runs[c]) for k in STAGES}
        rows.append({"config": c, "images_per_s": statistics.median(rates), "stage_ms": ms,
                     "errors": runs[c][-1][2]})
        print(" | ".join([*map(str, c), f"{statistics.median(rates):.2f}",
                          " ".join(f"{r:.2f}" for r in rates), *(f"{ms[k]:.0f}" for k in STAGES)]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def scaling_child(args) -> None:
    """One scaling run in this (fresh) process: prints a JSON line."""
    from bgr_core import Pipeline

    files = list_images(Path(args.data), None)
    n = args.scaling_child
    files = list(itertools.islice(itertools.cycle(files), n))
    with tempfile.TemporaryDirectory() as out:
        pipe = Pipeline(args.device.split(",")[0], batch_size=int(args.batch.split(",")[0]),
                        workers=args.workers, output_dir=out, **mode_options(args.modes.split(",")[0]))
        list(pipe.remove_backgrounds(files[:1], **REQUEST))
        start = time.perf_counter()
        errors = sum(not r.ok for r in pipe.remove_backgrounds(files, **REQUEST))
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB on Linux
    print(json.dumps({"n": n, "wall_s": wall, "peak_rss_mb": peak, "errors": errors}))


def scaling(args) -> None:
    src = list_images(Path(args.data), args.limit)
    tmp = Path(tempfile.mkdtemp(prefix="bgr-scaling-"))
    small = resized_copies(src, args.scaling_side, tmp / "in")
    print(f"scaling: {len(small)} distinct images, long side {args.scaling_side} px, device "
          f"{args.device.split(',')[0]}, batch {args.batch.split(',')[0]}, mode {args.modes.split(',')[0]}")
    print("images | wall s | s/image | img/s | peak RSS MiB | errors")
    print("--- | --- | --- | --- | --- | ---")
    for n in [int(v) for v in args.scaling.split(",")]:
        cmd = [sys.executable, __file__, "--data", str(tmp / "in"), "--device", args.device, "--batch", args.batch,
               "--modes", args.modes, "--workers", str(args.workers), "--scaling-child", str(n)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(line)
        print(f"{n} | {r['wall_s']:.1f} | {r['wall_s'] / n:.3f} | {n / r['wall_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r['errors']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--device", default="cpu", help="comma-separated: cpu,cuda (cuda skipped when absent)")
    ap.add_argument("--batch", default="4", help="comma-separated batch sizes")
    ap.add_argument("--sizes", default="native,1024", help="comma-separated: native and/or a long side in px")
    ap.add_argument("--modes", default="default,fast", help="comma-separated: default, fast (Pipeline(fast=True), the default), thorough (fast=False), each optionally @N for Pipeline(net_size=N)")
    ap.add_argument("--workers", type=int, default=2, help="decode/encode threads")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--scaling", help="comma-separated image counts, e.g. 10,100,400")
    ap.add_argument("--scaling-side", type=int, default=256, help="long side of the scaling images")
    ap.add_argument("--scaling-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.scaling_child:
        scaling_child(args)
    elif args.scaling:
        scaling(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
