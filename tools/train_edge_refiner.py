"""Train the matte's edge refiner (``weights/edge_refiner.safetensors``).

    python tools/train_edge_refiner.py --out weights/edge_refiner.safetensors [--cache FILE.npz]
                                       [--data ../shared/data] [--photos 960] [--composites 960]
                                       [--carparts 0] [--per-photo 2500] [--hidden 128 64] [--epochs 20] [--seed 0]
                                       [--radius 3] [--dilations 1]
                                       [--net-size 288 --cpu-dtype bfloat16]   # pin the matte

`bgr_core.models.edge_refiner.EdgeRefinerNet` learns, per pixel of the band around the
default matte's outline (`bgr_core.functional.edge_refine.edge_band`), the true alpha
from a patch of photo and coarse alpha. The coarse alpha is the shipped pipeline's own
(`VehicleMatte.fast` over the shipped vehicle net, without a refiner), so the refiner
corrects exactly what it will be given. That matte depends on the CPU (288 px in bfloat16
where it has native bfloat16, else 224 px in float32) unless `--net-size` and
`--cpu-dtype` pin it; the file's metadata records which (`net_size`, `matte`), and a
``--cache`` belongs to the matte it was collected with.

Samples (``--cache`` keeps them; a second run with the same file only trains):

- Carvana studio photos of the training cars (`tools/vehicle_data.splits`), at their
  true aspect (768x512) and at random smaller scales (0.45-1), the mask resized as a
  fraction (soft at the edge, as a camera sees a sub-pixel outline);
- the same cars cut out and pasted on generated backdrops and vehicle-free scenes
  (`vehicle_paste.paste_car`, with its shadow and paint jitter), so the net sees dark,
  textured and coloured surroundings, not only the studio's grey;
- a JPEG round trip at a random quality on a third of each;
- with ``--carparts N``, N draws of the carparts training photos as the vehicle net sees
  them (`vehicle_data.SampleMaker`, door mirrors kept labelled), their band pixels only
  where the polygons' label is known: street photos and their mirrors, which studio cars
  alone do not show.

Checkpoints are chosen on the selection cars (`carvana_select`, 4 views each, never
trained on): IoU at 0.5 of the refined alpha against the mask; the report cars
(``masks/carvana``) are measured only by ``benchmarks/edge_refine.py``. The file holds
the weights and, as metadata, the patch side, the hidden sizes and the band radius.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import vehicle_data as V  # noqa: E402  (tools/)
import vehicle_paste as P  # noqa: E402
from bgr_core.functional.edge_refine import edge_band, gather_patches, refine_edges  # noqa: E402
from bgr_core.models.edge_refiner import EdgeRefinerNet  # noqa: E402

SELECT_VIEWS = ("01", "05", "09", "13")


def read_studio(data: Path, car: str, view: str) -> tuple[np.ndarray, np.ndarray]:
    """A Carvana photo at its true aspect: (512, 768, 3) uint8 and its mask as a
    fraction (512, 768) float32 (linear resize of the squashed binary label)."""
    h, w = V.CARVANA_SHAPE
    img = V.read_rgb(data / "carvana" / "images" / f"{car}_{view}.jpg")
    mask = V.read_mask(data / "carvana" / "labels" / f"{car}_{view}_mask.gif").astype(np.float32)
    return (cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR),
            np.clip(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1))


def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() >= 1 / 3:
        return img
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy() if ok else img


def studio_sample(data: Path, car: str, view: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    img, mask = read_studio(data, car, view)
    f = rng.uniform(0.45, 1.0) if rng.random() < 0.6 else 1.0
    if f < 1.0:
        size = (round(img.shape[1] * f), round(img.shape[0] * f))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    return _jpeg(img, rng), mask


def composite_sample(data: Path, car: str, view: str, rng: np.random.Generator,
                     scenes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    img, mask = read_studio(data, car, view)
    w = int(rng.choice([640, 768, 1024]))
    h = int(round(w * rng.uniform(0.6, 0.8)))
    if scenes and rng.random() < 0.5:
        bg, _ = P.cover(scenes[int(rng.integers(len(scenes)))], h, w, rng)
    else:
        bg = V.synthetic_backdrop(rng, h, w)
    zeros = np.zeros((h, w), np.float32)
    layers, alpha = P.paste_car(P.Layers(bg, zeros, zeros, zeros, zeros), P.CarvanaPhoto(img, mask), rng)
    return _jpeg(layers.image, rng), alpha.astype(np.float32)


def street_sample(maker: V.SampleMaker, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A carparts training photo on a canvas of the vehicle net's samples: image, the union
    of parts as the target, and where that target is known (not the polygons' rough outline
    or the body they leave out; door mirrors keep most of their pixels known)."""
    layers = maker.layers("carparts", rng)
    return _jpeg(layers.image, rng), layers.vehicle.astype(np.float32), layers.vweight > 0.5


