"""tools/distill_half_top.py: the student starts as the teacher's tensors, one step
moves only stage1d, side1 and the fusion, and the loss falls on a fixed batch."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import distill_half_top as D  # noqa: E402
from bgr_core.models import U2NetP  # noqa: E402


def _teacher_file(tmp_path: Path) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in U2NetP().state_dict().items()}, str(path))
    return path


def test_edge_band_marks_both_sides_of_the_half_level():
    prob = torch.zeros(1, 1, 20, 20)
    prob[..., 5:15, 5:15] = 1
    band = D.edge_band(prob, px=2)
    assert band[0, 0, 10, 4] and band[0, 0, 10, 6] and band[0, 0, 10, 15]
    assert not band[0, 0, 10, 10] and not band[0, 0, 10, 0]


def test_one_step_moves_only_the_top(tmp_path):
    teacher, student = D.load_pair(_teacher_file(tmp_path))
    t = {k: v.clone() for k, v in teacher.state_dict().items()}
    s = {k: v.clone() for k, v in student.state_dict().items()}
    assert all(torch.equal(t[k], s[k]) for k in t)
    learned = [n for n, p in student.named_parameters() if p.requires_grad]
    assert learned and all(n.startswith(D.LEARNED) for n in learned)
    with torch.no_grad():  # a student that starts off: its fused logit shifted
        student.outconv.bias += 0.5
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=0.05)
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def gap() -> float:  # how far the student's output is from the teacher's
        with torch.no_grad():
            return float((student(x) - teacher(x)).abs().mean())

    before = gap()
    for _ in range(40):
        loss = D.distill_loss(student, teacher, x, 4.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = student.state_dict()
    for k in t:
        assert torch.equal(t[k], teacher.state_dict()[k])  # the teacher never moves
        assert torch.equal(s[k], after[k]) != k.startswith(D.LEARNED)
    assert gap() < 0.5 * before
