"""Background stage: white, transparent or a custom image behind the decontaminated vehicle."""

from __future__ import annotations

import torch

from ..frame import Frame
from ..functional.compose import composite, cover_resize, estimate_foreground
from .base import FrameStage

__all__ = ["ComposeBackground", "BACKGROUND_MODES"]

BACKGROUND_MODES = ("white", "transparent", "custom")


class ComposeBackground(FrameStage):
    """Compose each frame's vehicle over a new background into ``Frame.output``.

    Args:
        mode: ``"white"`` (RGB), ``"transparent"`` (RGBA with the soft matte as alpha) or
            ``"custom"`` (RGB over `background`, scaled to cover the canvas, centre-cropped).
        background: (3, h, w) in [0, 1], any size, for ``"custom"``.
        decontaminate: estimate the vehicle's own colours in the soft edge so no halo of
            the old background remains (blur fusion); off uses the raw pixels.

    Reads ``image``, ``alpha`` and, when present, ``shadow`` (darkens the background,
    or adds to the alpha of transparent output). Frames with ``error`` pass through.
    """

    name = "background"

    def __init__(self, mode: str = "white", background: torch.Tensor | None = None, decontaminate: bool = True):
        if mode not in BACKGROUND_MODES:
            raise ValueError(f"`mode` must be one of {', '.join(BACKGROUND_MODES)} but is '{mode}'")
        if mode == "custom" and (background is None or background.ndim != 3 or background.shape[0] != 3):
            raise ValueError("`background` must be a (3, h, w) tensor for mode 'custom'")
        self.mode = mode
        self.background = background
        self.decontaminate = decontaminate

    def __repr__(self) -> str:
        return f"ComposeBackground(mode={self.mode!r}, decontaminate={self.decontaminate})"

    def process(self, frame: Frame) -> Frame:
        if frame.alpha is None:
            raise ValueError("ComposeBackground needs `alpha` on the frame: run the segment stage first")
        image, alpha = frame.image[None], frame.alpha[None].to(frame.image.dtype)
        fg = estimate_foreground(image, alpha) if self.decontaminate else image
        shadow = frame.shadow[None] if frame.shadow is not None else None
        if self.mode == "transparent":
            if shadow is not None:
                # a black shadow under the car: opacity outside the vehicle, colour black
                out_alpha = alpha + (1 - alpha) * shadow
                fg = fg * (alpha / out_alpha.clamp_min(1e-6))
                alpha = out_alpha
            output = torch.cat([fg, alpha], dim=1)
        else:
            if self.mode == "white":
                bg = torch.ones_like(image)
            else:
                bg = cover_resize(self.background[None].to(image), frame.size)
            if shadow is not None:
                bg = bg * (1.0 - shadow)
            output = composite(fg, alpha, bg)
        return frame.replace(output=output[0].clamp(0.0, 1.0))
