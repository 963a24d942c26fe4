"""The glass cue model: a 16-unit tanh layer and a logistic output over the standardised
per-pixel cues of `bgr_core.functional.glass.glass_features` (weights:
``weights/glass_cues.safetensors``, loaded by `bgr_core.loaders.load_glass_cues`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["GlassCueNet", "GLASS_CUE_FEATURES"]

GLASS_CUE_FEATURES = 43  # len(bgr_core.functional.glass.FEATURE_NAMES)


class GlassCueNet(nn.Module):
    """(..., 43) cues → (...) probability that the pixel is glass."""

    def __init__(self, n_features: int = GLASS_CUE_FEATURES, hidden: int = 16):
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, features: Tensor) -> Tensor:
        return torch.sigmoid(self.out(torch.tanh(self.hidden(features))))[..., 0]

    def numpy_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(W1 (n, h), b1 (h,), w2 (h,), b2 ()) float32 C-contiguous arrays, for
        `bgr_core.functional.glass.glass_probability` (numpy, on small CPU canvases)."""
        w1 = np.ascontiguousarray(self.hidden.weight.detach().cpu().numpy().T)
        b1 = np.ascontiguousarray(self.hidden.bias.detach().cpu().numpy())
        w2 = np.ascontiguousarray(self.out.weight.detach().cpu().numpy()[0])
        b2 = self.out.bias.detach().cpu().numpy()[0]
        return w1, b1, w2, b2
