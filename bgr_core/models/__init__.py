"""Neural network modules (nn.Module only; weights are loaded elsewhere).

``MODEL_BUILDERS`` maps a model name to a function that builds the bare,
randomly initialised module; load weights with ``bgr_core.weights`` and
``load_state_dict(strict=True)``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .glass_cues import GlassCueNet
from .plate_scorer import PlateScorerEnsemble, PlateScorerNet
from .u2net import RSU, RSU4, RSU4F, RSU5, RSU6, RSU7, ConvReLU, U2NetP, U2NetPHalfTop

__all__ = [
    "U2NetP",
    "U2NetPHalfTop",
    "GlassCueNet",
    "PlateScorerNet",
    "PlateScorerEnsemble",
    "build_u2netp_vehicle",
    "build_u2netp_vehicle_half",
    "RSU",
    "RSU7",
    "RSU6",
    "RSU5",
    "RSU4",
    "RSU4F",
    "ConvReLU",
    "build_u2netp",
    "MODEL_BUILDERS",
]


def build_u2netp(**kwargs) -> U2NetP:
    """U2NetP with the released configuration (in_ch=3, out_ch=1, mid 16, blocks 64)."""
    return U2NetP(**kwargs)


def build_u2netp_vehicle(**kwargs) -> U2NetP:
    """U2NetP for the weights trained on vehicle masks (``u2netp_vehicle.safetensors``):
    the same module as the generic net, its output the vehicle the photo is about."""
    return U2NetP(**kwargs)


def build_u2netp_vehicle_half(**kwargs) -> U2NetPHalfTop:
    """U2NetP with its last decoder block at half size, for the default weights
    (``u2netp_vehicle_half.safetensors``: distilled from the vehicle net, then averaged with
    that net fine-tuned; weights/README.md): the vehicle, at about half the arithmetic."""
    return U2NetPHalfTop(**kwargs)


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "u2netp": build_u2netp,
    "u2netp_vehicle": build_u2netp_vehicle,
    "u2netp_vehicle_half": build_u2netp_vehicle_half,
}
