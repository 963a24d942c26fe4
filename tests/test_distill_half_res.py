"""tools/distill_half_res.py: the folded input convolution is the teacher's filter over
the 2x2 mean, the student starts from the half-top net with the teacher's stage1, steps
move only stage1 and the top, and the loss falls on a fixed batch."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import distill_half_res as D  # noqa: E402
from bgr_core.models import U2NetP, U2NetPHalfTop  # noqa: E402


def _files(tmp_path: Path) -> tuple[Path, Path]:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    teacher, init = tmp_path / "teacher.safetensors", tmp_path / "half.safetensors"
    save_file({k: v.contiguous() for k, v in U2NetP().state_dict().items()}, str(teacher))
    save_file({k: v.contiguous() for k, v in U2NetPHalfTop().state_dict().items()}, str(init))
    return teacher, init


def test_folded_conv_is_the_filter_over_the_2x2_mean():
    torch.manual_seed(1)
    w, x = torch.randn(8, 3, 3, 3), torch.randn(2, 3, 12, 10)
    folded = F.conv2d(F.pixel_unshuffle(x, 2), D.folded_conv_in(w), padding=1)
    assert torch.allclose(folded, F.conv2d(F.avg_pool2d(x, 2), w, padding=1), atol=1e-5)


def test_student_starts_from_the_half_top_net_with_the_teachers_stage1(tmp_path):
    from safetensors.torch import load_file

    teacher_file, init_file = _files(tmp_path)
    teacher, student = D.load_pair(teacher_file, init_file)
    t, i, s = teacher.state_dict(), load_file(str(init_file)), student.state_dict()
    for k in s:
        if k == "stage1.conv_in.conv.weight":
            assert torch.equal(s[k], D.folded_conv_in(t[k]))
        else:
            assert torch.equal(s[k], t[k] if k.startswith("stage1.") else i[k]), k


def test_steps_move_only_stage1_and_the_top(tmp_path):
    teacher, student = D.load_pair(*_files(tmp_path))
    t = {k: v.clone() for k, v in teacher.state_dict().items()}
    s = {k: v.clone() for k, v in student.state_dict().items()}
    with torch.no_grad():  # a student whose fused logit starts off
        student.outconv.bias += 2.0
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=3e-3)
    torch.manual_seed(3)
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    parts = []
    for _ in range(30):
        loss, part = D.distill_loss(student, teacher, x, 4.0, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        parts.append(part)
    assert set(parts[0]) == {"fused", "side", "feature"}
    after = student.state_dict()
    for k in t:
        assert torch.equal(t[k], teacher.state_dict()[k])  # the teacher never moves
        assert torch.equal(s[k], after[k]) != k.startswith(D.LEARNED), k
    # random nets answer about 0.5 everywhere: the fused term falls to its floor, the
    # feature term (stage1 against the teacher's pooled stage1) well below its start
    assert parts[-1]["fused"] < parts[0]["fused"] - 0.03
    assert parts[-1]["feature"] < 0.5 * parts[0]["feature"]
