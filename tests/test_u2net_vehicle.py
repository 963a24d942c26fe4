"""The shipped vehicle net (weights/u2netp_vehicle.safetensors): loads strictly, matches
its golden output (tests/data/u2netp_vehicle_golden.npz, written by
tools/vehicle_golden.py), and is selectable by name (the default net is distilled from it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from bgr_core import loaders
from bgr_core.models import MODEL_BUILDERS, U2NetP
from net_golden import check_golden, load_shipped

ROOT = Path(__file__).parents[1]
WEIGHTS = ROOT / "weights" / "u2netp_vehicle.safetensors"
GOLDEN = Path(__file__).parent / "data" / "u2netp_vehicle_golden.npz"


@pytest.fixture(scope="module")
def net() -> U2NetP:
    return load_shipped("u2netp_vehicle", WEIGHTS)


def test_file_holds_the_u2netp_body_with_provenance():
    state = load_file(str(WEIGHTS), device="cpu")
    generic = U2NetP().state_dict()
    assert set(state) == set(generic) and all(state[k].shape == generic[k].shape for k in state)
    # fine-tuned, not a copy of the generic net
    shipped = load_file(str(ROOT / "weights" / "u2netp.safetensors"), device="cpu")
    assert not torch.equal(state["stage1d.conv_in.conv.weight"], shipped["stage1d.conv_in.conv.weight"])
    with safe_open(str(WEIGHTS), framework="pt") as f:
        meta = f.metadata()
    assert meta["model"] == "u2netp_vehicle" and "Carvana" in meta["data"] and "Car Parts" in meta["data"]
    assert "tools/train_vehicle_net.py" in meta["command"]
    assert json.loads(meta["selection"])["score"] > 0


def test_golden_output(net):
    check_golden(net, GOLDEN, WEIGHTS, "python tools/vehicle_golden.py")


def test_registry_and_loader():
    assert type(MODEL_BUILDERS["u2netp_vehicle"]()) is U2NetP
    net = loaders.load_matte_net("u2netp_vehicle", device="cpu")
    assert type(net) is U2NetP and not net.training
    assert all(not p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="unknown matte model"):
        loaders.load_matte_net("u2net_full")
