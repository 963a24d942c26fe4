"""bgr_core next to rembg, same photos, same U2NetP weights, timed in one run.

rembg is not a dependency of this project: it lives in the benchmark's own
environment. Exact setup used (the torch wheels come from the local wheel cache):

    python3 -m venv ../rembg-venv                 # from the checkout, beside it
    ../rembg-venv/bin/pip install rembg onnxruntime
    ../rembg-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    ../rembg-venv/bin/pip install -e .            # bgr_core itself
    ../rembg-venv/bin/python benchmarks/peer_rembg.py --limit 16 --rounds 3

rembg side: ``rembg.remove(jpeg_bytes, session=new_session("u2netp"))`` → PNG bytes
written to disk (decode, resize to 320, ONNX Runtime net, mask resize, cut-out, encode).
Its model file is ``../shared/models/u2netp.onnx`` copied into a temporary
``U2NET_HOME``; rembg checks the file's md5 (8e83ca70e441ab06c318d82300c84806) and only
downloads on a mismatch. The script checks the md5 itself and makes every socket
connection fail (and counts the attempts) while rembg runs, so a download cannot happen
silently; it reports the count (must be 0).

bgr_core side: ``Pipeline(...).remove_backgrounds(paths, background="white_background",
effect="shadow", layout="center")`` with window correction on (its default), outputs
encoded as jpg and written to disk: more work per photo than rembg's cut-out.
``--thorough`` / ``--net-size 224`` / ``--window-correction none`` pick bgr_core's
throughput options (its batches run on two threads on the CPU: ``Pipeline(streams=2)``).

Both run over the same N photos, alternating round by round (rembg, bgr, rembg, ...),
after a warm-up each; the median images/s of each tool and their ratio are printed, and
the CPU seconds each thread spent during bgr_core's rounds (`thread_cpu.py`): one by one
(`--one-call`), besides the main thread torch's worker is expected, and another busy
thread takes cores from it; batched, the stream and I/O threads end with each call and
count as "threads that ended".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import thread_cpu  # noqa: E402

ONNX = ROOT.parent / "shared" / "models" / "u2netp.onnx"
MD5 = "8e83ca70e441ab06c318d82300c84806"
DATA = ROOT.parent / "shared" / "data" / "carparts" / "JPEGImages"
REQUEST = {"background": "white_background", "effect": "shadow", "layout": "center"}

NETWORK_ATTEMPTS: list[str] = []


def _resized(files: list[Path], width: int, folder: Path) -> list[Path]:
    """Copies of `files` resized to `width` px wide (aspect kept), JPEG quality 92."""
    from PIL import Image

    folder.mkdir(parents=True)
    out = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert("RGB")
            size = (width, max(1, round(im.height * width / im.width)))
            im.resize(size, Image.LANCZOS).save(folder / f"{p.stem}.jpg", quality=92)
        out.append(folder / f"{p.stem}.jpg")
    return out


def _block_network() -> None:
    """Every outgoing connection raises and is recorded."""

    def refuse(self, address, *a, **k):
        NETWORK_ATTEMPTS.append(repr(address))
        raise OSError(f"network disabled by peer_rembg.py (tried {address!r})")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = lambda address, *a, **k: refuse(None, address)  # type: ignore[assignment]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--width", type=int, default=None,
                    help="each photo resized (Lanczos) to this width first and saved as JPEG quality 92: photo sizes "
                         "as published (e.g. --data ../shared/data/photos --width 2000: about 2.2-3 MP)")
    ap.add_argument("--thorough", action="store_true", help="bgr_core with Pipeline(fast=False)")
    ap.add_argument("--window-correction", default="tint", help="bgr_core's window_correction")
    ap.add_argument("--net-size", type=int, default=None, help="bgr_core's Pipeline(net_size=...), default 320")
    ap.add_argument("--matte-model", default=None,
                    help="bgr_core's Pipeline(matte_model=...); with --one-call, remove_background(pipeline=Pipeline(matte_model=...)) "
                         "with every other option at its default")
    ap.add_argument("--no-refine-edges", action="store_true", help="bgr_core's Pipeline(refine_edges=False)")
    ap.add_argument("--one-call", action="store_true",
                    help="bgr_core as most users call it: remove_background(image_file=...) with its defaults "
                         "(white, shadow, window correction; layout center as rembg's peers), one photo at a time, "
                         "each result saved as jpg")
    args = ap.parse_args(argv)

    digest = hashlib.md5(ONNX.read_bytes()).hexdigest()
    if digest != MD5:
        sys.exit(f"{ONNX} has md5 {digest}, expected {MD5}")
    home = Path(tempfile.mkdtemp(prefix="u2net-home-"))
    shutil.copy(ONNX, home / "u2netp.onnx")
    os.environ["U2NET_HOME"] = str(home)
    _block_network()

    import onnxruntime
    import rembg
    import torch

    from bgr_core import Pipeline

    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files = files[: args.limit]
    out = Path(tempfile.mkdtemp(prefix="peer-out-"))
    if args.width is not None:
        files = _resized(files, args.width, out / "photos")
    session = rembg.new_session("u2netp")
    options = {} if args.matte_model is None else {"matte_model": args.matte_model}
    pipe = Pipeline("cpu", batch_size=args.batch, workers=args.workers, fast=not args.thorough, net_size=args.net_size,
                    output_dir=out / "bgr", refine_edges=not args.no_refine_edges, **options)
    params = {**REQUEST, "window_correction": args.window_correction}
    # the one-call user's pipeline is the shared default; another matte net needs its own
    one_pipe = Pipeline("cpu", matte_model=args.matte_model) if args.one_call and args.matte_model else None
    (out / "rembg").mkdir(parents=True)

    def run_rembg(paths) -> float:
        start = time.perf_counter()
        for p in paths:
            (out / "rembg" / f"{p.stem}.png").write_bytes(rembg.remove(p.read_bytes(), session=session))
        return time.perf_counter() - start

    thread_cpu_s: dict[str, float] = {}
    bgr_wall = [0.0]

    def run_bgr(paths) -> float:
        cpu_before = thread_cpu.snapshot()
        start = time.perf_counter()
        if args.one_call:
            from bgr_core import remove_background

            (out / "one").mkdir(exist_ok=True)
            one_options = {} if one_pipe is None else {"pipeline": one_pipe}
            results = []
            for p in paths:
                results.append(remove_background(image_file=str(p), layout="center", **one_options))
                if results[-1].ok:
                    results[-1].save(out / "one" / f"{p.stem}.jpg")
        else:
            results = list(pipe.remove_backgrounds(paths, **params))
        wall = time.perf_counter() - start
        thread_cpu.add_delta(thread_cpu_s, cpu_before, thread_cpu.snapshot())
        bgr_wall[0] += wall
        for res in results:
            for k, v in res.timings.items():
                stage_ms.setdefault(k, []).append(v)
        bad = [r.error for r in results if not r.ok]
        if bad:
            print(f"  bgr_core: {len(bad)} errors ({', '.join(sorted(set(bad)))})")
        return wall

    stage_ms: dict[str, list[float]] = {}
    run_rembg(files[:1])
    run_bgr(files[:1])
    stage_ms.clear()  # the timed rounds only
    thread_cpu_s.clear()
    bgr_wall[0] = 0.0
    rates: dict[str, list[float]] = {"rembg": [], "bgr_core": []}
    for r in range(args.rounds):
        rates["rembg"].append(len(files) / run_rembg(files))
        rates["bgr_core"].append(len(files) / run_bgr(files))
        print(f"round {r + 1}: rembg {rates['rembg'][-1]:.2f} img/s, bgr_core {rates['bgr_core'][-1]:.2f} img/s")
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{len(files)} photos from {args.data}{f' at {args.width} px wide' if args.width else ''}, {args.rounds} alternating rounds, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
          f"rembg {getattr(rembg, '__version__', '?')}")
    print(f"rembg remove() u2netp (cut-out, png):               {med['rembg']:.2f} img/s")
    mode = ("thorough" if args.thorough else "default (fast)") + (f" net_size={args.net_size}" if args.net_size else "")
    if args.one_call:
        mode, params = "remove_background() one by one, defaults", {"layout": "center"}
    print(f"bgr_core {mode} ({', '.join(f'{k}={v}' for k, v in params.items())}, jpg): "
          f"{med['bgr_core']:.2f} img/s")
    print(f"ratio bgr_core / rembg: {med['bgr_core'] / med['rembg']:.2f}x")
    print("bgr_core ms per stage (median over the timed rounds; a batch's time split over its photos): "
          + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in stage_ms.items()))
    print(f"bgr_core rounds, CPU seconds by thread over {bgr_wall[0]:.1f} s: {thread_cpu.describe(thread_cpu_s, bgr_wall[0])}")
    print(f"network connection attempts: {len(NETWORK_ATTEMPTS)} {NETWORK_ATTEMPTS[:3]}")


if __name__ == "__main__":
    main()
