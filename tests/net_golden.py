"""The shipped matte nets' shared test helpers: the net loaded strictly from its file, and
its golden-output check (tests/data/*_golden.npz, written by ``tools/vehicle_golden.py``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from bgr_core.functional.matte import normalize


def load_shipped(model: str, weights: Path) -> torch.nn.Module:
    """`MODEL_BUILDERS[model]` with `weights` loaded strictly on the CPU, in eval mode."""
    from safetensors.torch import load_file

    from bgr_core.models import MODEL_BUILDERS

    net = MODEL_BUILDERS[model]()
    net.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    return net.eval()


def check_golden(net: torch.nn.Module, golden: Path, weights: Path, regenerate: str) -> None:
    """`net` (loaded from `weights`) gives the stored output on the stored image, in
    float64 within 1e-4 and in float32 within 2e-3; `regenerate` is the command that
    rewrites the golden for new weights."""
    g = np.load(golden)
    assert str(g["weights_sha256"]) == hashlib.sha256(weights.read_bytes()).hexdigest(), (
        f"the golden belongs to other weights: run `{regenerate}`")
    x = normalize(torch.from_numpy(g["image"]).permute(2, 0, 1)[None].double().div(255))
    with torch.no_grad():
        out64 = net.double()(x)[0].float().numpy()
        out32 = net.float()(x.float())[0].numpy()
    assert out64.shape == (1, 160, 160)
    assert np.abs(out64 - g["out"]).max() < 1e-4
    assert np.abs(out32 - g["out"]).max() < 2e-3 and np.abs(out32 - g["out"]).mean() < 1e-4
    # the scene has a car and the net says so
    assert 0.05 < (g["out"][0] >= 0.5).mean() < 0.8
