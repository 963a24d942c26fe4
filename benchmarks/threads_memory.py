"""Threads and memory: one Pipeline shared by many threads, and RSS over many calls.

    python benchmarks/threads_memory.py                       # 8 threads x 50 calls, then 1000 calls
    python benchmarks/threads_memory.py --full-segment        # the default (slow) segment stage

Part 1: 8 threads x 50 calls on one Pipeline must give the same PNG bytes as serial
calls, with U2NetP loaded once (the segment stage object never changes).
Part 2: 1000 small calls in a row; RSS (from /proc/self/statm) is printed every 100
calls; the growth between call 200 and call 1000 must stay under --max-growth-mb.

By default the segment stage runs U2NetP once at 96 px (no flip, no crop pass) so a
call costs ~0.1-0.3 s on a CPU; everything else is the real pipeline.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bgr_core import Pipeline, loaders  # noqa: E402
from bgr_core.stages.segment import VehicleMatte  # noqa: E402
from bgr_core.testing import synthetic_car_scene  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--per-thread", type=int, default=50)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--size", default="120x160", help="HxW of the synthetic scene")
    ap.add_argument("--full-segment", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--max-growth-mb", type=float, default=50.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    h, w = (int(v) for v in args.size.split("x"))

    loads = []
    real_load = loaders.load_matte_net

    def counting(*a, **k):
        loads.append(a)
        return real_load(*a, **k)

    loaders.load_matte_net = counting
    pipe = Pipeline("cpu")
    if not args.full_segment:
        fast = VehicleMatte(pipe.segment.net, net_size=96, flip=False, crop_pass=False)
        pipe = Pipeline("cpu", components={"segment": fast})
    segment = pipe.segment
    images = [synthetic_car_scene(h, w, s).image for s in range(4)]
    options = [
        {"effect": "none", "window_correction": "none"},
        {"effect": "none", "window_correction": "none", "background": "transparent_background"},
        {"effect": "shadow", "window_correction": "none", "layout": "crop"},
        {"effect": "none", "window_correction": "none", "layout": "center", "output_size": "96x64"},
    ]
    jobs = [(i % 4, (i // 4) % 4) for i in range(args.threads * args.per_thread)]

    # -- part 1: threads -------------------------------------------------------------------
    t0 = time.perf_counter()
    serial = {}
    for im, op in sorted(set(jobs)):
        serial[im, op] = pipe.remove_background(image_file=images[im], **options[op]).encode("png")
    t_serial = time.perf_counter() - t0
    results: dict[int, bytes] = {}
    errors: list[str] = []

    def worker(k: int) -> None:
        for n in range(args.per_thread):
            idx = k * args.per_thread + n
            im, op = jobs[idx]
            try:
                results[idx] = pipe.remove_background(image_file=images[im], **options[op]).encode("png")
            except Exception as err:
                errors.append(repr(err))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_threads = time.perf_counter() - t0
    mismatches = sum(results.get(i) != serial[jobs[i]] for i in range(len(jobs)))
    print(f"threads: {args.threads} x {args.per_thread} = {len(jobs)} calls in {t_threads:.1f} s "
          f"({len(set(jobs))} distinct serial calls in {t_serial:.1f} s); "
          f"exceptions {len(errors)}, results differing from serial {mismatches}, "
          f"U2NetP loads {len(loads)}, same segment stage {pipe.segment is segment}")

    # -- part 2: memory ----------------------------------------------------------------------
    gc.collect()
    marks = []
    t0 = time.perf_counter()
    for i in range(args.calls):
        im, op = i % 4, (i // 4) % 4
        r = pipe.remove_background(image_file=images[im], **options[op])
        if not r.ok:
            print(f"call {i}: {r.error}: {r.error_description}")
        del r
        if (i + 1) % 100 == 0:
            gc.collect()
            marks.append((i + 1, rss_mb()))
            print(f"  {i + 1:5d} calls  RSS {marks[-1][1]:.1f} MB  {time.perf_counter() - t0:.0f} s", flush=True)
    t_calls = time.perf_counter() - t0
    base = dict(marks).get(200, marks[0][1]) if marks else rss_mb()
    growth = (marks[-1][1] - base) if marks else 0.0
    print(f"memory: {args.calls} calls in {t_calls:.1f} s ({t_calls / max(args.calls, 1) * 1000:.0f} ms/call); "
          f"RSS {marks[0][1]:.1f} MB after 100 -> {marks[-1][1]:.1f} MB after {args.calls}; "
          f"growth after call 200: {growth:+.1f} MB; U2NetP loads {len(loads)}")
    ok = not errors and mismatches == 0 and len(loads) <= 1 and pipe.segment is segment and growth < args.max_growth_mb
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
