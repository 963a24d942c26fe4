"""Load on a live `bgr serve`: N concurrent clients send M requests in all.

    python benchmarks/serve_load.py [--clients 16] [--requests 200] [--photos DIR]
                                    [--layout center] [--device cpu]

A server (the same app `bgr serve` runs) is started in this process on 127.0.0.1, and
`--clients` threads post multipart uploads (as the web API's snippets do) until
`--requests` are answered. Printed: requests/s, p50 / p95 latency, errors by code, the
process RSS after warm-up and at the end (growth shows a leak), then the in-process
batched path (`Pipeline.remove_backgrounds` with `output_dir`, the same photos,
parameters and pipeline settings) and the ratio of the two (goal >= 0.8).

Photos: the first 32 carparts photos from ../shared/data (or `--photos`), else the
repository's examples/car.jpg. The RSS is also sampled at each quarter of the requests:
the pipeline's working memory is reached in the first batches and then stays.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _photos(folder: Path | None, limit: int) -> list[bytes]:
    if folder is None:
        folder = ROOT.parent / "shared" / "data" / "carparts" / "JPEGImages"
    paths = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    chosen = paths[:limit] or [ROOT / "examples" / "car.jpg"]
    return [p.read_bytes() for p in chosen]


def main(argv=None) -> int:
    import requests
    import uvicorn

    from bgr_core import Pipeline
    from bgr_core.output_store import OutputStore
    from bgr_core.server import create_app

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--photos", type=Path, default=None)
    ap.add_argument("--layout", default="center")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    photos = _photos(args.photos, 32)
    params = {"layout": args.layout}

    pipe = Pipeline(args.device, allow_files=False)
    pipe.remove_background(image_file=photos[0], **params)  # load and warm up
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v2/remove-background"
    server = uvicorn.Server(uvicorn.Config(create_app(pipe, store=OutputStore(keep=args.requests + 10),
                                                      max_queue=4 * args.clients), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    counter = iter(range(args.requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    rss_quarters: list[float] = []

    def client(_: int) -> None:
        session = requests.Session()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                r = session.post(url, data=params, files={"image_file": ("car.jpg", photos[i % len(photos)])}, timeout=600)
                code = r.json().get("error", "") if r.headers.get("content-type", "").startswith("application/json") else f"http {r.status_code}"
            except Exception as err:
                code = type(err).__name__
            with lock:
                latencies.append(time.perf_counter() - start)
                if len(latencies) % max(1, args.requests // 4) == 0:
                    rss_quarters.append(_rss_mb())
                if code:
                    errors[code] = errors.get(code, 0) + 1

    rss_start = _rss_mb()
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(client, range(args.clients)))
    served = time.perf_counter() - start
    rss_end = _rss_mb()
    server.should_exit = True
    thread.join(60)

    latencies.sort()
    rate = len(latencies) / served
    print(f"{args.clients} clients, {len(latencies)} requests, {len(photos)} photos, params {params}, {pipe}")
    print(f"  served:     {rate:.2f} requests/s, latency p50 {statistics.median(latencies):.2f} s, "
          f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s, errors {errors or 0}")
    quarters = ", ".join(f"{r:.0f}" for r in rss_quarters)
    print(f"  RSS:        {rss_start:.0f} MB after warm-up, {quarters} MB at each quarter, {rss_end:.0f} MB at the end")

    with tempfile.TemporaryDirectory() as out:
        batch = Pipeline(args.device, allow_files=False, output_dir=out)
        batch.remove_background(image_file=photos[0], **params)
        items = [photos[i % len(photos)] for i in range(args.requests)]
        start = time.perf_counter()
        n = sum(1 for r in batch.remove_backgrounds(items, **params) if r.ok)
        direct = len(items) / (time.perf_counter() - start)
    print(f"  in-process: {direct:.2f} images/s ({n} ok) with remove_backgrounds(output_dir=...)")
    print(f"  ratio:      {rate / direct:.2f} (goal >= 0.8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
