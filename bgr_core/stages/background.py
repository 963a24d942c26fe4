"""Background stage: white, transparent or a custom image behind the decontaminated vehicle."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..frame import Frame
from ..vocabulary import COMPOSED_BACKGROUNDS
from ..functional.compose import composite, cover_resize, estimate_foreground, shadow_into_alpha
from ..functional.geometry import Placement, place_layer
from ..functional.full_resolution import Affine1D, area_reduced, compose_full, edit_keep, guided_layers
from .base import FrameStage

__all__ = ["ComposeBackground", "BACKGROUND_MODES", "compose_full_size"]

# a full-resolution image scaled down more than this on the canvas is area-reduced
# first: the band sampler is bilinear and would alias
_REDUCE_ABOVE = 1.5


def _source_maps(frame: Frame, size: tuple[int, int], source: np.ndarray) -> tuple[np.ndarray, tuple[Affine1D, Affine1D]]:
    """The photo to sample (reduced where the layout shrinks it) and the (y, x) maps from
    a full-canvas coordinate to it."""
    full_h, full_w = size
    h, w = frame.size
    work_h, work_w = frame.meta["work_size"]
    p = frame.meta.get("placement") or {"scale": 1.0, "offset_x": 0.0, "offset_y": 0.0}
    k, ox, oy = float(p["scale"]), float(p["offset_x"]), float(p["offset_y"])
    src_h, src_w = source.shape[:2]
    # full canvas → working canvas → working photo (undo the placement) → source
    sy, sx = h / full_h / k * src_h / work_h, w / full_w / k * src_w / work_w
    factor = min(sy, sx)
    if factor > _REDUCE_ABOVE:
        source = area_reduced(source, 1 / factor)
        sy, sx = sy * source.shape[0] / src_h, sx * source.shape[1] / src_w
    return source, (Affine1D(sy, -oy * sy * full_h / h), Affine1D(sx, -ox * sx * full_w / w))


def _cover_maps(background: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[Affine1D, Affine1D]]:
    """The background to sample and its (y, x) maps: scaled to cover `size` (H, W),
    centre-cropped (as `cover_resize`)."""
    out_h, out_w = size
    h, w = background.shape[:2]
    scale = max(out_h / h, out_w / w)
    if 1 / scale > _REDUCE_ABOVE:
        background = area_reduced(background, scale)
        h, w = background.shape[:2]
        scale = max(out_h / h, out_w / w)
    new_h, new_w = max(out_h, math.ceil(h * scale - 1e-6)), max(out_w, math.ceil(w * scale - 1e-6))
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return background, (Affine1D(1 / scale, top / scale), Affine1D(1 / scale, left / scale))


def compose_full_size(frame: Frame, background: str | torch.Tensor | np.ndarray = "white_background",
                      decontaminate: bool = True) -> torch.Tensor:
    """The output of a frame at the working resolution (``frame.source`` set), made at
    its full size ``meta["full_size"]``: (3|4, H, W) uint8 on the CPU.

    background: ``"white_background"``, ``"transparent_background"``, a (3, h, w) layer on the working canvas
    (a generated background, upsampled) or an (hb, wb, 3) uint8 image (a custom
    background, sampled at full resolution, scaled to cover the canvas). The vehicle's
    matte, colours and edits come from the working layers, its detail from the source
    (`bgr_core.functional.full_resolution`)."""
    if isinstance(background, str):  # the API's word → compose_full's
        background = {"white_background": "white", "transparent_background": "transparent"}[background]
    image, alpha = frame.image, frame.alpha.to(frame.image.dtype).clamp(0, 1)
    photo = frame.photo if frame.photo is not None else image
    if "placement" in frame.meta and frame.photo is not None:  # the photo as decoded, onto the canvas
        photo = place_layer(photo[None], Placement(**frame.meta["placement"]))[0]
    fg = estimate_foreground(image[None], alpha[None])[0] if decontaminate else image
    keep = edit_keep(photo, image, frame.glass, alpha)
    layers = guided_layers(photo, alpha, fg, keep).cpu()
    size = tuple(int(v) for v in frame.meta["full_size"])
    h, w = frame.size
    source, to_source = _source_maps(frame, size, frame.source.permute(1, 2, 0).numpy())
    to_work = (Affine1D(h / size[0], 0.0), Affine1D(w / size[1], 0.0))
    to_background = None
    if isinstance(background, np.ndarray):
        background, to_background = _cover_maps(background, size)
    elif isinstance(background, torch.Tensor):
        background = background.detach().float().cpu()
    shadow = frame.shadow.detach().float().cpu() if frame.shadow is not None else None
    out = compose_full(source, to_source, layers, to_work, size, shadow=shadow,
                       background=background, to_background=to_background)
    return torch.from_numpy(out).permute(2, 0, 1)

BACKGROUND_MODES = COMPOSED_BACKGROUNDS  # the API's words


def _as_uint8(background: torch.Tensor) -> np.ndarray:
    """(3, h, w) float in [0, 1] → (h, w, 3) uint8 on the CPU: the decoded custom
    background's own values (it was made from uint8 / 255)."""
    return background.detach().float().clamp(0, 1).mul(255).add(0.5).byte().cpu().permute(1, 2, 0).contiguous().numpy()


