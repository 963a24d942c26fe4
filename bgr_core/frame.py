"""`Frame`: the record that flows through the stages, one per image.

Conventions (kornia / torchvision style):

- images are float tensors in [0, 1], channels first, RGB: ``image`` is (3, H, W);
- single-channel layers (``alpha``, ``glass``, ``shadow``) are (1, H, W) in [0, 1]
  on the same canvas as ``image``;
- ``box`` is (4,) XYXY in pixels, origin at the top-left corner, x to the right;
  ``plates`` is (N, 4, 2) points (x, y) clockwise from top-left;
- ``output`` is (3, H, W) RGB or (4, H, W) RGBA, the composed result;
- ``photo``: the photo as the pipeline decoded it, (3, Hp, Wp): windows and plates draw
  into ``image``, never into ``photo``, and the layout does not move it
  (``meta["placement"]`` maps it onto the canvas). The pipeline sets it to the very
  tensor it starts ``image`` with, so keeping it costs nothing;
- ``source``: set by the pipeline when the photo or its output canvas is larger than the
  working resolution (`bgr_core.functional.full_resolution.WORK_PIXELS`): the
  full-resolution photo (3, H0, W0) uint8 on the CPU, with ``image`` and ``photo`` a
  reduced working copy. Every layer and coordinate then refers to the working canvas;
  the background stage makes ``output`` at the full size ``meta["full_size"]`` (H, W) as
  uint8, the only thing ever held at that size;
- ``background_image`` / ``plate_image``: the request's own inputs, (3, Hb, Wb) and
  (3|4, Hp, Wp) float in [0, 1]: the custom background and the replacement plate. They
  are not layers of the canvas (no stage moves them); frames of one call that share an
  input share the tensor, so one stage list serves requests with different inputs;
- ``error`` is set (a `BGRError`) when a stage could not serve this frame, e.g.
  `NoData` when no vehicle is found; later stages pass such frames through untouched,
  so one bad image never fails its whole batch.

A stage reads what it needs and returns an updated Frame (``dataclasses.replace``);
it never reaches into another stage's internals. Geometry is meaningful only with
its canvas, `Frame.size` (H, W), which every stage that moves pixels updates together
with the layers (see the layout stage).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Frame"]


@dataclass
class Frame:
    image: torch.Tensor
    alpha: torch.Tensor | None = None
    box: torch.Tensor | None = None
    glass: torch.Tensor | None = None
    plates: torch.Tensor | None = None
    shadow: torch.Tensor | None = None
    output: torch.Tensor | None = None
    source: torch.Tensor | None = None
    photo: torch.Tensor | None = None
    background_image: torch.Tensor | None = None
    plate_image: torch.Tensor | None = None
    error: Exception | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """The canvas (H, W) that every layer and coordinate refers to."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.image.device

    def replace(self, **changes: Any) -> "Frame":
        """A new Frame with `changes`; lists and dicts are copied so frames never share them."""
        changes.setdefault("warnings", list(self.warnings))
        changes.setdefault("timings", dict(self.timings))
        changes.setdefault("meta", dict(self.meta))
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str) -> "Frame":
        """Every tensor layer moved to `device` (``source`` stays on the CPU)."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor) and f.name != "source"  # read on the CPU
        }
        return self.replace(**moved)

    def _repr_png_(self) -> bytes:
        """Notebook display: every layer present side by side (`bgr_core.display.stage_figure`)."""
        from .display import frame_png

        return frame_png(self)

    def check(self) -> None:
        """Raise `AssertionError` if the invariants above do not hold (used by tests)."""
        h, w = self.size
        assert self.image.ndim == 3 and self.image.shape[0] == 3, self.image.shape
        assert self.image.is_floating_point()
        for name in ("alpha", "glass", "shadow"):
            layer = getattr(self, name)
            if layer is not None:
                assert layer.shape == (1, h, w), (name, layer.shape, (h, w))
                assert float(layer.min()) >= 0.0 and float(layer.max()) <= 1.0, name
        if self.box is not None:
            x0, y0, x1, y1 = (float(v) for v in self.box)
            assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h, (self.box, (h, w))
        if self.plates is not None:
            assert self.plates.ndim == 3 and self.plates.shape[1:] == (4, 2), self.plates.shape
        if self.photo is not None:
            assert self.photo.ndim == 3 and self.photo.shape[0] == 3, self.photo.shape
        if self.background_image is not None:
            assert self.background_image.ndim == 3 and self.background_image.shape[0] == 3, self.background_image.shape
        if self.plate_image is not None:
            assert self.plate_image.ndim == 3 and self.plate_image.shape[0] in (3, 4), self.plate_image.shape
        if self.output is not None:
            assert self.output.shape[0] in (3, 4)
            if self.source is None:
                assert self.output.shape[1:] == (h, w), (self.output.shape, (h, w))
            else:
                assert tuple(self.output.shape[1:]) == tuple(self.meta["full_size"]), self.output.shape
