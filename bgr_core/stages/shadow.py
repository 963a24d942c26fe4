"""Shadow stage: a synthetic contact + ambient shadow under the vehicle (``effect=shadow``)."""

from __future__ import annotations

from ..frame import Frame
from ..functional.shadow import ground_contact, synthesize_shadow
from .base import FrameStage

__all__ = ["Shadow"]


class Shadow(FrameStage):
    """Set ``Frame.shadow`` (1, H, W), the opacity of a black shadow, from ``Frame.alpha``.

    Args:
        strength: opacity under the tyres, 0..1 (default 0.8).
        softness: scale of blurs and ambient extent (default 1.0; 2 = twice as soft).

    The contact points found are kept in ``frame.meta["ground_contacts"]`` (N, 2) and the
    ground line in ``frame.meta["ground_line"]`` (slope, intercept).
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
        contact = ground_contact(frame.alpha)
        shadow = synthesize_shadow(frame.alpha, self.strength, self.softness, contact)
        new = frame.replace(shadow=shadow)
        if contact is not None:
            new.meta["ground_contacts"] = contact.contacts
            new.meta["ground_line"] = (contact.slope, contact.intercept)
        return new
