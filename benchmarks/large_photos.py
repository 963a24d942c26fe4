"""Peak memory and time of one call on large photos (2, 12, 24, 50 MP by default).

    python benchmarks/large_photos.py [--sizes 2,12,24,50] [--photo PATH] [--layout none]
                                      [--params key=value,...] [--work-pixels N|none]

Each size runs in its own fresh process: the pipeline is loaded and warmed up on a small
photo, then one `remove_background` call with the defaults (white, shadow, window tint)
runs on the photo (a shared held-out Carvana photo, or `--photo`) resized to that many
megapixels and encoded as JPEG. Printed per size: the call's wall time and the peak RSS
above the loaded pipeline (``ru_maxrss`` after the call minus RSS before it).
`--params` adds request parameters (``output_size=7000x7000``, ``aspect_ratio=10:1``,
``background=transparent_background``); `--work-pixels` sets the pipeline's working
resolution (``none``: every stage at full size, as before it existed).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "carvana" / "images" / "6d21aad248e4_03.jpg"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _one(mp: float, photo: Path, layout: str, params: dict, work_pixels: int | None) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from PIL import Image

    from bgr_core import Pipeline

    with Image.open(photo) as im:
        im = im.convert("RGB")
        scale = (mp * 1e6 / (im.width * im.height)) ** 0.5
        big = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    data, size = buf.getvalue(), big.size
    del big
    pipe = Pipeline("cpu", work_pixels=work_pixels)
    pipe.remove_background(image_file=np.asarray(im.resize((640, 427))), layout=layout)  # load and warm up
    base = _rss_mb()
    start = time.perf_counter()
    r = pipe.remove_background(image_file=data, layout=layout, **params)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = r.array.shape[1::-1] if r.ok else None
    return {"mp": mp, "size": size, "out": out, "ok": r.ok, "error": r.error, "seconds": wall,
            "peak_above_mb": peak - base}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2,12,24,50")
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--layout", default="none")
    ap.add_argument("--params", default="")
    ap.add_argument("--work-pixels", default="default")
    ap.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    params = dict(kv.split("=", 1) for kv in args.params.split(",") if kv)
    if args.child is not None:
        from bgr_core.functional.full_resolution import WORK_PIXELS

        wp = {"default": WORK_PIXELS, "none": None}.get(args.work_pixels.lower(), None)
        wp = int(args.work_pixels) if args.work_pixels.isdigit() else wp
        print(json.dumps(_one(args.child, args.photo, args.layout, params, wp)))
        return 0
    if not args.photo.exists():
        print(f"no photo at {args.photo}: nothing to measure", file=sys.stderr)
        return 1
    print(f"photo {args.photo.name}, layout {args.layout}, params {params or '-'}, work_pixels {args.work_pixels}; "
          "one call, fresh process per size")
    for mp in (float(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--child", str(mp), "--photo", str(args.photo),
                              "--layout", args.layout, "--params", args.params, "--work-pixels", args.work_pixels],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{mp:5.0f} MP: failed ({out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode})")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        w, h = r["size"]
        state = "ok" if r["ok"] else r["error"]
        out = f" -> {r['out'][0]}x{r['out'][1]}" if r["out"] else ""
        print(f"{mp:5.0f} MP ({w}x{h}{out}): {r['seconds']:6.2f} s, peak RSS +{r['peak_above_mb']:7.0f} MB "
              f"above the loaded pipeline ({state})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
