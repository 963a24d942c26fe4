"""bgr_core.models.U2NetPHalfTop (U2NetP's tensors with its last decoder block at half
size) and U2NetPHalfStage1 (stage1 ending at half size too): the trunk they share with
U2NetP, shapes at any size, batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bgr_core.models import MODEL_BUILDERS, RSU4F, RSU7, U2NetP, U2NetPHalfStage1, U2NetPHalfTop


def _pair(seed: int = 0) -> tuple[U2NetP, U2NetPHalfTop]:
    torch.manual_seed(seed)
    full = U2NetP().eval()
    half = U2NetPHalfTop().eval()
    half.load_state_dict(full.state_dict(), strict=True)
    return full, half


def test_same_tensors_as_u2netp_and_registered():
    full, half = _pair()
    a, b = full.state_dict(), half.state_dict()
    assert set(a) == set(b) and all(a[k].shape == b[k].shape for k in a)
    assert type(MODEL_BUILDERS["u2netp_vehicle_half"]()) is U2NetPHalfTop


def test_u2netp_is_its_trunk_then_its_top():
    full, _ = _pair()
    x = torch.randn(1, 3, 45, 62)
    with torch.no_grad():
        hx1d, logits = full.features(x)
        hx1d2, logits2 = full.top(x, full.trunk(x))
    assert torch.equal(hx1d, hx1d2) and all(torch.equal(a, b) for a, b in zip(logits, logits2))


@pytest.mark.parametrize("hw", [(64, 64), (45, 62), (33, 1), (1, 1)])
def test_last_block_runs_at_half_size_and_outputs_at_full(hw):
    full, half = _pair()
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        trunk = half.trunk(x)
        hx1d, logits = half.top(x, trunk)
        probs = half(x, return_sides=True)
    assert hx1d.shape[-2:] == trunk[1].shape[-2:] == ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    assert all(d.shape == (2, 1, *hw) for d in logits)
    assert len(probs) == 7 and all(((p >= 0) & (p <= 1)).all() for p in probs)
    # the side outputs of the trunk's blocks are U2NetP's, resized through half size
    with torch.no_grad():
        d6_full = full(x, return_sides=True)[6]
    assert torch.allclose(probs[6], d6_full, atol=0.05)


def test_same_tensors_give_another_net():
    # the top sees stage1's features pooled, not at full size: the weights must be
    # distilled for it (tools/distill_half_top.py)
    full, half = _pair()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(full(x), half(x))
    hx1d, _ = half.features(x)
    assert hx1d.shape[-2:] == (32, 32)


def test_batch_equals_one_by_one():
    _, half = _pair(1)
    x = torch.randn(3, 3, 50, 70)
    with torch.no_grad():
        batch = half(x)
        single = torch.cat([half(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-5)


# -- U2NetPHalfStage1: stage1 ends at half size too ------------------------------------


def test_rsu_forward_half_pools_only_the_last_level():
    torch.manual_seed(2)
    block = RSU7(3, 4, 8).eval()
    x = torch.randn(2, 3, 45, 62)
    with torch.no_grad():
        half = block.forward_half(x)
        full = block(x)
    assert half.shape == (2, 8, 23, 31)
    # the same deeper levels: close to the full block's output pooled, never equal
    pooled = F.max_pool2d(full, 2, 2, ceil_mode=True)
    assert not torch.allclose(half, pooled)
    assert torch.corrcoef(torch.stack([half.flatten(), pooled.flatten()]))[0, 1] > 0.5
    with pytest.raises(ValueError, match="dilated"):
        RSU4F(3, 4, 8).forward_half(x)


@pytest.mark.parametrize("hw", [(64, 64), (45, 62), (33, 1), (1, 1)])
def test_stage1_half_net_shapes(hw):
    torch.manual_seed(3)
    net = U2NetPHalfStage1().eval()
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        trunk = net.trunk(x)
        probs = net(x, return_sides=True)
    half = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    assert trunk[0].shape[-2:] == trunk[1].shape[-2:] == half
    assert len(probs) == 7 and all(p.shape == (2, 1, *hw) for p in probs)
    assert all(((p >= 0) & (p <= 1)).all() for p in probs)


def test_stage1_half_net_same_tensors_and_registered():
    full, half = _pair()
    s1 = U2NetPHalfStage1().eval()
    s1.load_state_dict(half.state_dict(), strict=True)
    assert type(MODEL_BUILDERS["u2netp_vehicle_half_s1"]()) is U2NetPHalfStage1
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(s1(x), half(x))
        # from stage2 on, the trunk is U2NetP's: fed the same stage1 output, the same
        hx1 = s1.stage1.forward_half(x)
        assert torch.equal(s1.stage2(hx1), full.stage2(hx1))


def test_stage1_half_net_batch_equals_one_by_one():
    torch.manual_seed(4)
    net = U2NetPHalfStage1().eval()
    x = torch.randn(3, 3, 50, 70)
    with torch.no_grad():
        batch = net(x)
        single = torch.cat([net(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-5)
