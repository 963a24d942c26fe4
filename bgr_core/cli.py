"""`bgr`: photos or folders in, images out.

    bgr car.jpg -o out/                       white background, out/car.jpg
    bgr photos/ -o out/ --background transparent_background
    bgr weights                               where each weight file was found
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .request import BACKGROUNDS, EFFECTS, LAYOUTS, OUTPUT_FORMATS, PLATE_MODES, REFINE_MODES, WINDOW_MODES
from .weights import DEFAULT_MATTE_MODEL, MATTE_MODELS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bgr",
        description="Cut vehicles out of photos and put them on a new background (no network).",
        epilog="`bgr weights` lists every known weight file and where it was found.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images (jpg, png, webp)")
    p.add_argument("-o", "--output", default="bgr-out", help="output folder, or a file name for one input (default: bgr-out)")
    p.add_argument("--background", default="white_background", choices=BACKGROUNDS)
    p.add_argument("--background-file", help="image for --background custom_background")
    p.add_argument("--layout", default="none", choices=LAYOUTS)
    p.add_argument("--effect", default="shadow", choices=EFFECTS)
    p.add_argument("--shadow-strength", type=float, help="opacity under the tyres, 0..1 (default 0.8)")
    p.add_argument("--shadow-softness", type=float, help="blur and extent of the shadow (default 1.0)")
    p.add_argument("--margin", type=float, help="layout margin: center, fraction of the canvas (0.05); crop, of the car (0.03)")
    p.add_argument("--size", help="output size WxH, e.g. 1600x1200 (the car is scaled to fit)")
    p.add_argument("--aspect", help="output aspect ratio, e.g. 4:3 or 16:9")
    p.add_argument("--window-correction", default="tint", choices=WINDOW_MODES)
    p.add_argument("--plate-replacement", default="none", choices=PLATE_MODES)
    p.add_argument("--plate", help="plate image for --plate-replacement image")
    p.add_argument("--background-prompt")
    p.add_argument("--background-negative-prompt")
    p.add_argument("--refine", default="auto", choices=REFINE_MODES)
    p.add_argument("--seed", type=int)
    p.add_argument("--format", default="auto", choices=OUTPUT_FORMATS, help="output format (auto: png for transparent, else jpg)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--cpu-dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="the matte net's precision on the CPU (auto: bfloat16 where the CPU has it natively)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--thorough", action="store_true",
                   help="thorough matte preset: the net at 320 on the photo and its mirror, a crop pass "
                        "(2-4 net runs a photo; the default runs it about once)")
    p.add_argument("--matte-model", default=DEFAULT_MATTE_MODEL, choices=list(MATTE_MODELS),
                   help="matte net: u2netp_vehicle_half (the vehicle net distilled, default), "
                        "u2netp_vehicle (the vehicle net it was distilled from) or u2netp (generic)")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local (this process) or ray (Ray Data: decoding and encoding as CPU tasks, the pipeline "
                        "on an actor pool; extra `ray`)")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=1, help="with --engine ray: pipeline actors (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="with --engine ray: GPUs per actor (1 on a GPU cluster; 0: actors on the CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _collect(inputs: Sequence[str]) -> list[tuple[Path, Path]]:
    """(image path, output path relative to the output folder) for every input image."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((child, child.relative_to(path)))
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return found


def _targets(out: Path, jobs: Sequence[tuple[Path, Path]], extension: str) -> list[Path]:
    """Output path of every job: its relative path under `out` with the output's
    extension. Inputs that would share one (``a.jpg`` and ``a.png``, or two ``car.jpg``
    from different folders) keep their own extension in the name (``a-jpg.jpg``), then a
    number, so no output overwrites another."""
    plain = [(out / rel).with_suffix("." + extension) for _, rel in jobs]
    counts: dict[Path, int] = {}
    for t in plain:
        counts[t] = counts.get(t, 0) + 1
    targets: list[Path] = []
    taken: set[Path] = set()
    for (src, rel), t in zip(jobs, plain):
        if counts[t] > 1:
            t = (out / rel).with_name(f"{rel.stem}-{src.suffix.lstrip('.').lower()}.{extension}")
        base, n = t, 2
        while t in taken:
            t = base.with_name(f"{base.stem}-{n}{base.suffix}")
            n += 1
        taken.add(t)
        targets.append(t)
    return targets


