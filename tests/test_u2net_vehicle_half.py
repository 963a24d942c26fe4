"""The shipped default vehicle net (weights/u2netp_vehicle_half.safetensors, a
`U2NetPHalfTop`): loads strictly, is the weighted average that `tools/average_weights.py`
writes of the distilled net (training/u2netp_vehicle_half_distilled.safetensors: the
vehicle net with only its top distilled) and that net fine-tuned
(training/u2netp_vehicle_half_b32.safetensors), and matches its golden output
(tests/data/u2netp_vehicle_half_golden.npz, written by
``python tools/vehicle_golden.py --model u2netp_vehicle_half``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from bgr_core import loaders
from bgr_core.models import U2NetPHalfTop
from net_golden import check_golden, load_shipped

ROOT = Path(__file__).parents[1]
WEIGHTS = ROOT / "weights" / "u2netp_vehicle_half.safetensors"
DISTILLED = ROOT / "training" / "u2netp_vehicle_half_distilled.safetensors"
TUNED = ROOT / "training" / "u2netp_vehicle_half_b32.safetensors"
TEACHER = ROOT / "weights" / "u2netp_vehicle.safetensors"
GOLDEN = Path(__file__).parent / "data" / "u2netp_vehicle_half_golden.npz"
TOP = ("stage1d.", "side1.", "outconv.")


@pytest.fixture(scope="module")
def net() -> U2NetPHalfTop:
    return load_shipped("u2netp_vehicle_half", WEIGHTS)


def test_distilled_net_is_the_vehicle_net_with_its_top_distilled():
    state, teacher = load_file(str(DISTILLED), device="cpu"), load_file(str(TEACHER), device="cpu")
    assert set(state) == set(teacher) and all(state[k].shape == teacher[k].shape for k in state)
    # the trunk is the teacher's, bit for bit; the top was learned
    assert all(torch.equal(state[k], teacher[k]) for k in state if not k.startswith(TOP))
    assert not torch.equal(state["stage1d.conv_in.conv.weight"], teacher["stage1d.conv_in.conv.weight"])
    with safe_open(str(DISTILLED), framework="pt") as f:
        meta = f.metadata()
    assert meta["model"] == "u2netp_vehicle_half" and "tools/distill_half_top.py" in meta["command"]
    assert hashlib.sha256(TEACHER.read_bytes()).hexdigest() in meta["init"]
    assert json.loads(meta["selection"])["agree"] > 0.99


def test_file_is_the_average_of_the_distilled_and_the_tuned_net():
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    from average_weights import DEFAULT_SOURCES, average

    state = load_file(str(WEIGHTS), device="cpu")
    assert [(p, w) for p, w in DEFAULT_SOURCES] == [(DISTILLED, 0.7), (TUNED, 0.3)]
    expected = average(list(DEFAULT_SOURCES))
    assert set(state) == set(expected) and all(torch.equal(state[k], expected[k]) for k in state)
    distilled = load_file(str(DISTILLED), device="cpu")
    # the tuning froze stage1 and stage2: the average keeps the teacher's there
    assert all(torch.allclose(state[k], distilled[k], rtol=0, atol=1e-6) for k in state if k.startswith(("stage1.", "stage2.")))
    assert not torch.allclose(state["stage4.conv_in.conv.weight"], distilled["stage4.conv_in.conv.weight"])
    with safe_open(str(WEIGHTS), framework="pt") as f:
        meta = f.metadata()
    assert meta["model"] == "u2netp_vehicle_half" and "Carvana" in meta["data"] and "Car Parts" in meta["data"]
    assert "tools/average_weights.py" in meta["command"]
    for path in (DISTILLED, TUNED):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in meta["init"]
    with safe_open(str(TUNED), framework="pt") as f:
        assert "tools/train_vehicle_net.py --half-top" in f.metadata()["command"]


def test_golden_output(net):
    check_golden(net, GOLDEN, WEIGHTS, "python tools/vehicle_golden.py --model u2netp_vehicle_half")


def test_loads_by_name_and_is_the_default():
    assert loaders.DEFAULT_MATTE_MODEL == "u2netp_vehicle_half"
    net = loaders.load_matte_net(device="cpu")
    assert net is loaders.load_matte_net("u2netp_vehicle_half", device="cpu")
    assert type(net) is U2NetPHalfTop and not net.training
    assert all(not p.requires_grad for p in net.parameters())
