"""Vehicle matte stage (work in progress: first version, raw net + bilinear upsampling)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import NoData
from ..frame import Frame
from .base import Stage, timed

__all__ = ["VehicleMatte"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VehicleMatte(Stage):
    name = "segment"

    def __init__(self, net: torch.nn.Module, *, net_size: int = 320, **_: object) -> None:
        self.net = net
        self.net_size = net_size

    def __call__(self, frames: Sequence[Frame]) -> list[Frame]:
        out = list(frames)
        todo = [i for i, f in enumerate(frames) if f.error is None]
        with torch.inference_mode():
            for i in todo:
                f = frames[i]
                img = f.image[None].float()
                x = F.interpolate(img, size=(self.net_size, self.net_size), mode="bilinear", align_corners=False)
                mean = torch.tensor(_MEAN, device=x.device).view(1, 3, 1, 1)
                std = torch.tensor(_STD, device=x.device).view(1, 3, 1, 1)
                p = self.net((x - mean) / std)
                a = F.interpolate(p, size=f.size, mode="bilinear", align_corners=False).clamp(0, 1)[0]
                m = a[0] >= 0.5
                if m.sum() < 0.005 * m.numel():
                    out[i] = f.replace(error=NoData("no vehicle found in the image"))
                    continue
                ys, xs = torch.nonzero(m, as_tuple=True)
                box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
                out[i] = f.replace(alpha=a.to(f.image.dtype), box=box)
        return out
