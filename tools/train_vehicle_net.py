"""Train the vehicle net (``weights/u2netp_vehicle.safetensors``, a `bgr_core.models.U2NetP`)
from the generic U2NetP, with an auxiliary glass head that is not shipped (`GlassAuxNet`).

    python tools/train_vehicle_net.py                       # reproduces weights/u2netp_vehicle.safetensors
    python tools/train_vehicle_net.py --resume              # goes on from --ckpt
    python tools/train_vehicle_net.py --minutes 30          # stops (checkpointed) after 30 min

Data: `tools/vehicle_data.py` (Carvana cars pasted on carparts street photos and
generated backdrops, Carvana studio photos, carparts photos with their part polygons,
scenes without a vehicle). Every sample is a pure function of (seed, step, index), so
a resumed run draws what an uninterrupted one would.

What protects what the generic net knows (a scouting run that fine-tuned everything at
one rate on composites collapsed on real photos):

- the first two encoder stages (full and half resolution) stay frozen, the deeper
  encoder learns at `--encoder-lr-scale` of the rate;
- where a label is unknown (the roof and pillars that carparts polygons leave out, a
  street photo's own car), the loss pulls towards the generic net's own output
  (distillation, weight `--distill`) instead of leaving the net free there;
- checkpoints are judged on real photos never trained on (the selection split of
  `vehicle_data.splits`: 14 Carvana cars, 40 carparts photos), at 320 and 224, and
  only a checkpoint that beats the generic net there is written to `--out`.

Cost on 2 CPU cores: about 0.55 s per image at 224 (forward, backward, distillation).
On a machine with an accelerator: ``--device cuda --workers N`` (the net and the teacher
under bfloat16 autocast, N processes drawing the batches, `vehicle_batches`; the samples
are the same as on the CPU) and ``--data`` a copy packed by `tools/pack_training_data.py`
where ``../shared`` is not at hand (weights/README.md: a run on a lent GPU).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import vehicle_batches as VB  # noqa: E402
import vehicle_data as V  # noqa: E402
from bgr_core.functional.matte import normalize  # noqa: E402
from bgr_core.models import U2NetP, U2NetPHalfTop  # noqa: E402

FROZEN = ("stage1", "stage2")
ENCODER = ("stage3", "stage4", "stage5", "stage6")


# -- model ------------------------------------------------------------------------------


class GlassAuxNet(U2NetP):
    """U2NetP with a second head for window glass, used only while training.

    Same body as `U2NetP` (its generic weights are the starting point); the glass head
    reads the last decoder block's features: 3x3 conv (block_ch -> 16) + ReLU + 1x1 conv.
    Its loss also trains the shared decoder on the carparts glass polygons. The head is
    not shipped (`save_weights` writes the body only): at run time the cue model of
    `bgr_core.functional.glass` found the glass better on held-out photos (README).

    Input: as `U2NetP`. Output: ``forward(x)`` gives (B, 2, H, W) in [0, 1]: channel 0
    the probability that a pixel belongs to the vehicle the photo is about, channel 1
    that it is window glass of that vehicle. ``forward(x, logits=True)`` gives the
    tuple (vehicle d0, d1, ..., d6, glass) of logits, each (B, 1, H, W), for training.
    """

    def __init__(self, in_ch: int = 3, mid_ch: int = 16, block_ch: int = 64, glass_ch: int = 16) -> None:
        super().__init__(in_ch=in_ch, out_ch=1, mid_ch=mid_ch, block_ch=block_ch)
        self.glass = nn.Sequential(
            nn.Conv2d(block_ch, glass_ch, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(glass_ch, 1, 1)
        )

    def forward(self, x: Tensor, logits: bool = False) -> Tensor | tuple[Tensor, ...]:  # type: ignore[override]
        hx1d, sides = self.features(x)
        glass = self.glass(hx1d)
        if logits:
            return (*sides, glass)
        return torch.sigmoid(torch.cat((sides[0], glass), dim=1))


class GlassAuxHalfNet(GlassAuxNet, U2NetPHalfTop):
    """`GlassAuxNet` over `U2NetPHalfTop` (``--half-top``): the last decoder block runs at
    half size, so the glass head does too and its logits are resized to the input's size;
    the body's tensors are those of ``u2netp_vehicle_half.safetensors``."""

    def forward(self, x: Tensor, logits: bool = False) -> Tensor | tuple[Tensor, ...]:  # type: ignore[override]
        hx1d, sides = self.features(x)
        glass = F.interpolate(self.glass(hx1d), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if logits:
            return (*sides, glass)
        return torch.sigmoid(torch.cat((sides[0], glass), dim=1))


def load_generic(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def init_student(generic: dict[str, torch.Tensor], seed: int, half_top: bool = False) -> GlassAuxNet:
    """The vehicle net with the generic body and a freshly initialised glass head
    (`half_top`: the `U2NetPHalfTop` body, `GlassAuxHalfNet`)."""
    torch.manual_seed(seed)
    net = GlassAuxHalfNet() if half_top else GlassAuxNet()
    missing, unexpected = net.load_state_dict(generic, strict=False)
    if unexpected or any(not k.startswith("glass.") for k in missing):
        raise RuntimeError(f"generic weights do not fit the body: missing {missing}, unexpected {unexpected}")
    return net


def teacher_net(generic: dict[str, torch.Tensor]) -> U2NetP:
    net = U2NetP()
    net.load_state_dict(generic, strict=True)
    return net.eval().requires_grad_(False).to(memory_format=torch.channels_last)


def param_groups(net: GlassAuxNet, lr: float, encoder_scale: float, head_scale: float) -> list[dict]:
    groups: dict[str, list] = {"encoder": [], "decoder": [], "glass": []}
    for name, p in net.named_parameters():
        top = name.split(".")[0]
        if top in FROZEN:
            p.requires_grad_(False)
        elif top in ENCODER:
            groups["encoder"].append(p)
        elif top == "glass":
            groups["glass"].append(p)
        else:
            groups["decoder"].append(p)
    scale = {"encoder": encoder_scale, "decoder": 1.0, "glass": head_scale}
    return [{"params": ps, "lr": lr * scale[k], "name": k, "scale": scale[k]} for k, ps in groups.items()]


# -- loss -------------------------------------------------------------------------------


def batch_tensors(samples: list[dict]) -> dict[str, torch.Tensor]:
    img = torch.from_numpy(np.stack([s["image"] for s in samples])).permute(0, 3, 1, 2).float().div(255)
    out = {"x": normalize(img).contiguous(memory_format=torch.channels_last)}
    for k in ("vehicle", "vweight", "glass", "gweight"):
        out[k] = torch.from_numpy(np.stack([s[k] for s in samples]))[:, None]
    for k in ("emphasis", "contact"):
        out[k] = torch.from_numpy(np.stack([s.get(k, np.zeros_like(s["vehicle"])) for s in samples]))[:, None]
    return out


def outline_ring(vehicle: torch.Tensor, weight: torch.Tensor, px: int) -> torch.Tensor:
    """(B, 1, S, S) 0/1: the labelled background within `px` pixels of the vehicle (where
    a generous matte leaves halos, shadows and what touches the car)."""
    near = F.max_pool2d(vehicle, 2 * px + 1, stride=1, padding=px) > 0.5
    return (near & (vehicle < 0.5) & (weight > 0)).to(vehicle.dtype)


def loss_fn(outputs: tuple[torch.Tensor, ...], b: dict[str, torch.Tensor], teacher: torch.Tensor | None,
            distill: float, side_weight: float = 0.2, emphasis: float = 0.0,
            ring: float = 0.0, ring_px: int = 8, hard: float = 0.0,
            contact: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """outputs: (d0, d1..d6, glass) logits (B, 1, S, S); b: targets and weights; teacher:
    the generic net's probability (B, 1, S, S) or None; `emphasis`: the extra weight of
    the pixels ``b["emphasis"]`` marks (door mirrors), 0 for none; `ring`: the extra
    weight of the labelled background within `ring_px` of the vehicle, 0 for none;
    `hard`: the extra weight of the labelled pixels that the fused output puts on the
    wrong side of 0.5 (online hard-pixel mining: a missed cab or mirror, a kept patch of
    ground), 0 for none; `contact`: the extra weight of the pixels ``b["contact"]`` marks
    (both sides of a car's lower outline: contact shadow, sills), 0 for none."""
    *sides, glass = outputs
    t, w = b["vehicle"], b["vweight"]
    if emphasis > 0 and "emphasis" in b:
        w = w * (1 + emphasis * b["emphasis"])
    if contact > 0 and "contact" in b:
        w = w * (1 + contact * b["contact"])
    if ring > 0:
        w = w * (1 + ring * outline_ring(t, b["vweight"], ring_px))
    if hard > 0:
        wrong = ((sides[0].detach() >= 0) != (t >= 0.5)) & (b["vweight"] > 0)
        w = w * (1 + hard * wrong.to(w.dtype))
    if teacher is not None and distill > 0:
        known = w.clamp(max=1.0)
        target = known * t + (1 - known) * teacher
        weight = w + (1 - known) * distill
    else:
        target, weight = t, w
    norm = weight.sum().clamp_min(1.0)

    def bce(logit):
        return (F.binary_cross_entropy_with_logits(logit, target, reduction="none") * weight).sum() / norm

    l_fuse = bce(sides[0])
    l_side = sum(bce(s) for s in sides[1:]) * side_weight
    p = torch.sigmoid(sides[0])
    inter = (p * target * weight).sum((1, 2, 3))
    union = ((p + target - p * target) * weight).sum((1, 2, 3))
    has = (target * weight).sum((1, 2, 3)) > 0
    l_iou = ((1 - inter / union.clamp_min(1.0)) * has).sum() / has.sum().clamp_min(1)
    gt, gw = b["glass"], b["gweight"]
    gnorm = gw.sum().clamp_min(1.0)
    l_glass = (F.binary_cross_entropy_with_logits(glass, gt, reduction="none") * gw).sum() / gnorm
    pg = torch.sigmoid(glass)
    ghas = (gt * gw).sum((1, 2, 3)) > 0
    dice = 1 - (2 * (pg * gt * gw).sum((1, 2, 3)) + 1) / ((pg * gw).sum((1, 2, 3)) + (gt * gw).sum((1, 2, 3)) + 1)
    l_gdice = (dice * ghas).sum() / ghas.sum().clamp_min(1)
    total = l_fuse + l_side + l_iou + l_glass + 0.5 * l_gdice
    parts = {"fuse": l_fuse.item(), "side": float(l_side.detach()), "iou": l_iou.item(), "glass": l_glass.item(),
             "gdice": l_gdice.item()}
    return total, parts


# -- validation on real photos ----------------------------------------------------------


class SelectionSet:
    """Real photos of the selection split, loaded once: Carvana views with full masks,
    carparts photos with parts, hull and glass."""

    def __init__(self, data: Path, views=("01", "05", "09", "13")) -> None:
        sp = V.splits(data)
        self.carvana = [V.load_carvana(data, c, v) for c in sp["carvana_select"] for v in views]
        cp = V.CarParts(data)
        self.carparts = [cp.photo(i) for i in sp["carparts_select"] if i not in cp.label_gaps]

    @staticmethod
    def probs(net, images: list[np.ndarray], size: int) -> list[np.ndarray]:
        out = []
        dev = next(net.parameters()).device
        with torch.inference_mode():
            for k in range(0, len(images), 8):
                chunk = images[k : k + 8]
                x = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float().div(255)
                                 for im in [_square(c, size) for c in chunk]])
                y = net(normalize(x).to(dev).contiguous(memory_format=torch.channels_last)).float().cpu()
                for im, p in zip(chunk, y):
                    p = F.interpolate(p[None], size=im.shape[:2], mode="bilinear", align_corners=False)[0]
                    out.append(p.numpy())  # (C, H, W)
        return out

    def evaluate(self, net, sizes=(320, 224), mirror_score: float = 0.0) -> dict[str, float]:
        """IoU, recall, precision proxy, photos below 0.95 and door-mirror recall per input
        size; ``score`` is their mean over sizes of (IoU + recall + precision) / 3 - 0.05 x
        below + `mirror_score` x mirror recall."""
        res: dict[str, float] = {}
        for size in sizes:
            ious = [_iou(p[0] >= 0.5, c.mask) for p, c in zip(self.probs(net, [c.image for c in self.carvana], size), self.carvana)]
            probs = self.probs(net, [c.image for c in self.carparts], size)
            rec, prec, grec, mrec = [], [], [], []
            for p, c in zip(probs, self.carparts):
                m = p[0] >= 0.5
                rec.append((m & c.parts).sum() / max(1, c.parts.sum()))
                if c.mirrors.any():
                    mrec.append((m & c.mirrors).sum() / c.mirrors.sum())
                prec.append((m & c.hull).sum() / max(1, m.sum()))
                if p.shape[0] > 1 and c.glass.any():
                    grec.append((p[1][c.glass] >= 0.5).mean())
            low = np.mean([(r < 0.95) or (q < 0.95) for r, q in zip(rec, prec)])
            res |= {f"iou{size}": float(np.mean(ious)), f"iou_min{size}": float(np.min(ious)),
                    f"recall{size}": float(np.mean(rec)), f"precision{size}": float(np.mean(prec)),
                    f"low{size}": float(low), f"mirror{size}": float(np.mean(mrec)) if mrec else 0.0}
            if grec:
                res[f"glass_recall{size}"] = float(np.mean(grec))
            res[f"score{size}"] = ((res[f"iou{size}"] + res[f"recall{size}"] + res[f"precision{size}"]) / 3
                                   - 0.05 * low + mirror_score * res[f"mirror{size}"])
        res["score"] = float(np.mean([res[f"score{s}"] for s in sizes]))
        return res


def beats(res: dict[str, float], best: dict[str, float], start: dict[str, float], iou_floor: float | None) -> bool:
    """Whether an evaluation `res` is the run's new best: a higher score than `best`, and
    with `iou_floor`, a Carvana IoU at every size at most that far below the start net's
    (`start`): every stage so far that raised the score by giving the street photos and
    the mirrors more of the outline lost studio IoU on the held-out cars (weights/README)."""
    if res["score"] <= best["score"]:
        return False
    if iou_floor is None:
        return True
    sizes = [k[len("iou"):] for k in start if k.startswith("iou") and k[len("iou"):].isdigit()]
    return all(res[f"iou{z}"] >= start[f"iou{z}"] - iou_floor for z in sizes)


def _square(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


class _GenericAsTwo(torch.nn.Module):
    """The generic net, shaped like the vehicle net's output for `SelectionSet`."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


# -- saving -----------------------------------------------------------------------------


def save_weights(net: torch.nn.Module, path: Path, meta: dict[str, str]) -> None:
    """`net`'s tensors with `meta` to `path` (written whole, then moved into place); of a
    `GlassAuxNet` the body only: the auxiliary glass head stays in the training checkpoint."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items() if not k.startswith("glass.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--generic", type=Path, default=ROOT / "weights" / "u2netp.safetensors")
    ap.add_argument("--out", type=Path, default=ROOT / "weights" / "u2netp_vehicle.safetensors")
    ap.add_argument("--ckpt", type=Path, default=ROOT / "training" / "checkpoints" / "u2netp_vehicle_last.pt")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this training checkpoint's net, or from a body weights file (.safetensors; "
                         "glass head from --init-head or seeded); fresh optimiser, step 0; the net to beat is then it")
    ap.add_argument("--init-head", type=Path, default=None,
                    help="with a .safetensors --init (a body only): take the glass head from this training checkpoint")
    ap.add_argument("--ring-weight", type=float, default=0.0,
                    help="extra loss weight on the labelled background within --ring-px of the vehicle")
    ap.add_argument("--ring-px", type=int, default=8)
    ap.add_argument("--hard-weight", type=float, default=0.0,
                    help="extra loss weight on labelled pixels the net puts on the wrong side of 0.5")
    ap.add_argument("--mirror-weight", type=float, default=0.0,
                    help="extra loss weight on labelled door-mirror pixels (thinner unknown band around them)")
    ap.add_argument("--wheels", action="store_true",
                    help="mark the carparts wheels too, weighed like the mirrors (--mirror-weight)")
    ap.add_argument("--cast-shadows", action="store_true",
                    help="give pasted cars a sunlit cast shadow 40 %% of the time (vehicle_cast_shadow.py)")
    ap.add_argument("--pairs", action="store_true",
                    help="draw the pair kind too: a car parked behind the subject, labelled background where clearly secondary")
    ap.add_argument("--half-top", action="store_true",
                    help="train the half-size top (U2NetPHalfTop, the default matte net's shape); --init its weights")
    ap.add_argument("--contact-weight", type=float, default=0.0,
                    help="extra loss weight on the labelled pixels along a Carvana car's lower outline "
                         "(floor and contact shadow below it, sills and tyres above; vehicle_contact.py)")
    ap.add_argument("--iou-floor", type=float, default=None,
                    help="a checkpoint is best only if its selection Carvana IoU at each size is at most this "
                         "far below the start net's (default: no floor)")
    ap.add_argument("--mirror-score", type=float, default=0.0,
                    help="weight of the selection photos' door-mirror recall in the checkpoint score")
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sizes", default="224,224,288", help="net input side per step, cycled")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--encoder-lr-scale", type=float, default=0.3)
    ap.add_argument("--head-lr-scale", type=float, default=10.0)
    ap.add_argument("--distill", type=float, default=0.3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this long (0: no limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bfloat16 autocast there)")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes drawing the batches (0: the trainer's own; same samples for any value)")
    args = ap.parse_args(argv)
    if args.wheels and args.mirror_weight <= 0:
        ap.error("--wheels marks the wheels for --mirror-weight's extra weight: give --mirror-weight too")

    resume = None
    if args.resume and args.ckpt.exists():
        resume = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        if "opt" not in resume:
            ap.error(f"{args.ckpt} holds a net without its optimiser state (a finished run's): "
                     "start from it with --init instead of --resume")
    torch.set_num_threads(args.threads)
    generic = load_generic(args.generic)
    body_file = args.init is not None and args.init.suffix == ".safetensors"
    net = init_student(load_generic(args.init) if body_file else generic, args.seed,
                       args.half_top).to(memory_format=torch.channels_last)
    if body_file and args.init_head is not None:
        head = torch.load(args.init_head, map_location="cpu", weights_only=False)["net"]
        net.glass.load_state_dict({k[len("glass."):]: v for k, v in head.items() if k.startswith("glass.")}, strict=True)
    elif args.init is not None and not body_file:
        net.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=False)["net"], strict=True)
    device = torch.device(args.device)
    net = net.to(device)
    teacher = teacher_net(generic).to(device) if args.distill > 0 else None
    amp = device.type == "cuda"  # bfloat16 autocast for the forward passes; the loss in float32
    groups = param_groups(net, args.lr, args.encoder_lr_scale, args.head_lr_scale)
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.0)
    sizes = [int(s) for s in args.sizes.split(",")]
    make_maker = functools.partial(V.SampleMaker, args.data, sizes[0], mirrors=args.mirror_weight > 0, wheels=args.wheels,
                                   contact=args.contact_weight > 0, cast=args.cast_shadows, pairs=args.pairs)
    select = SelectionSet(args.data)
    state = {"step": 0, "best": None, "history": []}
    if resume is not None:
        ck = resume
        net.load_state_dict(ck["net"], strict=True)
        opt.load_state_dict(ck["opt"])  # its tensors follow the parameters' device
        state = ck["state"]
        print(f"resumed at step {state['step']}, best {state['best']}", flush=True)
    if state["best"] is None:
        start_net = net.eval() if args.init is not None else _GenericAsTwo(teacher_net(generic).to(device))
        base = select.evaluate(start_net, mirror_score=args.mirror_score)
        state["best"] = {"step": 0, **base}
        state["history"].append({"step": 0, **base})
        print("start net:" if args.init is not None else "generic net:", json.dumps({k: round(v, 4) for k, v in base.items()}), flush=True)

    def checkpoint() -> None:
        args.ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.ckpt.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "state": state, "args": vars(args) | {
            "data": str(args.data), "generic": str(args.generic), "out": str(args.out), "ckpt": str(args.ckpt)}}, tmp)
        tmp.replace(args.ckpt)

    # What the run started from, for the weights' provenance.
    init_note = "weights/u2netp.safetensors (U2NetP, Apache-2.0)"
    if args.init is not None:
        kind = "weights written by this script" if body_file else "a training checkpoint of this script"
        init_note = f"{args.init.as_posix()} ({kind}), itself from {init_note}"
    start = time.time()
    net.train()
    run_loss: dict[str, float] = {}
    draws = VB.StepBatches(make_maker, args.seed, args.batch, sizes, state["step"], args.steps)
    for b in VB.batches(draws, args.workers, batch_tensors, pin=device.type == "cuda"):
        step = state["step"]
        size = draws.size(step)
        warm = min(1.0, (step + 1) / 30)
        cos = 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = args.lr * g["scale"] * warm * (0.1 + 0.9 * cos)
        b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
        t_prob = None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            if teacher is not None:
                with torch.no_grad():
                    t_prob = teacher(b["x"]).float()
            outputs = tuple(o.float() for o in net(b["x"], logits=True))
        loss, parts = loss_fn(outputs, b, t_prob, args.distill, emphasis=args.mirror_weight,
                              ring=args.ring_weight, ring_px=args.ring_px, hard=args.hard_weight,
                              contact=args.contact_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        for k, v in parts.items():
            run_loss[k] = 0.9 * run_loss.get(k, v) + 0.1 * v
        state["step"] = step + 1
        if state["step"] % 10 == 0:
            el = time.time() - start
            print(f"step {state['step']} size {size} " + " ".join(f"{k} {v:.4f}" for k, v in run_loss.items())
                  + f" [{el / 60:.1f} min]", flush=True)
        done = state["step"] >= args.steps or (args.minutes and time.time() - start > args.minutes * 60)
        if state["step"] % args.eval_every == 0 or done:
            net.eval()
            res = select.evaluate(net, mirror_score=args.mirror_score)
            net.train()
            state["history"].append({"step": state["step"], **res})
            better = beats(res, state["best"], state["history"][0], args.iou_floor)
            print(f"eval step {state['step']}: " + json.dumps({k: round(v, 4) for k, v in res.items()})
                  + (" BEST" if better else ""), flush=True)
            if better:
                state["best"] = {"step": state["step"], **res}
                meta = {"model": "u2netp_vehicle_half" if args.half_top else "u2netp_vehicle",
                        "step": str(state["step"]), "selection": json.dumps(res),
                        "init": init_note,
                        "data": "Carvana Image Masking Challenge (Kaggle competition terms) and Car Parts Dataset "
                                "(Pasupa et al. 2021); see weights/README.md",
                        "command": "python tools/train_vehicle_net.py " + " ".join(argv or sys.argv[1:]),
                        "input": "RGB 0..1, ImageNet-normalised; output (B, 1, H, W): the vehicle"}
                net.eval()
                save_weights(net, args.out, meta)
                net.train()
            checkpoint()
        if done:
            break
    print("best:", json.dumps(state["best"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
