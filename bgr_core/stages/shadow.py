"""Shadow stage: a synthetic contact + ambient shadow under the vehicle (``effect=shadow``)."""

from __future__ import annotations

import torch.nn.functional as F

from ..frame import Frame
from ..functional.shadow import ground_contact, synthesize_shadow
from .base import FrameStage

__all__ = ["Shadow", "WORK_PIXELS"]

# the shadow is smooth (its finest detail, the blur, is 0.4 % of the car's diagonal): it
# is drawn on at most this many pixels and upsampled. 2 MP until 7 December; at 1 MP a 3
# or 4 MP canvas takes 28-30 ms instead of 47-55, the layer within 0.13 of the full-size
# one on 6 photos of 2.2-3 MP, as the 2 MP one was
WORK_PIXELS = 1_000_000


class Shadow(FrameStage):
    """Set ``Frame.shadow`` (1, H, W), the opacity of a black shadow, from ``Frame.alpha``.

    Args:
        strength: opacity under the tyres, 0..1 (default 0.8).
        softness: scale of blurs and ambient extent (default 1.0; 2 = twice as soft).

    On canvases over `WORK_PIXELS` the shadow is drawn on a smaller copy of the matte and
    upsampled (bilinear). The tyres' contact points found are kept in
    ``frame.meta["ground_contacts"]`` (N, 2) (x, y) canvas pixels.
    """

    name = "shadow"

    def __init__(self, strength: float = 0.8, softness: float = 1.0):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"`strength` must be in [0, 1] but is {strength}")
        if not 0.1 <= softness <= 10.0:
            raise ValueError(f"`softness` must be in [0.1, 10] but is {softness}")
        self.strength, self.softness = float(strength), float(softness)

    def __repr__(self) -> str:
        return f"Shadow(strength={self.strength}, softness={self.softness})"

    def process(self, frame: Frame) -> Frame:
        if frame.alpha is None:
            raise ValueError("Shadow needs `alpha` on the frame: run the segment stage first")
        h, w = frame.size
        scale = min(1.0, (WORK_PIXELS / (h * w)) ** 0.5)
        alpha = frame.alpha
        if scale < 1.0:
            small = (max(1, round(h * scale)), max(1, round(w * scale)))
            alpha = F.interpolate(alpha[None].float(), size=small, mode="area")[0].to(frame.alpha.dtype)
        contact = ground_contact(alpha)
        shadow = synthesize_shadow(alpha, self.strength, self.softness, contact)
        if scale < 1.0:
            shadow = F.interpolate(shadow[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
            shadow = shadow.clamp_(0, 1).to(frame.alpha.dtype)  # the resize made a new tensor
        new = frame.replace(shadow=shadow)
        if contact is not None:
            sy, sx = h / alpha.shape[-2], w / alpha.shape[-1]
            new.meta["ground_contacts"] = contact.contacts * [sx, sy]
        return new
