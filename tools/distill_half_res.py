"""Distil the vehicle net into `bgr_core.models.U2NetPHalfRes` (the whole net at half
size but for a space-to-depth stem): ``weights/u2netp_vehicle_halfres.safetensors``.

    python tools/distill_half_res.py --until N       # stops (checkpointed) after step N
    python tools/distill_half_res.py --resume        # goes on from --ckpt

The teacher is the vehicle net (``weights/u2netp_vehicle.safetensors``, a `U2NetP`). The
student starts from the half-top net (``weights/u2netp_vehicle_half.safetensors``) with
stage1 replaced by the teacher's stage1 run on the folded input: its input convolution
takes each of the 4 sub-pixel copies of a channel at a quarter of the teacher's weight
(the teacher's filter over the 2x2 mean). stage1, stage1d, side1 and the fusion learn;
everything between them (stage2 to stage2d, sides 2-6) stays the teacher's, frozen.

Loss per batch: the binary cross-entropy of the student's fused logit against the
teacher's probability, `--edge-weight` times more within 3 px of the teacher's 0.5 level,
plus half that for the side output d1 (as `distill_half_top.distill_loss`), plus
`--feature-weight` times the mean squared difference between the student's stage1
output and the teacher's stage1 output max-pooled 2x2 (what the frozen stage2 was
trained on), over that target's mean square. The samples and sizes are those of
`distill_half_top` (the vehicle net's samples, 224 and 288 in turn), each a function
of (seed, step, index).

Every `--eval-every` steps the student is judged on the selection split as in
`distill_half_top` (agreement with the teacher at 224 and 288, and the split's score);
the best agreement is written to `--out`.
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
from distill_half_top import TEACHER_META, edge_band, judge, save, selection_images  # noqa: E402
from train_vehicle_net import SelectionSet, batch_tensors  # noqa: E402
from bgr_core.models import U2NetP, U2NetPHalfRes  # noqa: E402

LEARNED = ("stage1.", "stage1d.", "side1.", "outconv.")


def folded_conv_in(weight: torch.Tensor) -> torch.Tensor:
    """A (O, C, k, k) input convolution over a photo -> (O, 4 C, k, k) over its
    `F.pixel_unshuffle(., 2)`: each sub-pixel copy of channel c (channels 4c .. 4c+3)
    gets a quarter of c's weights, i.e. the same filter over the 2x2 mean."""
    return weight.repeat_interleave(4, dim=1) / 4


def load_pair(teacher_path: Path, init_path: Path, student_state: dict | None = None) -> tuple[U2NetP, U2NetPHalfRes]:
    """The frozen teacher and the student: `student_state`, or the half-top net's tensors
    (`init_path`) with the teacher's stage1 folded for the half-size input."""
    from safetensors.torch import load_file

    t_state = load_file(str(teacher_path), device="cpu")
    teacher, student = U2NetP(), U2NetPHalfRes()
    teacher.load_state_dict(t_state, strict=True)
    if student_state is None:
        student_state = load_file(str(init_path), device="cpu")
        for k, v in t_state.items():
            if k.startswith("stage1."):
                student_state[k] = v.clone()
        key = "stage1.conv_in.conv.weight"
        student_state[key] = folded_conv_in(t_state[key])
    student.load_state_dict(student_state, strict=True)
    teacher.eval().requires_grad_(False)
    student.eval().requires_grad_(False)  # eval: no dropout or norm layers anyway
    for name, p in student.named_parameters():
        p.requires_grad_(name.startswith(LEARNED))
    cl = torch.channels_last
    return teacher.to(memory_format=cl), student.to(memory_format=cl)


def distill_loss(student: U2NetPHalfRes, teacher: U2NetP, x: torch.Tensor, edge_weight: float,
                 feature_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's loss on one batch x (B, 3, S, S) normalised, and its parts."""
    with torch.no_grad():
        trunk = teacher.trunk(x)
        _, t = teacher.top(x, trunk)
        p0, p1 = torch.sigmoid(t[0]), torch.sigmoid(t[1])
        w = 1 + edge_weight * edge_band(p0).float()
        target = F.max_pool2d(trunk[0], 2, 2, ceil_mode=True)
    trunk_s = student.trunk(x)
    _, s = student.top(x, trunk_s)
    fused = (w * F.binary_cross_entropy_with_logits(s[0], p0, reduction="none")).sum() / w.sum()
    side = F.binary_cross_entropy_with_logits(s[1], p1)
    feat = F.mse_loss(trunk_s[0], target) / target.pow(2).mean().clamp_min(1e-6)
    loss = fused + 0.5 * side + feature_weight * feat
    return loss, {"fused": float(fused.detach()), "side": float(side.detach()), "feature": float(feat.detach())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--teacher", type=Path, default=ROOT / "weights" / "u2netp_vehicle.safetensors")
    ap.add_argument("--init", type=Path, default=ROOT / "weights" / "u2netp_vehicle_half.safetensors")
    ap.add_argument("--out", type=Path, default=ROOT / "weights" / "u2netp_vehicle_halfres.safetensors")
    ap.add_argument("--ckpt", type=Path, default=ROOT / "training" / "checkpoints" / "u2netp_vehicle_halfres.pt")
    ap.add_argument("--log", type=Path, default=ROOT / "training" / "u2netp_vehicle_halfres.log")
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sizes", default="224,288")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--edge-weight", type=float, default=4.0)
    ap.add_argument("--feature-weight", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=75)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--minutes", type=float, default=None, help="stop (checkpointed) after this long")
    ap.add_argument("--until", type=int, default=None,
                    help="stop (checkpointed) after this step; the learning rate still decays over --steps")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]

    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False) if args.resume else None
    teacher, student = load_pair(args.teacher, args.init, ck["student"] if ck else None)
    teacher_sha = hashlib.sha256(args.teacher.read_bytes()).hexdigest()
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    if ck:
        opt.load_state_dict(ck["opt"])
    first = ck["step"] if ck else 0
    best = ck["best"] if ck else None
    maker = V.SampleMaker(args.data, mirrors=True)
    sel = SelectionSet(args.data)
    command = "python tools/distill_half_res.py " + " ".join(argv if argv is not None else sys.argv[1:])
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
    start, parts = time.time(), []
    for step in range(first, args.steps):
        lr = args.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        size = sizes[step % len(sizes)]
        x = batch_tensors([maker.sample((args.seed, step, i), size=size) for i in range(args.batch)])["x"]
        loss, part = distill_loss(student, teacher, x, args.edge_weight, args.feature_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        parts.append({"loss": float(loss.detach()), **part})
        done = step + 1
        out_of_time = (args.minutes is not None and time.time() - start > 60 * args.minutes
                       or args.until is not None and done >= args.until)
        if done % args.eval_every == 0 or done == args.steps or out_of_time:
            res = {"step": done, **judge(sel, student, taught)}
            mean = {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
            record({"step": done, **mean, "minutes": (time.time() - start) / 60, "eval": res})
            parts = []
            if res["agree"] > best["agree"]:
                best = res
                save(student, args.out, {
                    "model": "u2netp_vehicle_halfres", "command": command, "step": str(done),
                    "selection": json.dumps(res), "input": TEACHER_META["input"], "data": TEACHER_META["data"],
                    "init": f"{args.teacher.name} (sha256 {teacher_sha}), distilled into U2NetPHalfRes "
                            f"from {args.init.name}"})
            torch.save({"student": student.state_dict(), "opt": opt.state_dict(), "step": done, "best": best}, args.ckpt)
        if out_of_time:
            break
    log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
