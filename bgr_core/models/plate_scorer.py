"""The learned plate scorer's nets: a tiny CNN over a rectified candidate joined with its
hand features, and an ensemble of such nets (weights: ``weights/plate_scorer.safetensors``,
loaded by `bgr_core.loaders.load_plate_scorer`)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["PlateScorerNet", "PlateScorerEnsemble"]


class PlateScorerNet(torch.nn.Module):
    """A tiny CNN over `plate_patch` (4, 48, 96) joined with the standardised hand features
    of the candidate (`feat_mean`, `feat_std`, `feat_mask` are buffers; features masked 0
    are ignored): one logit per candidate."""

    def __init__(self, n_feats: int, width: int = 16, size: tuple[int, int] = (96, 48), hidden: int = 32):
        super().__init__()
        nn = torch.nn
        c1, c2, c3, c4 = width, width * 3 // 2, width * 2, width * 3

        def block(i, o, stride):
            return [nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.conv = nn.Sequential(*block(4, c1, 2), *block(c1, c1, 1), *block(c1, c2, 2), *block(c2, c3, 2),
                                  *block(c3, c4, 2))
        fw, fh = size[0], size[1]
        for _ in range(4):
            fw, fh = (fw + 1) // 2, (fh + 1) // 2
        self.patch_fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(c4 * fw * fh, hidden), nn.ReLU(inplace=True))
        self.feat_fc = nn.Sequential(nn.Linear(n_feats, hidden), nn.ReLU(inplace=True))
        self.head = nn.Linear(2 * hidden, 1)
        self.register_buffer("feat_mean", torch.zeros(n_feats))
        self.register_buffer("feat_std", torch.ones(n_feats))
        self.register_buffer("feat_mask", torch.ones(n_feats))  # 0: a feature the scorer ignores

    def forward(self, patch: Tensor, feats: Tensor) -> Tensor:
        f = (feats - self.feat_mean) / self.feat_std * self.feat_mask
        x = torch.cat([self.patch_fc(self.conv(patch - 0.5)), self.feat_fc(f)], 1)
        return self.head(x).squeeze(1)


class PlateScorerEnsemble(torch.nn.Module):
    """Several `PlateScorerNet` trained alike from different seeds (``members.K.*``): the
    logit of their mean probability per candidate. One net's ranking of close candidates
    varies from seed to seed; the mean of a few is steadier."""

    def __init__(self, members: int, n_feats: int, **kw):
        super().__init__()
        self.members = torch.nn.ModuleList(PlateScorerNet(n_feats, **kw) for _ in range(members))

    def forward(self, patch: Tensor, feats: Tensor) -> Tensor:
        p = torch.stack([torch.sigmoid(m(patch, feats)) for m in self.members]).mean(0)
        return torch.logit(p, eps=1e-6)

