"""bgr_core.models.U2NetPHalfRes: U2NetP at half size but for a space-to-depth stem;
its tensors, shapes at any size (odd ones padded), what stage1 sees, batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bgr_core.models import MODEL_BUILDERS, U2NetP, U2NetPHalfRes


def _net(seed: int = 0) -> U2NetPHalfRes:
    torch.manual_seed(seed)
    return U2NetPHalfRes().eval()


def test_u2netp_tensors_but_a_folded_input_conv_and_registered():
    a, b = U2NetP().state_dict(), _net().state_dict()
    assert set(a) == set(b)
    differ = [k for k in a if a[k].shape != b[k].shape]
    assert differ == ["stage1.conv_in.conv.weight"] and b[differ[0]].shape == (64, 12, 3, 3)
    assert type(MODEL_BUILDERS["u2netp_vehicle_halfres"]()) is U2NetPHalfRes


@pytest.mark.parametrize("hw", [(64, 64), (45, 62), (33, 1), (1, 1)])
def test_every_block_at_half_size_and_outputs_at_full(hw):
    net = _net()
    x = torch.randn(2, 3, *hw)
    half = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    with torch.no_grad():
        trunk = net.trunk(x)
        hx1d, logits = net.top(x, trunk)
        probs = net(x, return_sides=True)
    assert trunk[0].shape == (2, 64, *half) and trunk[1].shape[-2:] == half and hx1d.shape[-2:] == half
    assert all(d.shape == (2, 1, *hw) for d in logits)
    assert len(probs) == 7 and all(((p >= 0) & (p <= 1)).all() for p in probs)


def test_stage1_sees_every_pixel_of_each_2x2_block():
    # folded, not pooled: a change inside one 2x2 block that keeps its mean still moves
    # stage1's features there
    net = _net()
    x = torch.randn(1, 3, 16, 16)
    y = x.clone()
    y[0, :, 4, 4] += 1.0
    y[0, :, 5, 5] -= 1.0
    assert torch.allclose(F.avg_pool2d(x, 2), F.avg_pool2d(y, 2), atol=1e-6)
    with torch.no_grad():
        hx, hy = net.encode1(x)[0], net.encode1(y)[0]
    assert (hx - hy).abs()[0, :, 2, 2].max() > 1e-4


def test_odd_sides_repeat_the_edge():
    # an odd side is padded with its last row / column: the net at (2h-1, w) sees what
    # it would see at (2h, w) with that row repeated, and answers at its own size
    net = _net(2)
    x = torch.randn(1, 3, 31, 20)
    padded = torch.cat([x, x[:, :, -1:]], dim=2)
    with torch.no_grad():
        a, b = net.trunk(x), net.trunk(padded)
        out = net(x)
    assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(a, b))
    assert out.shape == (1, 1, 31, 20)


def test_batch_equals_one_by_one():
    net = _net(1)
    x = torch.randn(3, 3, 50, 70)
    with torch.no_grad():
        batch = net(x)
        single = torch.cat([net(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-5)
