"""Distil the vehicle net into `bgr_core.models.U2NetPHalfTop` (its last decoder block at
half size): ``training/u2netp_vehicle_half_distilled.safetensors``, the first of the two nets
that `tools/average_weights.py` averages into the shipped ``weights/u2netp_vehicle_half.safetensors``.

    python tools/distill_half_top.py --until 675     # reproduces the distilled file
    python tools/distill_half_top.py --resume        # goes on from --ckpt
    python tools/distill_half_top.py --minutes 30    # stops (checkpointed) after 30 min

The student starts as the teacher (``weights/u2netp_vehicle.safetensors``): the same
tensors, with stage1d fed by stage2d's output at its own (half) size and stage1's
features average-pooled. Everything before stage1d stays frozen, so student and teacher
share that trunk and it runs once per batch; only stage1d, side1 and the fusion
(outconv) learn. The target is the teacher's own output (no labels): the binary
cross-entropy of the student's fused logit against the teacher's probability, weighed
`--edge-weight` times more within 3 px of the teacher's 0.5 level, plus half that for
stage1d's side output against the teacher's. The samples are the vehicle net's
(`tools/vehicle_data.SampleMaker`, mirrors on), each a function of (seed, step, index),
at the sizes the pipeline runs the net at (224 on CPUs without bfloat16, 288 with).

Every `--eval-every` steps the student is judged on the selection split (never trained
on; `train_vehicle_net.SelectionSet`) at 224 and 288: agreement with the teacher
(IoU of the two thresholded outputs) and the split's score; the checkpoint with the
highest mean agreement is written to `--out`.

Cost on 2 CPU cores: about 0.25 s per image (224 and 288 in turn).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import vehicle_data as V  # noqa: E402
from train_vehicle_net import SelectionSet, batch_tensors, save_weights  # noqa: E402
from bgr_core.models import U2NetP, U2NetPHalfTop  # noqa: E402

LEARNED = ("stage1d.", "side1.", "outconv.")
# what the written file says of its input and data: the teacher's (its samples are the
# teacher's training photos; no labels are used)
TEACHER_META = {
    "input": "RGB 0..1, ImageNet-normalised; output (B, 1, H, W): the vehicle",
    "data": "distilled on photos of the Carvana Image Masking Challenge (Kaggle competition terms) and the "
            "Car Parts Dataset (Pasupa et al. 2021), as the teacher was trained; see weights/README.md",
}


def load_pair(teacher_path: Path, student_state: dict | None = None) -> tuple[U2NetP, U2NetPHalfTop]:
    """The frozen teacher and the student (the teacher's tensors, or `student_state`)."""
    from safetensors.torch import load_file

    state = load_file(str(teacher_path), device="cpu")
    teacher, student = U2NetP(), U2NetPHalfTop()
    teacher.load_state_dict(state, strict=True)
    student.load_state_dict(student_state if student_state is not None else state, strict=True)
    teacher.eval().requires_grad_(False)
    student.eval().requires_grad_(False)  # eval: no dropout or norm layers anyway
    for name, p in student.named_parameters():
        p.requires_grad_(name.startswith(LEARNED))
    cl = torch.channels_last
    return teacher.to(memory_format=cl), student.to(memory_format=cl)


def edge_band(prob: torch.Tensor, px: int = 3) -> torch.Tensor:
    """(B, 1, H, W) probability -> (B, 1, H, W) bool: within `px` of its 0.5 level."""
    hard = (prob >= 0.5).float()
    k = 2 * px + 1
    grown = F.max_pool2d(hard, k, 1, px)
    shrunk = -F.max_pool2d(-hard, k, 1, px)
    return grown != shrunk


def distill_loss(student: U2NetPHalfTop, teacher: U2NetP, x: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """The student's loss on one batch x (B, 3, S, S) normalised."""
    with torch.no_grad():
        trunk = teacher.trunk(x)
        _, t = teacher.top(x, trunk)
        p0, p1 = torch.sigmoid(t[0]), torch.sigmoid(t[1])
        w = 1 + edge_weight * edge_band(p0).float()
    _, s = student.top(x, trunk)
    fused = (w * F.binary_cross_entropy_with_logits(s[0], p0, reduction="none")).sum() / w.sum()
    side = F.binary_cross_entropy_with_logits(s[1], p1)
    return fused + 0.5 * side


def selection_images(sel: SelectionSet) -> list[np.ndarray]:
    return [c.image for c in sel.carvana] + [c.image for c in sel.carparts]


def judge(sel: SelectionSet, student, taught: dict[int, list[np.ndarray]]) -> dict[str, float]:
    """Agreement with the teacher's probabilities `taught` ({size: per photo (1, H, W)}
    over `selection_images`) and the selection split's measures, per size."""
    res = {}
    sizes = tuple(taught)
    for size, pt in taught.items():
        ps = SelectionSet.probs(student, selection_images(sel), size)
        agree = [float(((a[0] >= 0.5) & (b[0] >= 0.5)).sum() / max(1, ((a[0] >= 0.5) | (b[0] >= 0.5)).sum()))
                 for a, b in zip(ps, pt)]
        res[f"agree{size}"], res[f"agree_min{size}"] = float(np.mean(agree)), float(np.min(agree))
    res |= {k: v for k, v in sel.evaluate(student, sizes=sizes).items() if not k.startswith("glass")}
    res["agree"] = float(np.mean([res[f"agree{s}"] for s in sizes]))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--teacher", type=Path, default=ROOT / "weights" / "u2netp_vehicle.safetensors")
    ap.add_argument("--out", type=Path, default=ROOT / "training" / "u2netp_vehicle_half_distilled.safetensors")
    ap.add_argument("--ckpt", type=Path, default=ROOT / "training" / "checkpoints" / "u2netp_vehicle_half.pt")
    ap.add_argument("--log", type=Path, default=ROOT / "training" / "u2netp_vehicle_half.log")
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sizes", default="224,288")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--edge-weight", type=float, default=4.0)
    ap.add_argument("--eval-every", type=int, default=75)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--minutes", type=float, default=None, help="stop (checkpointed) after this long")
    ap.add_argument("--until", type=int, default=None,
                    help="stop (checkpointed) after this step; the learning rate still decays over --steps")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]

    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False) if args.resume else None
    teacher, student = load_pair(args.teacher, ck["student"] if ck else None)
    teacher_sha = hashlib.sha256(args.teacher.read_bytes()).hexdigest()
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    if ck:
        opt.load_state_dict(ck["opt"])
    first = ck["step"] if ck else 0
    best = ck["best"] if ck else None
    maker = V.SampleMaker(args.data, mirrors=True)
    sel = SelectionSet(args.data)
    command = "python tools/distill_half_top.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.log.parent.mkdir(parents=True, exist_ok=True)
    log = args.log.open("a")

    def record(entry: dict) -> None:
        log.write(json.dumps(entry) + "\n")
        log.flush()
        print(json.dumps(entry), flush=True)

    taught = {s: SelectionSet.probs(teacher, selection_images(sel), s) for s in (224, 288)}
    if best is None:
        best = {"step": 0, **judge(sel, student, taught)}
        record({"eval": best})
    start, losses = time.time(), []
    step = first
    for step in range(first, args.steps):
        lr = args.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        size = sizes[step % len(sizes)]
        x = batch_tensors([maker.sample((args.seed, step, i), size=size) for i in range(args.batch)])["x"]
        loss = distill_loss(student, teacher, x, args.edge_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        done = step + 1
        out_of_time = (args.minutes is not None and time.time() - start > 60 * args.minutes
                       or args.until is not None and done >= args.until)
        if done % args.eval_every == 0 or done == args.steps or out_of_time:
            res = {"step": done, **judge(sel, student, taught)}
            record({"step": done, "loss": float(np.mean(losses)), "minutes": (time.time() - start) / 60, "eval": res})
            losses = []
            if res["agree"] > best["agree"]:
                best = res
                save_weights(student, args.out, {
                    "model": "u2netp_vehicle_half", "command": command, "step": str(done),
                    "selection": json.dumps(res), "input": TEACHER_META["input"], "data": TEACHER_META["data"],
                    "init": f"{args.teacher.name} (sha256 {teacher_sha}), distilled into U2NetPHalfTop"})
            torch.save({"student": student.state_dict(), "opt": opt.state_dict(), "step": done, "best": best}, args.ckpt)
        if out_of_time:
            break
    log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
