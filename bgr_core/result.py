"""`Result`: what `remove_background` returns — the API response plus the image and artefacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .frame import Frame
from .imageio import encode_image, write_atomic

__all__ = ["Result"]


def _layer(frame: Frame | None, name: str) -> np.ndarray | None:
    if frame is None or getattr(frame, name) is None:
        return None
    return getattr(frame, name)[0].detach().float().cpu().numpy()


@dataclass
class Result:
    """The web API's response (`output_url`, `error`, `error_description`) and, in the
    library, the image itself and the intermediate artefacts for notebooks.

    `error` is ``""`` on success, else one of the API codes. `frame` holds every layer
    as tensors; the properties below give them as numpy arrays on the CPU.
    """

    output_url: str | None = None
    error: str = ""
    error_description: str = ""
    frame: Frame | None = None
    extension: str = "png"
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def array(self) -> np.ndarray | None:
        """The output as (H, W, 3|4) uint8, RGB or RGBA."""
        if self.frame is None or self.frame.output is None:
            return None
        output = self.frame.output.detach()
        if output.dtype == torch.uint8:  # made at full size (the working resolution): as is
            return output.cpu().permute(1, 2, 0).contiguous().numpy()
        out = output.float().clamp(0, 1).mul_(255).add_(0.5)
        # truncated to uint8 by the copy into the (H, W, C) array itself (the same values
        # as .byte(); one strided copy instead of a byte tensor and a contiguous copy)
        hwc = torch.empty((*out.shape[1:], out.shape[0]), dtype=torch.uint8)
        return hwc.copy_(out.permute(1, 2, 0)).numpy()

    @property
    def image(self):
        """The output as a PIL image (RGB or RGBA), or None on error."""
        from PIL import Image

        array = self.array
        return None if array is None else Image.fromarray(array, "RGBA" if array.shape[2] == 4 else "RGB")

    @property
    def mask(self) -> np.ndarray | None:
        """Vehicle alpha matte (H, W) float in [0, 1] on the output's canvas (the working
        canvas when the photo or output is over the pipeline's `work_pixels`: then every
        layer and coordinate below is at the working resolution, only the image is full size)."""
        return _layer(self.frame, "alpha")

    @property
    def glass_mask(self) -> np.ndarray | None:
        return _layer(self.frame, "glass")

    @property
    def shadow(self) -> np.ndarray | None:
        return _layer(self.frame, "shadow")

    @property
    def plate_quads(self) -> np.ndarray | None:
        """(N, 4, 2) plate corners (x, y) clockwise from top-left, or None."""
        if self.frame is None or self.frame.plates is None:
            return None
        return self.frame.plates.detach().float().cpu().numpy()

    @property
    def box(self) -> np.ndarray | None:
        """Vehicle box (4,) XYXY pixels."""
        if self.frame is None or self.frame.box is None:
            return None
        return self.frame.box.detach().float().cpu().numpy()

    def encode(self, fmt: str | None = None) -> bytes:
        """The output encoded as png / jpg / webp bytes (default: the request's format)."""
        array = self.array
        if array is None:
            raise ValueError(f"no image to encode: {self.error}: {self.error_description}")
        return encode_image(array, fmt or self.extension)

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write the output atomically; the format follows the file's extension."""
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or self.extension
        return write_atomic(path, self.encode(fmt), overwrite=overwrite)

    def to_dict(self) -> dict[str, Any]:
        """The web API's JSON response."""
        return {
            "output_url": self.output_url or "",
            "error": self.error,
            "error_description": self.error_description,
        }

    def _repr_png_(self) -> bytes | None:
        """Notebook display: the output (at most 512 px tall, transparency over a
        checkerboard); None on error, so the text repr shows the error instead.
        `bgr_core.display.stage_figure(result)` draws every stage."""
        from .display import result_png

        return result_png(self)

    def __repr__(self) -> str:
        if not self.ok:
            return f"Result(error={self.error!r}, error_description={self.error_description!r})"
        h, w = (0, 0)
        if self.frame is not None:
            h, w = self.frame.output.shape[-2:] if self.frame.output is not None else self.frame.size
        return f"Result(ok, {w}x{h}, output_url={self.output_url!r}, warnings={self.warnings})"