class Matte:
    """The shipped default matte (no refiner): uint8 photo → (1, H, W) alpha or None.

    `net_size` None and `cpu_dtype` "auto" give this machine's default (288 in bfloat16
    where the CPU has it natively, else 224 in float32); pinning both gives the same
    matte on any CPU, up to float rounding."""

    def __init__(self, net_size: int | None = None, cpu_dtype: str = "auto") -> None:
        from bgr_core import weights
        from bgr_core.loaders import load_matte_net
        from bgr_core.stages.segment import VehicleMatte

        amp = {"auto": "auto", "float32": None, "bfloat16": torch.bfloat16}[cpu_dtype]
        size = {} if net_size is None else {"net_size": int(net_size)}
        self.stage = VehicleMatte.fast(load_matte_net(), cpu_amp_dtype=amp, **size)
        self.net_size = self.stage.net_size
        self.dtype = "bfloat16" if self.stage.reduced_precision else "float32"
        self.net_name = weights.DEFAULT_MATTE_MODEL
        self.net_sha = hashlib.sha256(weights.resolve(self.net_name).read_bytes()).hexdigest()

    def __call__(self, img: np.ndarray) -> torch.Tensor | None:
        from bgr_core.frame import Frame

        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0)
        frame = self.stage([Frame(image=t)])[0]
        return None if frame.error is not None else frame.alpha.float()


