"""tools/average_weights.py: the weighted average of nets, tensor by tensor."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import average_weights as A  # noqa: E402


def _files(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file({"w": torch.full((2, 3), 1.0), "b": torch.zeros(4)}, str(a))
    save_file({"w": torch.full((2, 3), 3.0), "b": torch.ones(4)}, str(b))
    return a, b


def test_average_is_the_weighted_sum(tmp_path):
    a, b = _files(tmp_path)
    out = A.average([(a, 0.75), (b, 0.25)])
    assert torch.allclose(out["w"], torch.full((2, 3), 1.5)) and torch.allclose(out["b"], torch.full((4,), 0.25))


def test_weights_must_sum_to_one_and_tensors_match(tmp_path):
    a, b = _files(tmp_path)
    with pytest.raises(ValueError, match="sum to 1"):
        A.average([(a, 0.5), (b, 0.6)])
    c = tmp_path / "c.safetensors"
    save_file({"w": torch.zeros(3, 2), "b": torch.zeros(4)}, str(c))
    with pytest.raises(ValueError, match="same tensors"):
        A.average([(a, 0.5), (c, 0.5)])


def test_main_writes_the_average_with_its_provenance(tmp_path):
    a, b = _files(tmp_path)
    out = tmp_path / "out.safetensors"
    A.main(["--source", f"{a}=0.5", "--source", f"{b}=0.5", "--model", "tiny", "--out", str(out)])
    assert torch.allclose(load_file(str(out))["w"], torch.full((2, 3), 2.0))
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["model"] == "tiny" and "tools/average_weights.py --source" in meta["command"]
    assert "0.5 x" in meta["init"] and "sha256" in meta["init"]
