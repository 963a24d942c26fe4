"""bgr_core.models.U2NetPHalfTop: U2NetP's tensors with its last decoder block at half
size; the trunk it shares with U2NetP, shapes at any size, batching."""

from __future__ import annotations

import pytest
import torch

from bgr_core.models import MODEL_BUILDERS, U2NetP, U2NetPHalfTop


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


def test_fused_map_alone_skips_only_the_sides():
    # forward() reads d0 alone: the side logits are not resized to the input size then
    _, half = _pair(2)
    x = torch.randn(1, 3, 45, 62)
    with torch.no_grad():
        hx1d, logits = half.features(x)
        hx1d_d0, (d0,) = half.features(x, sides=False)
        assert torch.equal(hx1d, hx1d_d0) and torch.equal(d0, logits[0])
        assert torch.equal(half(x), torch.sigmoid(logits[0]))