def collect(args: argparse.Namespace, data: Path, matte: Matte) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(args.seed)
    cars = V.splits(data)["carvana_train"]
    scenes = V.empty_scenes()
    views = [f"{v:02d}" for v in range(1, 17)]
    xs, ys, kinds = [], [], []
    jobs = [("studio", c) for c in rng.choice(cars, args.photos)] + [("composite", c) for c in rng.choice(cars, args.composites)]
    jobs += [("carparts", None)] * args.carparts
    street = V.SampleMaker(data, mirrors=True) if args.carparts else None
    start = time.perf_counter()
    for n, (kind, car) in enumerate(jobs):
        known = None
        if kind == "carparts":
            img, target, known = street_sample(street, rng)
        else:
            view = str(rng.choice(views))
            img, target = (studio_sample(data, car, view, rng) if kind == "studio"
                           else composite_sample(data, car, view, rng, scenes))
        alpha = matte(img)
        if alpha is None:
            continue
        band = edge_band(alpha, args.radius)
        if known is not None:
            band &= torch.from_numpy(known)
        yy, xx = torch.nonzero(band, as_tuple=True)
        if yy.numel() == 0:
            continue
        pick = torch.from_numpy(rng.choice(yy.numel(), min(args.per_photo, yy.numel()), replace=False))
        image = torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)
        p = torch.cat([gather_patches(image, alpha, yy[pick], xx[pick], args.patch, d) for d in args.dilations], dim=1)
        xs.append(p.to(torch.float16).numpy())
        ys.append(target[yy[pick].numpy(), xx[pick].numpy()].astype(np.float16))
        kinds.append(np.full(len(pick), kind == "studio", bool))
        if (n + 1) % 50 == 0:
            print(f"  {n + 1}/{len(jobs)} photos, {sum(len(y) for y in ys)} samples, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    return {"x": np.concatenate(xs), "y": np.concatenate(ys), "studio": np.concatenate(kinds)}


def select_set(data: Path, matte: Matte) -> list[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """The selection cars' photos, their binary masks and `matte`'s alpha."""
    out = []
    for car in V.splits(data)["carvana_select"]:
        for view in SELECT_VIEWS:
            img, mask = read_studio(data, car, view)
            alpha = matte(img)
            if alpha is not None:
                out.append((img, mask >= 0.5, alpha))
    return out


def select_iou(net: EdgeRefinerNet | None, photos, radius: int) -> float:
    ious = []
    with torch.inference_mode():
        for img, mask, alpha in photos:
            if net is not None:
                image = torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)
                alpha = refine_edges(image, alpha, net, radius)
            m = alpha[0].numpy() >= 0.5
            ious.append((m & mask).sum() / max(1, (m | mask).sum()))
    return float(np.mean(ious))


def train(args: argparse.Namespace, samples: dict[str, np.ndarray], photos) -> tuple[dict, float, int]:
    torch.manual_seed(args.seed)
    net = EdgeRefinerNet(args.patch, tuple(args.hidden), args.radius, tuple(args.dilations))
    x = torch.from_numpy(samples["x"])
    y = torch.from_numpy(samples["y"]).float()
    n = len(y)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(n / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    base = select_iou(None, photos, args.radius)
    best, best_epoch, best_state = base, 0, None
    print(f"selection IoU without refiner {base:.4f} ({len(photos)} photos)", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = torch.randperm(n, generator=gen)
        total, start = 0.0, time.perf_counter()
        for s in range(0, n, args.batch):
            idx = order[s : s + args.batch]
            pred = net(x[idx].float()).clamp(1e-6, 1 - 1e-6)
            loss = torch.nn.functional.binary_cross_entropy(pred, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        score = select_iou(net, photos, args.radius)
        print(f"epoch {epoch}: loss {total / n:.4f}, selection IoU {score:.4f}, {time.perf_counter() - start:.0f} s", flush=True)
        if score > best:
            best, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return best_state, best, best_epoch


def _without_cache(argv: list[str]) -> list[str]:
    """The command line less ``--cache FILE``: where the samples were kept does not
    change the file, and the recorded command must reproduce it without the cache."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--cache":
            skip = True
        elif not a.startswith("--cache="):
            out.append(a)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", default=None, help="npz of the collected samples (written once, then reused)")
    ap.add_argument("--photos", type=int, default=960)
    ap.add_argument("--composites", type=int, default=960)
    ap.add_argument("--carparts", type=int, default=0,
                    help="also this many carparts training photos (labelled pixels only; default none)")
    ap.add_argument("--per-photo", type=int, default=2500)
    ap.add_argument("--patch", type=int, default=11)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    ap.add_argument("--radius", type=int, default=3)
    ap.add_argument("--dilations", type=int, nargs="+", default=[1], help="patch scales (1 first; 2 sees twice as far)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--net-size", type=int, default=None,
                    help="the matte net's input side (default: the fast preset's on this machine, 288 or 224)")
    ap.add_argument("--cpu-dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="the matte net's CPU precision (auto: bfloat16 where the CPU has it natively)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    start = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    matte = Matte(args.net_size, args.cpu_dtype)  # one for the samples and the selection photos
    if cache is not None and cache.exists():
        samples = dict(np.load(cache))
    else:
        samples = collect(args, data, matte)
        if cache is not None:
            np.savez(cache, **samples)
    print(f"{len(samples['y'])} samples ({samples['studio'].mean():.0%} studio), "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    photos = select_set(data, matte)
    try:  # the file to beat, on the same mattes
        from bgr_core.loaders import load_edge_refiner

        print(f"selection IoU with the shipped refiner {select_iou(load_edge_refiner(), photos, args.radius):.4f}", flush=True)
    except Exception as err:  # noqa: BLE001 - a missing or other-spec file only skips the comparison
        print(f"no shipped refiner to compare with: {err}", flush=True)
    state, score, epoch = train(args, samples, photos)
    if state is None:
        print("no epoch beat the matte without a refiner on the selection cars: nothing written")
        return 1
    from safetensors.torch import save_file

    meta = {"patch": str(args.patch), "hidden": ",".join(map(str, args.hidden)), "radius": str(args.radius),
            "dilations": ",".join(map(str, args.dilations)),
            "trained_by": "python tools/train_edge_refiner.py " + " ".join(_without_cache(argv if argv is not None else sys.argv[1:])),
            "selection_iou": f"{score:.4f}", "epoch": str(epoch),
            "net_size": str(matte.net_size), "matte": f"VehicleMatte.fast over {matte.net_name}.safetensors (sha256 {matte.net_sha[:12]}), "
                     f"{matte.net_size} px, {matte.dtype}"}
    save_file(state, args.out, metadata=meta)
    print(f"wrote {args.out} (epoch {epoch}, selection IoU {score:.4f}); {json.dumps(meta)}; "
          f"{time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
