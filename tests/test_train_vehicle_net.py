"""tools/train_vehicle_net.py: one training step on a tiny batch, the starting point is
the generic net, frozen stages stay frozen, unknown labels pull towards the teacher."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import train_vehicle_net as T  # noqa: E402
from bgr_core.models import U2NetP  # noqa: E402


def _generic(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return U2NetP().state_dict()


def _batch(n: int = 2, size: int = 48) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        vehicle = np.zeros((size, size), np.float32)
        vehicle[10:40, 8:40] = 1
        glass = np.zeros_like(vehicle)
        glass[12:18, 12:36] = 1
        out.append({"image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "vehicle": vehicle,
                    "vweight": np.ones_like(vehicle), "glass": glass, "gweight": np.ones_like(vehicle)})
    return out


def test_student_starts_from_the_generic_net():
    generic = _generic()
    net = T.init_student(generic, 0)
    for k, v in generic.items():
        assert torch.equal(net.state_dict()[k], v)
    x = torch.randn(1, 3, 40, 40)
    teacher = U2NetP()
    teacher.load_state_dict(generic)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x)[:, :1], teacher.eval()(x), atol=1e-6)


def test_one_training_step_moves_what_trains_and_nothing_frozen():
    generic = _generic()
    net = T.init_student(generic, 0)
    groups = T.param_groups(net, 1e-3, 0.3, 10.0)
    opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    b = T.batch_tensors(_batch())
    teacher = T.teacher_net(generic)
    with torch.no_grad():
        t_prob = teacher(b["x"])
    loss, parts = T.loss_fn(net.train()(b["x"], logits=True), b, t_prob, 0.3)
    assert torch.isfinite(loss) and set(parts) == {"fuse", "side", "iou", "glass", "gdice"}
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = net.state_dict()
    for k in after:
        moved = not torch.equal(after[k], before[k])
        if k.split(".")[0] in T.FROZEN:
            assert not moved, k
    assert not torch.equal(after["glass.2.weight"], before["glass.2.weight"])
    assert not torch.equal(after["outconv.weight"], before["outconv.weight"])
    assert not torch.equal(after["stage3.conv_in.conv.weight"], before["stage3.conv_in.conv.weight"])


def test_unknown_pixels_are_pulled_towards_the_teacher():
    b = T.batch_tensors(_batch(1, 16))
    b["vweight"].zero_()  # nothing is known: only the teacher speaks
    teacher = torch.full_like(b["vehicle"], 0.9)
    logit = torch.logit(teacher)
    at_teacher = T.loss_fn((logit,) * 7 + (torch.zeros_like(logit),), b, teacher, 0.3)[1]["fuse"]
    away = T.loss_fn((-logit,) * 7 + (torch.zeros_like(logit),), b, teacher, 0.3)[1]["fuse"]
    assert at_teacher < away
    # and without distillation the unknown pixels cost nothing
    assert T.loss_fn((-logit,) * 7 + (torch.zeros_like(logit),), b, None, 0.0)[1]["fuse"] == 0.0


def test_saved_weights_are_the_body_only_and_load_strictly_into_the_runtime_net(tmp_path):
    from safetensors.torch import load_file

    from bgr_core.models import MODEL_BUILDERS

    net = T.init_student(_generic(), 0).eval()
    path = tmp_path / "net.safetensors"
    T.save_weights(net, path, {"model": "u2netp_vehicle"})
    state = load_file(str(path))
    assert not any(k.startswith("glass.") for k in state)  # the auxiliary head is not shipped
    runtime = MODEL_BUILDERS["u2netp_vehicle"]()
    runtime.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(runtime.eval()(x), net(x)[:, :1])


def test_half_top_student_trains_and_saves_the_default_nets_shape(tmp_path):
    """``--half-top``: the body is `U2NetPHalfTop` (the default matte net), the glass
    head's output comes at the input's size, a step trains it, and the saved body loads
    strictly into the runtime's ``u2netp_vehicle_half`` with the same output."""
    from safetensors.torch import load_file

    from bgr_core.models import MODEL_BUILDERS

    generic = _generic()
    net = T.init_student(generic, 0, half_top=True)
    assert isinstance(net, T.GlassAuxHalfNet)
    b = T.batch_tensors(_batch(2, 48))
    outputs = net.train()(b["x"], logits=True)
    assert len(outputs) == 8 and all(o.shape == (2, 1, 48, 48) for o in outputs)
    groups = T.param_groups(net, 1e-3, 0.3, 10.0)
    opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.0)
    loss, _ = T.loss_fn(outputs, b, None, 0.0)
    before = net.state_dict()["stage1d.conv_in.conv.weight"].clone()
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert not torch.equal(net.state_dict()["stage1d.conv_in.conv.weight"], before)
    path = tmp_path / "half.safetensors"
    T.save_weights(net.eval(), path, {"model": "u2netp_vehicle_half"})
    runtime = MODEL_BUILDERS["u2netp_vehicle_half"]()
    runtime.load_state_dict(load_file(str(path)), strict=True)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(runtime.eval()(x), net(x)[:, :1])
        assert not torch.allclose(runtime(x), T.init_student(generic, 0).eval()(x)[:, :1])  # not the full-size top


def test_emphasis_weighs_marked_pixels_more():
    b = T.batch_tensors(_batch(1, 16))
    logit = torch.zeros_like(b["vehicle"])
    wrong = logit.clone()
    wrong[..., :4, :4] = -8.0  # confidently wrong on a corner of the vehicle...
    b["vehicle"][..., :4, :4] = 1
    b["emphasis"][..., :4, :4] = 1  # ...that is marked
    outs = lambda x: (x,) * 7 + (torch.zeros_like(x),)  # noqa: E731
    plain = T.loss_fn(outs(wrong), b, None, 0.0)[1]["fuse"]
    weighed = T.loss_fn(outs(wrong), b, None, 0.0, emphasis=4.0)[1]["fuse"]
    assert weighed > 1.5 * plain
    # without marked pixels the weight changes nothing
    b["emphasis"].zero_()
    assert T.loss_fn(outs(wrong), b, None, 0.0, emphasis=4.0)[1]["fuse"] == plain


