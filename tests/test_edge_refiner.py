"""The shipped edge refiner (weights/edge_refiner.safetensors): loads strictly from its
file's spec, matches its golden output (tests/data/edge_refiner_golden.npz, written by
tools/edge_refiner_golden.py), and the default pipeline runs it."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from bgr_core import Pipeline, loaders
from bgr_core.errors import RequestFailed, WeightsNotFound
from bgr_core.models.edge_refiner import EdgeRefinerNet

ROOT = Path(__file__).parents[1]
WEIGHTS = ROOT / "weights" / "edge_refiner.safetensors"
GOLDEN = Path(__file__).parent / "data" / "edge_refiner_golden.npz"
sys.path.insert(0, str(ROOT / "tools"))


def test_file_holds_the_net_its_spec_and_provenance():
    with safe_open(str(WEIGHTS), framework="pt") as f:
        meta = f.metadata()
    net = EdgeRefinerNet(int(meta["patch"]), tuple(int(v) for v in meta["hidden"].split(",")), int(meta["radius"]))
    state = load_file(str(WEIGHTS), device="cpu")
    assert set(state) == set(net.state_dict())
    assert "tools/train_edge_refiner.py" in meta["trained_by"] and float(meta["selection_iou"]) > 0.9
    # trained: the output layer is no longer the zero (identity) start
    assert state["out.weight"].abs().sum() > 0
    loaded = loaders.load_edge_refiner()
    assert loaded.patch == int(meta["patch"]) and loaded.radius == int(meta["radius"]) and not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())


def test_golden_output():
    from edge_refiner_golden import run

    g = np.load(GOLDEN)
    assert str(g["weights_sha256"]) == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest(), (
        "the golden belongs to other weights: run `python tools/edge_refiner_golden.py`")
    net = loaders.load_edge_refiner()
    out64 = run(net, g["image"], g["coarse"])
    out32 = run(net, g["image"], g["coarse"], torch.float32)
    assert next(net.parameters()).dtype == torch.float32  # the cached net is left as it was
    assert np.abs(out64 - g["out"]).max() < 1e-5
    assert np.abs(out32 - g["out"]).max() < 1e-3
    # the refiner changed the blurred, shifted outline (and nothing else)
    assert (np.abs(g["out"] - g["coarse"]) > 0.05).mean() > 0.005


def test_strict_load_refuses_a_foreign_file(tmp_path):
    state = load_file(str(WEIGHTS), device="cpu")
    with safe_open(str(WEIGHTS), framework="pt") as f:
        meta = f.metadata()
    state["extra"] = torch.zeros(1)
    bad = tmp_path / "edge_refiner.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(RequestFailed, match=r"(?s)edge_refiner.*Unexpected key"):
        loaders.load_edge_refiner(path=bad)


def test_missing_file_names_it_and_where_to_put_it(tmp_path):
    with pytest.raises(WeightsNotFound, match="edge_refiner.safetensors"):
        loaders.load_edge_refiner(path=tmp_path / "nowhere" / "edge_refiner.safetensors")


def test_pipeline_runs_it_by_default_and_can_leave_it_out():
    assert Pipeline("cpu").segment.edge_refiner is loaders.load_edge_refiner()
    assert Pipeline("cpu", refine_edges=False).segment.edge_refiner is None