def _unwritable(targets: Sequence[Path]) -> str | None:
    """Why the outputs cannot be written (a folder that cannot be made or written to), or None."""
    for folder in sorted({t.parent for t in targets}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot create the output folder {folder}: {err.strerror or err}"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"the output folder {folder} is not writable"
    return None


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done, self.start = total, enabled and total > 1, 0, time.perf_counter()

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {rate:.2f} img/s")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _weights_report() -> int:
    from .errors import WeightsNotFound
    from .weights import KNOWN_WEIGHTS, candidates, resolve

    for key, spec in KNOWN_WEIGHTS.items():
        try:
            print(f"{key:15s} found    {resolve(key)}")
        except WeightsNotFound:
            print(f"{key:15s} missing  {spec.filename}: {spec.description}; looked in " + ", ".join(str(p) for p in candidates(key)))
    return 0


def _serve_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bgr serve",
        description="Serve the web API's /v2/remove-background on this machine (extra `server`).")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--keys-file", type=Path, default=None,
                    help="API keys, one per line (# comments); default $BGR_API_KEYS, else no key asked")
    ap.add_argument("--keep", type=int, default=1000, help="outputs kept at most (the oldest go first)")
    ap.add_argument("--keep-seconds", type=float, default=3600.0, help="how long an output stays downloadable")
    ap.add_argument("--public-url", default=None, help="base of output_url behind a proxy, e.g. https://bgr.example.com")
    ap.add_argument("--max-body-mb", type=float, default=64.0, help="request body cap (413 beyond)")
    ap.add_argument("--max-queue", type=int, default=64, help="requests waiting at most (503 beyond)")
    ap.add_argument("--wait-ms", type=float, default=20.0, help="how long a batch waits for more requests")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds a request may take (504 beyond)")
    return ap