def test_contact_weight_weighs_the_marked_band_and_only_with_marks():
    samples = _batch(1, 16)
    samples[0]["contact"] = np.zeros((16, 16), np.float32)
    samples[0]["contact"][12:16, :] = 1  # the band along the lower outline
    b = T.batch_tensors(samples)
    assert b["contact"].shape == b["vehicle"].shape and b["contact"].sum() == 64
    wrong = torch.zeros_like(b["vehicle"])
    wrong[..., 12:16, :] = 8.0  # the floor under the car kept, confidently
    outs = lambda x: (x,) * 7 + (torch.zeros_like(x),)  # noqa: E731
    plain = T.loss_fn(outs(wrong), b, None, 0.0)[1]["fuse"]
    assert T.loss_fn(outs(wrong), b, None, 0.0, contact=3.0)[1]["fuse"] > 1.5 * plain
    # samples without marks (carparts, empty scenes) get zeros: the weight changes nothing
    b = T.batch_tensors(_batch(1, 16))
    assert b["contact"].sum() == 0
    assert T.loss_fn(outs(wrong), b, None, 0.0, contact=3.0)[1]["fuse"] == T.loss_fn(outs(wrong), b, None, 0.0)[1]["fuse"]


def test_outline_ring_is_the_labelled_background_near_the_vehicle():
    vehicle = torch.zeros(1, 1, 20, 20)
    vehicle[..., 6:12, 6:12] = 1
    weight = torch.ones_like(vehicle)
    weight[..., :, :5] = 0  # unlabelled on the left
    ring = T.outline_ring(vehicle, weight, 2)
    assert ring[..., 6:12, 6:12].sum() == 0  # never the vehicle itself
    assert ring[..., :, :5].sum() == 0  # never unlabelled pixels
    assert ring[0, 0, 4, 8] == 1 and ring[0, 0, 13, 13] == 1  # within 2 px (a square reach)
    assert ring[0, 0, 3, 8] == 0 and ring[0, 0, 15, 8] == 0  # beyond it


def test_ring_weight_weighs_background_next_to_the_vehicle():
    b = T.batch_tensors(_batch(1, 48))  # vehicle rows 10:40, columns 8:40
    outs = lambda x: (x,) * 7 + (torch.zeros_like(x),)  # noqa: E731
    near = torch.full_like(b["vehicle"], -8.0)
    near[b["vehicle"] > 0.5] = 8.0
    near[..., 40:43, 8:40] = 8.0  # a confident halo just below the vehicle
    far = torch.full_like(b["vehicle"], -8.0)
    far[b["vehicle"] > 0.5] = 8.0
    far[..., 45:48, 8:40] = 8.0  # the same error, away from the vehicle
    assert torch.isclose(T.loss_fn(outs(near), b, None, 0.0)[0], T.loss_fn(outs(far), b, None, 0.0)[0], rtol=1e-3)
    ringed = lambda x: T.loss_fn(outs(x), b, None, 0.0, ring=3.0, ring_px=4)[1]["fuse"]  # noqa: E731
    assert ringed(near) > 1.5 * ringed(far)


def test_hard_weight_weighs_the_pixels_on_the_wrong_side():
    b = T.batch_tensors(_batch(1, 48))  # vehicle rows 10:40, columns 8:40
    outs = lambda x: (x,) * 7 + (torch.zeros_like(x),)  # noqa: E731
    right = torch.where(b["vehicle"] > 0.5, 3.0, -3.0)
    wrong = right.clone()
    wrong[..., 10:14, 8:40] = -0.5  # a strip of the vehicle missed, mildly
    loss = lambda x, h: T.loss_fn(outs(x), b, None, 0.0, hard=h)[1]["fuse"]  # noqa: E731
    assert loss(wrong, 4.0) > 2.0 * loss(wrong, 0.0)
    assert loss(right, 4.0) == loss(right, 0.0)  # nothing on the wrong side: no change
    b["vweight"][..., 10:14, 8:40] = 0  # unlabelled pixels are never weighed
    assert loss(wrong, 4.0) == loss(wrong, 0.0)


def test_wheels_without_mirror_weight_is_refused(capsys):
    with pytest.raises(SystemExit):
        T.main(["--wheels"])
    assert "--mirror-weight" in capsys.readouterr().err


def test_resume_from_a_net_only_checkpoint_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "net_only.pt"
    torch.save({"net": _generic()}, ckpt)
    with pytest.raises(SystemExit):
        T.main(["--resume", "--ckpt", str(ckpt)])
    assert "--init" in capsys.readouterr().err


def test_an_iou_floor_keeps_a_studio_loss_from_being_the_best():
    start = {"score": 1.0, "iou320": 0.975, "iou224": 0.966, "iou_min320": 0.95}
    trade = {"score": 1.002, "iou320": 0.971, "iou224": 0.966, "iou_min320": 0.92}
    even = {"score": 1.002, "iou320": 0.9745, "iou224": 0.967, "iou_min320": 0.90}
    assert T.beats(trade, start, start, None)  # the score alone takes it
    assert not T.beats(trade, start, start, 0.001)
    assert T.beats(even, start, start, 0.001)
    assert not T.beats({**even, "score": 0.999}, start, start, 0.001)
