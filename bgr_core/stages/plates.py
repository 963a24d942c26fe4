"""Licence plates: find each plate as a quadrilateral and cover it with a custom or blank plate.

- `PlateDetection` is one found plate; `PlateDetector` the swappable detector protocol:
  ``detect(image, alpha, box) -> list[PlateDetection]``. The detectors live in
  `bgr_core.stages.plate_detectors` (`ContourPlateDetector`, the default, classical;
  `TorchScriptPlateDetector`, a learned one from a weights file); their steps are pure
  functions in `bgr_core.functional.plate_search` / `plate_features` / `plate_geometry`.
- `PlateReplacement` (stage "plates") sets ``Frame.plates`` (N, 4, 2) and draws the
  replacement into each quad with `bgr_core.functional.plates.overlay_plate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from ..frame import Frame
from ..functional.plate_border import outer_border
from ..functional.plates import order_quad, overlay_plate
from .base import FrameStage

__all__ = [
    "PlateDetection",
    "PlateDetector",
    "PlateReplacement",
    "NO_PLATE_WARNING",
]

NO_PLATE_WARNING = "no licence plate found"


@dataclass
class PlateDetection:
    """One plate: `quad` (4, 2) float32 (x, y) pixels clockwise from the top-left corner,
    on the canvas of the image it was found in, and a confidence `score` in [0, 1]."""

    quad: Tensor
    score: float
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.quad = torch.as_tensor(self.quad, dtype=torch.float32).reshape(4, 2)
        self.score = float(self.score)


@runtime_checkable
class PlateDetector(Protocol):
    """Anything that finds plates: ``detect(image (3, H, W) float [0, 1] RGB, alpha (1, H, W)
    or None, box (4,) XYXY or None) -> list[PlateDetection]`` (best first)."""

    def detect(self, image: Tensor, alpha: Tensor | None = None, box: Tensor | None = None) -> list[PlateDetection]:
        ...


# -- the stage ----------------------------------------------------------------------------------------


class PlateReplacement(FrameStage):
    """Find licence plates and cover them (``plate_replacement=image|blank``).

    Args:
        mode: ``"image"`` (cover each plate with the frame's ``plate_image``, a (3|4, h, w)
            float image in [0, 1]) or ``"blank"`` (a clean plate of the plate's colour, no
            text).
        detector: a `PlateDetector`; default `ContourPlateDetector()`.
        min_score: detections below this score are ignored.
        fill: colour of the letterbox bars around a replacement of another aspect ratio:
            ``"plate"`` (the original plate's colour), ``"white"`` or an RGB triple.
        match: light and blur the replacement like the original plate.
        cover_border: cover the old plate's rim, banner and frame too: the replacement
            goes into the detected quad grown to the plate's outer border
            (`bgr_core.functional.plate_border.outer_border`), kept in
            ``frame.meta["plate_outlines"]`` (N, 4, 2).

    Sets ``Frame.plates`` (N, 4, 2) float32 on the frame's device ((0, 4, 2) when none is
    found: the detected plates) and ``frame.meta["plate_scores"]``; draws into ``Frame.image``. When no plate
    is found the image is unchanged and ``"no licence plate found"`` is added to the
    frame's warnings. Frames with an error pass through untouched.
    """

    name = "plates"

    def __init__(
        self,
        mode: str = "image",
        detector: PlateDetector | None = None,
        min_score: float = 0.3,
        *,
        fill: str | Sequence[float] = "plate",
        match: bool = True,
        cover_border: bool = True,
    ):
        if mode not in ("image", "blank"):
            raise ValueError(f"`mode` must be 'image' or 'blank' but is {mode!r}")
        self.mode = mode
        if detector is None:
            from .plate_detectors import ContourPlateDetector

            detector = ContourPlateDetector()
        self.detector = detector
        if not isinstance(self.detector, PlateDetector):
            raise TypeError("`detector` must have a detect(image, alpha, box) method")
        self.min_score = float(min_score)
        self.fill = fill
        self.match = bool(match)
        self.cover_border = bool(cover_border)

    def __repr__(self) -> str:
        return f"PlateReplacement(mode={self.mode!r}, detector={self.detector!r}, min_score={self.min_score})"

    def process(self, frame: Frame) -> Frame:
        plate = _replacement(frame) if self.mode == "image" else None
        detections = [d for d in self.detector.detect(frame.image, frame.alpha, frame.box) if d.score >= self.min_score]
        detections.sort(key=lambda d: -d.score)
        dev = frame.device
        if not detections:
            new = frame.replace(plates=torch.zeros((0, 4, 2), dtype=torch.float32, device=dev))
            new.warnings.append(NO_PLATE_WARNING)
            new.meta["plate_scores"] = []
            return new
        quads = torch.stack([order_quad(d.quad.float()) for d in detections]).to(dev)
        image = frame.image
        plate = plate.to(dev) if plate is not None else None
        outlines = []
        for quad in quads:
            # the outline is found on the photo as it was, not on a plate already drawn
            outline = outer_border(frame.image, quad).to(quad) if self.cover_border else quad
            outlines.append(outline)
            image, _ = overlay_plate(image, outline, plate, fill=self.fill,
                                     match=self.match, colour_quad=quad)
        new = frame.replace(image=image, plates=quads)
        new.meta["plate_outlines"] = torch.stack(outlines)
        new.meta["plate_scores"] = [d.score for d in detections]
        return new


def _replacement(frame: Frame) -> Tensor:
    """The frame's replacement plate, checked: (3|4, h, w) float."""
    plate = frame.plate_image
    if plate is None:
        raise ValueError("plate replacement 'image' needs the frame's `plate_image` (a (3|4, h, w) image)")
    if not isinstance(plate, Tensor) or plate.ndim != 3 or plate.shape[0] not in (3, 4):
        raise ValueError(f"`plate_image` must be a (3|4, h, w) tensor but is {getattr(plate, 'shape', type(plate))}")
    if min(plate.shape[-2:]) < 1:
        raise ValueError("`plate_image` is empty")
    return plate if plate.is_floating_point() else plate.float()


def __getattr__(name: str):
    """The detectors, importable from here as before (loaded on first use: they import
    this module's record)."""
    if name in ("ContourPlateDetector", "TorchScriptPlateDetector", "LearnedPlateScorer"):
        from . import plate_detectors

        return getattr(plate_detectors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