def _read_keys(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _serve(argv: Sequence[str]) -> int:
    args = _serve_parser().parse_args(argv)
    try:
        import uvicorn

        from .server import create_app
    except ImportError as err:
        print(f"bgr serve: needs the `server` extra (pip install 'bgr_core[server]'): {err}", file=sys.stderr)
        return 2
    from .output_store import OutputStore
    from .pipeline import Pipeline

    keys = None
    if args.keys_file is not None:
        try:
            keys = _read_keys(args.keys_file)
        except OSError as err:
            print(f"bgr serve: cannot read the keys file: {err.strerror or err}", file=sys.stderr)
            return 2
        if not keys:
            print(f"bgr serve: {args.keys_file} holds no key", file=sys.stderr)
            return 2
    try:
        pipeline = Pipeline(args.device, batch_size=args.batch_size, api_keys=keys, allow_files=False,
                            allow_network=True)
        store = OutputStore(keep=args.keep, keep_s=args.keep_seconds)
        app = create_app(pipeline, store=store, public_url=args.public_url, max_body=int(args.max_body_mb * 2**20),
                         max_queue=args.max_queue, wait_s=args.wait_ms / 1000, deadline_s=args.deadline)
    except ValueError as err:
        print(f"bgr serve: {err}", file=sys.stderr)
        return 2
    print(f"bgr serve: {pipeline} on http://{args.host}:{args.port}/v2/remove-background", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=int(args.deadline))
    return 0


def _summary(failures: int, total: int, out: Path, quiet: bool, engine: str = "") -> int:
    """The run's last line and exit status: 1 when any image failed."""
    if failures:
        print(f"bgr: {failures} of {total} image(s) failed", file=sys.stderr)
        return 1
    if not quiet:
        print(f"bgr: wrote {total} image(s) to {out}{engine}", file=sys.stderr)
    return 0


def _run_ray(args: argparse.Namespace, sources: list[Path], targets: list[Path], params: dict, out: Path) -> int:
    """`--engine ray`: the same photos, parameters and outputs through Ray Data."""
    try:
        from .integrations.ray import process_files
    except ImportError as err:
        print(f"bgr: --engine ray needs the `ray` extra (pip install 'bgr_core[ray]'): {err}", file=sys.stderr)
        return 2
    if args.workers < 1 or args.gpus_per_worker < 0:
        print("bgr: --workers must be >= 1 and --gpus-per-worker >= 0", file=sys.stderr)
        return 2
    rows = process_files(sources, targets, {k: v for k, v in params.items() if v is not None}, address=args.address,
                         workers=args.workers, gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
                         device=args.device, overwrite=args.overwrite, fast=not args.thorough,
                         matte_model=args.matte_model, cpu_dtype=args.cpu_dtype)
    failures = [r for r in rows if r["error"]]
    for r in failures:
        print(f"bgr: {r['path']}: {r['error']}: {r['error_description']}", file=sys.stderr)
    return _summary(len(failures), len(rows), out, args.quiet, " (ray)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["weights"]:
        return _weights_report()
    if argv[:1] == ["serve"]:
        return _serve(argv[1:])
    if argv[:1] == ["run"]:  # `bgr run ...` is `bgr ...`
        argv = argv[1:]
    args = _parser().parse_args(argv)

    from .errors import BGRError
    from .pipeline import Pipeline

    try:
        jobs = _collect(args.inputs)
    except FileNotFoundError as err:
        print(f"bgr: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unreadable folder
        print(f"bgr: cannot list the inputs: {err.strerror or err} ({err.filename})", file=sys.stderr)
        return 2
    if not jobs:
        print("bgr: no jpg, png or webp images found in the inputs", file=sys.stderr)
        return 2
    params = {
        "background": args.background,
        "layout": args.layout,
        "effect": args.effect,
        "window_correction": args.window_correction,
        "plate_replacement": args.plate_replacement,
        "refine": args.refine,
        "output_format": args.format,
        "seed": args.seed,
        "background_prompt": args.background_prompt,
        "background_negative_prompt": args.background_negative_prompt,
        "shadow_strength": args.shadow_strength,
        "shadow_softness": args.shadow_softness,
        "margin": args.margin,
        "output_size": args.size,
        "aspect_ratio": args.aspect,
    }
    if args.background_file:
        params["background_file"] = Path(args.background_file)
    if args.plate:
        try:
            params["plate_base64"] = Path(args.plate).read_bytes()
        except OSError as err:
            print(f"bgr: cannot read --plate: {err.strerror}", file=sys.stderr)
            return 2
    # usage errors before any photo is processed: the request, the output, the folder
    from .request import parse_request

    try:
        request = parse_request({**params, "image_file": jobs[0][0]})
    except BGRError as err:
        print(f"bgr: {err}", file=sys.stderr)
        return 2
    out = Path(args.output)
    if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        if len(jobs) > 1:
            print(f"bgr: -o {out} is a file name but there are {len(jobs)} inputs; give a folder", file=sys.stderr)
            return 2
        targets = [out]
    else:
        targets = _targets(out, jobs, request.extension)
    problem = _unwritable(targets)
    if problem:
        print(f"bgr: {problem}", file=sys.stderr)
        return 2
    todo = [k for k, t in enumerate(targets) if args.overwrite or not t.exists()]
    skipped = len(jobs) - len(todo)
    if skipped:  # said even with -q: nothing was done for these
        print(f"bgr: skipping {skipped} image(s) whose output exists (--overwrite replaces them)", file=sys.stderr)
    if not todo:
        return 0
    if args.engine == "ray":
        return _run_ray(args, [jobs[k][0] for k in todo], [targets[k] for k in todo], params, out)
    try:
        pipeline = Pipeline(args.device, batch_size=args.batch_size, fast=not args.thorough, matte_model=args.matte_model,
                            cpu_dtype=args.cpu_dtype)
    except (BGRError, ValueError, RuntimeError) as err:  # bad --device or --batch-size
        print(f"bgr: {err}", file=sys.stderr)
        return 2

    progress = _Progress(len(todo), not args.quiet)
    failures = 0
    results = pipeline.remove_backgrounds((jobs[k][0] for k in todo), **params)
    for k, result in zip(todo, results):
        src, target = jobs[k][0], targets[k]
        progress.step()
        if not result.ok:
            failures += 1
            print(f"\nbgr: {src}: {result.error}: {result.error_description}", file=sys.stderr)
            continue
        try:
            result.save(target, overwrite=args.overwrite)
        except FileExistsError:  # created meanwhile by someone else
            failures += 1
            print(f"\nbgr: {target} exists; pass --overwrite to replace it", file=sys.stderr)
        except OSError as err:
            failures += 1
            print(f"\nbgr: cannot write {target}: {err.strerror or err}", file=sys.stderr)
        except Exception as err:  # encoding failed: nothing was written (see write_atomic)
            failures += 1
            print(f"\nbgr: cannot encode {target}: {type(err).__name__}: {err}", file=sys.stderr)
        for warning in result.warnings:
            print(f"bgr: {src}: warning: {warning}", file=sys.stderr)
    results.close()  # zip stops short of the stream's end: its threads end now, not when collected
    return _summary(failures, len(todo), out, args.quiet)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
