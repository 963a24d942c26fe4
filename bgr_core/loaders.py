"""Load heavy models once per (weights file, device): on CPU, strictly, then moved."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch
from torch import nn

from . import weights
from .errors import RequestFailed

__all__ = ["load_u2netp", "resolve_device", "clear_cache"]

_CACHE: dict[tuple, nn.Module] = {}
_LOCK = threading.Lock()


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without CUDA → `RequestFailed`."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RequestFailed("device 'cuda' was asked for but CUDA is not available here")
    return dev


def load_u2netp(
    device: str | torch.device = "cpu", path: str | os.PathLike | None = None
) -> nn.Module:
    """The U2NetP net in eval mode on `device`, from the shipped safetensors (see `weights`)."""
    from safetensors.torch import load_file

    from .models import build_u2netp

    file = weights.resolve("u2netp", path)
    dev = torch.device(device)
    key = ("u2netp", str(Path(file).resolve()), str(dev))
    with _LOCK:
        net = _CACHE.get(key)
        if net is None:
            net = build_u2netp()
            try:
                state = load_file(str(file), device="cpu")
                net.load_state_dict(state, strict=True)
            except Exception as err:  # corrupt or foreign file
                raise RequestFailed(f"could not load U2NetP weights from '{file}': {err}") from err
            net = net.eval().requires_grad_(False).to(dev)
            _CACHE[key] = net
    return net


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
