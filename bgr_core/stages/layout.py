"""Layout stage: ``none`` (original framing), ``center`` (car centred, even margins) or
``crop`` (tight around car and shadow). Every layer and coordinate moves together."""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch

from ..frame import Frame
from ..vocabulary import LAYOUTS
from ..functional.geometry import Placement, place_box, place_layer, place_points, union_box
from .base import Stage

__all__ = ["Layout", "LAYOUT_MODES", "parse_aspect", "canvas_bound"]

LAYOUT_MODES = LAYOUTS  # the API's words
_LAYERS = ("image", "alpha", "glass", "shadow", "output")  # not `photo`: it stays as decoded


def parse_aspect(aspect: str | float | tuple[int, int] | None) -> float | None:
    """``"4:3"``, ``"16/9"``, ``1.5`` or ``(4, 3)`` → width / height; None stays None."""
    if aspect is None:
        return None
    if isinstance(aspect, (int, float)) and not isinstance(aspect, bool):
        value = float(aspect)
    elif isinstance(aspect, tuple) and len(aspect) == 2:
        value = aspect[0] / aspect[1]
    elif isinstance(aspect, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*[:/x]\s*\d+(\.\d+)?\s*", aspect):
        w, h = re.split(r"[:/x]", aspect)
        value = float(w) / float(h)
    else:
        raise ValueError(f"`aspect` must look like '4:3' or '16:9' but is {aspect!r}")
    if not 0.1 <= value <= 10:
        raise ValueError(f"`aspect` must be between 1:10 and 10:1 but is {aspect!r}")
    return value


def shadow_box(shadow: torch.Tensor | None, threshold: float = 0.1) -> torch.Tensor | None:
    """XYXY box of the visible part of a (1, H, W) shadow layer, or None."""
    if shadow is None:
        return None
    ys, xs = torch.nonzero(shadow[0] > threshold, as_tuple=True)
    if ys.numel() == 0:
        return None
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()


def canvas_bound(mode: str, image_size: tuple[int, int], size: tuple[int, int] | None = None,
                 aspect: float | None = None) -> tuple[int, int]:
    """(width, height) the layout's canvas can reach for an image of `image_size` (H, W),
    known before any work: exact for ``center`` and ``none``; for ``crop`` an estimate (the
    crop holds the car, its shadow's room and a margin: about the image or less)."""
    if size is not None:
        return int(size[0]), int(size[1])
    h, w = image_size
    if aspect is not None:
        w, h = max(w, h * aspect), max(h, w / aspect)
    return int(round(w)), int(round(h))


def _on_whole_pixels(placement: Placement) -> Placement:
    """The placement moved by under half a pixel so that its offsets are whole: the
    layers are then resampled once, at exactly the scale (`place_layer`), not a second
    time for a sub-pixel shift, which would also soften them."""
    return dataclasses.replace(placement, offset_x=float(round(placement.offset_x)),
                               offset_y=float(round(placement.offset_y)))


class Layout(Stage):
    """Frame the vehicle.

    Args:
        mode: ``"none"``, ``"center"`` or ``"crop"``.
        margin: for ``center``, the free border on each side as a fraction of the canvas
            (default 0.05); for ``crop``, the border around car and shadow as a fraction of
            their larger side (default 0.03).
        size: output (width, height) in pixels; default the original canvas for ``center``
            and the crop itself for ``crop``. With a size the car is scaled to fit it.
        aspect: output aspect ratio (``"4:3"``, ``"16:9"``, ...) when no `size` is given:
            the canvas grows in one direction to reach it.
        reserve: room kept free around the vehicle box for a shadow drawn after the
            layout, ``(side, below)`` as shares of the box's width (on each side) and
            height (below): `bgr_core.functional.shadow.shadow_room`. The pipeline draws
            the shadow on the laid-out canvas so that no part of it is cut by the edge of
            the original photo.

    The car (its box united with the visible shadow) is scaled only to fit: on the
    original canvas it is scaled down when it would not fit inside the margins, never up.
    """

    name = "layout"

    def __init__(self, mode: str = "none", *, margin: float | None = None,
                 size: tuple[int, int] | None = None, aspect: str | float | tuple[int, int] | None = None,
                 reserve: tuple[float, float] | None = None):
        if mode not in LAYOUT_MODES:
            raise ValueError(f"`layout` must be one of {', '.join(repr(m) for m in LAYOUT_MODES)} but is '{mode}'")
        if margin is not None and not 0 <= margin < 0.5:
            raise ValueError(f"`margin` must be in [0, 0.5) but is {margin}")
        if size is not None and (len(size) != 2 or min(size) < 1 or max(size) > 20000):
            raise ValueError(f"`size` must be (width, height) with 1..20000 pixels but is {size}")
        self.mode = mode
        self.margin = margin if margin is not None else (0.05 if mode == "center" else 0.03)
        self.size = (int(size[0]), int(size[1])) if size is not None else None
        self.aspect = parse_aspect(aspect)
        if reserve is not None and (len(reserve) != 2 or not all(0 <= float(r) <= 2 for r in reserve)):
            raise ValueError(f"`reserve` must be (side, below) shares in [0, 2] but is {reserve}")
        self.reserve = None if reserve is None else (float(reserve[0]), float(reserve[1]))

    def __repr__(self) -> str:
        return f"Layout(mode={self.mode!r}, margin={self.margin}, size={self.size}, aspect={self.aspect})"

    @property
    def is_identity(self) -> bool:
        """Layout none without a size or aspect: nothing moves (the recipe leaves it out)."""
        return self.mode == "none" and self.size is None and self.aspect is None

    def __call__(self, frames: Sequence[Frame]) -> list[Frame]:
        out = list(frames)
        if self.is_identity:
            return out
        return [f if f.error is not None else self._lay_out(f) for f in out]

    def _lay_out(self, frame: Frame) -> Frame:
        placement, full = self.work_placement(frame)
        moved = self.apply(frame, placement)
        if full is not None:
            moved.meta["full_size"] = full
        return moved

    def placement(self, frame: Frame) -> Placement:
        """Where the frame's canvas goes for this layout.

        A frame at the working resolution (``frame.source`` set, ``meta["work_scale"]``
        working pixels per photo pixel) is laid out on a working canvas: `size` is scaled
        with it, and a canvas over ``meta["work_pixels"]`` is scaled down to it."""
        return self.work_placement(frame)[0]

    def work_placement(self, frame: Frame) -> tuple[Placement, tuple[int, int] | None]:
        """`placement` and, for a frame at the working resolution, the (H, W) of the
        full-resolution canvas its output is made at (None otherwise)."""
        placement = self._placement(frame)
        zoom = frame.meta.get("work_scale") if frame.source is not None else None
        if zoom is None:
            return _on_whole_pixels(placement), None
        out_h, out_w = placement.out_size
        if self.size is not None:
            full = (self.size[1], self.size[0])
        elif self.mode == "crop":
            full = (max(1, round(out_h / zoom)), max(1, round(out_w / zoom)))
        else:  # the photo's canvas, grown to the aspect: exact in full-resolution pixels
            full_w, full_h = canvas_bound(self.mode, frame.meta["source_size"], None, self.aspect)
            full = (full_h, full_w)
        cap = frame.meta.get("work_pixels")
        if cap is not None and out_h * out_w > cap:
            c = (cap / (out_h * out_w)) ** 0.5
            placement = Placement(placement.scale * c, placement.offset_x * c, placement.offset_y * c,
                                  (max(1, round(out_h * c)), max(1, round(out_w * c))))
        return _on_whole_pixels(placement), full

    def _placement(self, frame: Frame) -> Placement:
        if frame.box is None:
            raise ValueError("Layout needs `box` on the frame: run the segment stage first")
        h, w = frame.size
        size = self.size
        if size is not None and frame.source is not None and "work_scale" in frame.meta:
            zoom = frame.meta["work_scale"]
            size = (max(1, round(size[0] * zoom)), max(1, round(size[1] * zoom)))
        subject = union_box(frame.box.float(), shadow_box(frame.shadow)).tolist()
        if self.reserve is not None:
            bx0, by0, bx1, by1 = frame.box.float().tolist()
            side, below = self.reserve[0] * (bx1 - bx0), self.reserve[1] * (by1 - by0)
            subject = [min(subject[0], bx0 - side), subject[1], max(subject[2], bx1 + side), max(subject[3], by1 + below)]
        sx0, sy0, sx1, sy1 = subject
        sw, sh = max(sx1 - sx0, 1.0), max(sy1 - sy0, 1.0)
        if self.mode == "crop":
            pad = self.margin * max(sw, sh)
            cw, ch = sw + 2 * pad, sh + 2 * pad
            if size is None and self.aspect is not None:
                cw, ch = max(cw, ch * self.aspect), max(ch, cw / self.aspect)
            if size is None:
                out_w, out_h = round(cw), round(ch)
                scale = 1.0
            else:
                out_w, out_h = size
                scale = min(out_w / cw, out_h / ch)
            cx, cy = (sx0 + sx1) / 2, (sy0 + sy1) / 2
            return Placement(scale, out_w / 2 - scale * cx, out_h / 2 - scale * cy, (out_h, out_w))
        if size is not None:
            out_w, out_h = size
        else:
            out_w, out_h = canvas_bound(self.mode, (h, w), None, self.aspect)
        if self.mode == "none":  # only a new canvas size: keep the image centred, unscaled
            scale = min(1.0, out_w / w, out_h / h) if size is None else min(out_w / w, out_h / h)
            return Placement(scale, (out_w - scale * w) / 2, (out_h - scale * h) / 2, (out_h, out_w))
        room_w, room_h = out_w * (1 - 2 * self.margin), out_h * (1 - 2 * self.margin)
        scale = min(room_w / sw, room_h / sh)
        if size is None:
            scale = min(scale, 1.0)
        cx, cy = (sx0 + sx1) / 2, (sy0 + sy1) / 2
        return Placement(scale, out_w / 2 - scale * cx, out_h / 2 - scale * cy, (out_h, out_w))

    @staticmethod
    def apply(frame: Frame, placement: Placement) -> Frame:
        """Move every layer and coordinate of `frame` with `placement`."""
        changes = {}
        # layers of one size and dtype are resampled together (one call, the same values:
        # every channel is resampled on its own)
        groups: dict[tuple, list[str]] = {}
        for name in _LAYERS:
            layer = getattr(frame, name)
            if layer is not None:
                groups.setdefault((tuple(layer.shape[-2:]), layer.dtype, layer.device), []).append(name)
        for names in groups.values():
            layers = [getattr(frame, name) for name in names]
            placed = place_layer(torch.cat(layers)[None], placement)[0]
            for name, part in zip(names, placed.split([t.shape[0] for t in layers])):
                changes[name] = part
        if frame.box is not None:
            changes["box"] = place_box(frame.box.float(), placement)
        if frame.plates is not None:
            changes["plates"] = place_points(frame.plates.float(), placement)
        moved = frame.replace(**changes)
        moved.meta["placement"] = dataclasses.asdict(placement)
        return moved
