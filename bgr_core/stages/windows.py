"""Window correction stage: find the glass and remove what shows through it.

The web API always removes what is seen through the windows (buildings, trees, other
cars); here it is on by default (``"tint"``) and can be made see-through or turned off.
The pure pieces live in `bgr_core.functional.glass`.
"""

from __future__ import annotations


import torch

from .. import loaders
from ..frame import Frame
from ..vocabulary import WINDOW_MODES
from ..functional import glass as G
from ..functional import glass_finish as GF
from ..models.glass_cues import GlassCueNet
from .base import FrameStage

__all__ = ["WindowCorrection", "WINDOW_MODES", "MODES"]

# the stage's modes: the API's words but "none" (off is the recipe's business)
MODES = tuple(m for m in WINDOW_MODES if m != "none")

# structure kept where the glass shows the outside world, as a share of `interior`
_OUTSIDE_DETAIL = 1 / 3


class WindowCorrection(FrameStage):
    """Detect each vehicle's glass into ``Frame.glass`` and correct it.

    Args:
        mode:
            ``"tint"`` (default): what the glass shows takes a dark, neutral glass tone
            with a soft vertical gradient (lighter at the top of each window), its
            colour and brightness replaced; its fine structure stays at reduced
            contrast: `interior` where it looks like the vehicle's own interior (seats,
            headrests, steering wheel: dark, unlike the background around the car), a
            third of that where it looks like the outside world seen through. The tint
            follows the window frame (`glass_finish.crisp_glass`). With `fill_alpha` the
            matte is raised to the glass, so windows that the matte saw through become
            opaque glass.
            ``"see_through"``: the same tint, and the matte inside the glass is lowered
            to `opacity` (halfway to opaque where the glass shows the interior, which
            stands in front of the new background), so a background composited later
            shows through the windows, dimmed by the tinted glass (transparent output:
            the glass alpha carries it).
            The API's ``"none"`` is not a mode: the recipe leaves the stage out.
        strength: how much of the glass colour is replaced by the tone, in [0, 1].
        interior: contrast of the interior's structure kept under the tint, in [0, 1]
            (0: one even tone on all the glass).
        opacity: the matte inside the glass for ``"see_through"``, in [0, 1].
        top, bottom: RGB in [0, 1] of the tone at the top and bottom of each window.
        fill_alpha: for ``"tint"``, raise the matte to the glass mask inside the glass.
        work_size, refine: see `bgr_core.functional.glass.detect_glass` (hand cues, a
            calibrated cue model, GrabCut; on held-out carparts photos it beat a glass
            head trained with the vehicle net: README, Window correction).

    Reads ``image`` and ``alpha``; sets ``glass`` (1, H, W) in [0, 1]
    and updates ``image`` (and ``alpha``) only where ``glass > 0``: every other pixel
    stays bit-identical. Frames with ``error`` pass through untouched; a frame without
    ``alpha`` raises `ValueError` (run the segment stage first).
    """

    name = "windows"

    def __init__(
        self,
        mode: str = "tint",
        *,
        strength: float = 1.0,
        interior: float = 0.5,
        opacity: float = 0.4,
        top: tuple[float, float, float] = GF.GLASS_TOP,
        bottom: tuple[float, float, float] = GF.GLASS_BOTTOM,
        fill_alpha: bool = True,
        work_size: int = G.WORK_SIZE,
        refine: bool = True,
        cues: GlassCueNet | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {', '.join(MODES)} but is '{mode}' (off: leave the stage out)")
        for name, value in (("strength", strength), ("interior", interior), ("opacity", opacity)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1] but is {value}")
        for name, colour in (("top", top), ("bottom", bottom)):
            if len(colour) != 3 or not all(0.0 <= float(c) <= 1.0 for c in colour):
                raise ValueError(f"`{name}` must be 3 RGB values in [0, 1] but is {colour}")
        if int(work_size) < 32:
            raise ValueError(f"`work_size` must be >= 32 but is {work_size}")
        self.mode = mode
        self.strength = float(strength)
        self.interior = float(interior)
        self.opacity = float(opacity)
        self.top = tuple(float(c) for c in top)
        self.bottom = tuple(float(c) for c in bottom)
        self.fill_alpha = bool(fill_alpha)
        self.work_size = int(work_size)
        self.refine = bool(refine)
        # the glass cue model (weights/glass_cues.safetensors unless given)
        self.cues = (cues if cues is not None else loaders.load_glass_cues()).numpy_params()

    def __repr__(self) -> str:
        return (
            f"WindowCorrection(mode={self.mode!r}, strength={self.strength}, "
            f"interior={self.interior}, opacity={self.opacity})"
        )

    def process(self, frame: Frame) -> Frame:
        if frame.alpha is None:
            raise ValueError("WindowCorrection needs `alpha` on the frame: run the segment stage first")
        with torch.no_grad():
            return self._correct(frame)

    def _correct(self, frame: Frame) -> Frame:
        image = frame.image[None]
        alpha = frame.alpha[None].to(image.dtype)
        likeness = None
        if self.interior > 0:
            glass, likeness = G.detect_glass(image, alpha, self.cues, work_size=self.work_size, refine=self.refine, likeness=True)
        else:
            glass = G.detect_glass(image, alpha, self.cues, work_size=self.work_size, refine=self.refine)
        warnings = list(frame.warnings)
        if not bool((glass >= 0.5).any()):
            warnings.append("window correction: no glass found")
        # the structure of the interior stays readable; what looks like the outside world
        # seen through keeps a third of that
        inside = 0.0 if likeness is None else 1 - likeness
        detail = self.interior * (_OUTSIDE_DETAIL + (1 - _OUTSIDE_DETAIL) * inside)
        new_image = GF.tint_glass(image, glass, strength=self.strength, top=self.top, bottom=self.bottom, detail=detail)
        if self.mode == "see_through":
            opacity = self.opacity + (1 - self.opacity) * 0.5 * inside
            new_alpha = GF.see_through_alpha(alpha, glass, opacity)
        elif self.fill_alpha:
            new_alpha = torch.where(glass > 0, torch.maximum(alpha, glass), alpha)
        else:
            new_alpha = alpha
        return frame.replace(
            image=new_image[0].to(frame.image.dtype),
            alpha=new_alpha[0].to(frame.alpha.dtype),
            glass=glass[0].to(frame.image.dtype),
            warnings=warnings,
        )
