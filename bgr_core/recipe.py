"""The recipe: which stages serve a request, in which order, configured how.

Order: segment → [SAM refinement] → windows → plates → layout → shadow (on the laid-out
canvas, in the room the layout keeps for it) → background (composed or generated). Only
the recipe decides which stages run; a stage that is off is left out.
"""

from __future__ import annotations

from typing import Any, Callable

from .functional.shadow import shadow_room
from .request import Request
from .stages.background import ComposeBackground
from .stages.base import Stage
from .stages.generative import GenerativeBackground
from .stages.layout import Layout
from .stages.plates import PlateDetector, PlateReplacement
from .stages.shadow import Shadow
from .stages.windows import WindowCorrection

__all__ = ["build_stages"]


def build_stages(
    request: Request,
    *,
    segment: Stage,
    sam: Callable[[], Stage],
    sam_available: Callable[[], bool],
    plate_detector: PlateDetector | None = None,
    inpainter: Callable[[], Any] | None = None,
    decontaminate: bool = True,
) -> list[Stage]:
    """The stages serving `request`.

    segment: the matte stage. sam: builds the SAM refinement stage (called only when the
    request uses it: ``refine="sam"``, or ``"auto"`` when `sam_available()`); inpainter:
    gives the Stable Diffusion pipeline (called only for ``generative_background``).
    The request's own images (custom background, replacement plate) are not the stages'
    business: they travel in each Frame, so one stage list serves every request with the
    same words. Missing optional weights raise `WeightsNotFound` from `sam` or
    `inpainter`."""
    stages: list[Stage] = [segment]
    if request.refine == "sam" or (request.refine == "auto" and sam_available()):
        stages.append(sam())  # before the windows and plates: they read alpha and box
    if request.window_correction != "none":
        stages.append(WindowCorrection(request.window_correction))
    if request.plate_replacement != "none":
        stages.append(PlateReplacement(request.plate_replacement, plate_detector))
    # the shadow is drawn on the laid-out canvas, in the room the layout keeps for it,
    # so that the edge of the original photo never cuts it
    shadow = request.effect == "shadow"
    reserve = shadow_room(request.shadow_softness) if shadow else None
    layout = Layout(request.layout, margin=request.margin, size=request.output_size,
                    aspect=request.aspect_ratio, reserve=reserve)
    if not layout.is_identity:
        stages.append(layout)
    if shadow:
        stages.append(Shadow(request.shadow_strength, request.shadow_softness))
    if request.background == "generative_background":
        if inpainter is None:
            raise ValueError("generative_background needs an `inpainter`")
        stages.append(GenerativeBackground(inpainter(), prompt=request.background_prompt,
                                           negative_prompt=request.background_negative_prompt, seed=request.seed))
    else:
        stages.append(ComposeBackground(request.background, decontaminate=decontaminate))
    return stages