class ComposeBackground(FrameStage):
    """Compose each frame's vehicle over a new background into ``Frame.output``.

    Args:
        mode: the API's word: ``"white_background"`` (RGB), ``"transparent_background"``
            (RGBA with the soft matte as alpha) or ``"custom_background"`` (RGB over the
            frame's ``background_image``, scaled to cover the canvas, centre-cropped).
        decontaminate: estimate the vehicle's own colours in the soft edge so no halo of
            the old background remains (blur fusion); off uses the raw pixels.

    Reads ``image``, ``alpha``, ``background_image`` (custom) and, when present, ``shadow`` (darkens the background,
    or adds to the alpha of transparent output). Frames with ``error`` pass through.
    A frame at the working resolution (``source`` set) gets its output at full size,
    uint8, from `compose_full_size`.
    """

    name = "background"

    def __init__(self, mode: str = "white_background", decontaminate: bool = True):
        if mode not in BACKGROUND_MODES:
            raise ValueError(f"`mode` must be one of {', '.join(BACKGROUND_MODES)} but is '{mode}'")
        self.mode = mode
        self.decontaminate = decontaminate
        # the last custom background as uint8 for the full-size path: frames of one call
        # share their background tensor, so it is converted once, not once a frame
        self._uint8: tuple[torch.Tensor, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"ComposeBackground(mode={self.mode!r}, decontaminate={self.decontaminate})"

    def process(self, frame: Frame) -> Frame:
        if frame.alpha is None:
            raise ValueError("ComposeBackground needs `alpha` on the frame: run the segment stage first")
        custom = frame.background_image
        if self.mode == "custom_background" and (custom is None or custom.ndim != 3 or custom.shape[0] != 3):
            raise ValueError("'custom_background' needs the frame's `background_image`, a (3, h, w) tensor")
        if frame.source is not None:  # at the working resolution: the output at full size
            background = self._custom_uint8(custom) if self.mode == "custom_background" else self.mode
            return frame.replace(output=compose_full_size(frame, background, self.decontaminate))
        image, alpha = frame.image[None], frame.alpha[None].to(frame.image.dtype)
        fg = estimate_foreground(image, alpha) if self.decontaminate else image
        shadow = frame.shadow[None] if frame.shadow is not None else None
        if self.mode == "transparent_background":
            if shadow is not None:  # a black shadow under the car: opacity outside the vehicle
                fg, alpha = shadow_into_alpha(fg, alpha, shadow)
            output = torch.cat([fg, alpha], dim=1)
        else:
            if self.mode == "white_background":
                # white under the shadow without a white canvas: the same values, broadcast
                white = torch.ones((1, 1, 1, 1), dtype=image.dtype, device=image.device)
                bg = ((1.0 - shadow) if shadow is not None else white).expand_as(image)
            else:
                bg = cover_resize(custom[None].to(image), frame.size)
                if shadow is not None:
                    bg = bg * (1.0 - shadow)
            output = composite(fg, alpha, bg)
        return frame.replace(output=output[0].clamp_(0.0, 1.0))  # a new tensor either way: clamped in place

    def _custom_uint8(self, custom: torch.Tensor) -> np.ndarray:
        cached = self._uint8
        if cached is None or cached[0] is not custom:
            cached = (custom, _as_uint8(custom))
            self._uint8 = cached  # one assignment: streams sharing the stage see either pair
        return cached[1]
