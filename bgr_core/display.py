"""Pictures of frames and results for notebooks and galleries (PIL and numpy only).

- `stage_figure(frame_or_result)`: the stages side by side, one labelled panel per
  layer the frame has: ``image``, ``matte``, ``glass``, ``plates``, ``shadow``,
  ``output``. Layers a frame does not have (``None``: the stage did not run) are
  **skipped**, so the figure shows exactly what the pipeline produced.
- `montage([(label, image), ...])`: any images side by side, labelled, one row height.
- `result_png` / `frame_png`: the PNG bytes behind ``Result._repr_png_`` (the output
  alone) and ``Frame._repr_png_`` (its stage figure).

Transparent output (RGBA) is drawn over a light checkerboard. Panels are downscaled
(never upscaled) to at most `height` pixels tall, capped at `MAX_HEIGHT`, so the PNGs
stay small whatever the photo's size.

The ``image`` panel is the frame's working image as the stages left it: after window
correction the glass is tinted, after plate replacement the plate is drawn, after
layout it is on the output canvas.
"""

from __future__ import annotations

import io
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "stage_panels",
    "stage_figure",
    "montage",
    "to_pil",
    "checkerboard",
    "png_bytes",
    "result_png",
    "frame_png",
    "PANEL_HEIGHT",
    "MAX_HEIGHT",
]

PANEL_HEIGHT = 256  # default panel height in pixels
MAX_HEIGHT = 512  # no panel is ever taller: notebooks stay light
LABEL_HEIGHT = 18
GAP = 4
_GLASS_COLOUR = (0.0, 0.85, 1.0)
_PLATE_COLOUR = (255, 0, 200)
_TEXT_COLOUR = (40, 40, 40)

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]


# -- conversions --------------------------------------------------------------------------------


def checkerboard(height: int, width: int, cell: int = 8) -> np.ndarray:
    """(H, W, 3) uint8 light-grey checkerboard, the usual backdrop of transparency."""
    yy, xx = np.mgrid[0:height, 0:width]
    light = ((yy // cell + xx // cell) % 2).astype(bool)
    out = np.where(light, 255, 222).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def _flatten(array: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA → (H, W, 3) uint8 over the checkerboard; RGB passes through."""
    if array.shape[2] != 4:
        return array
    a = array[..., 3:4].astype(np.float32) / 255.0
    under = checkerboard(*array.shape[:2]).astype(np.float32)
    return (array[..., :3] * a + under * (1.0 - a) + 0.5).astype(np.uint8)


def _shrink(layer: torch.Tensor, height: int) -> torch.Tensor:
    """(C, H, W) float (or uint8) → (C, h, w) float on the CPU with h = min(H, height), aspect kept.

    Downscaled in torch (antialiased) before any conversion, so a 24 MP frame never
    goes through numpy at full size."""
    if layer.dtype == torch.uint8:  # a full-size output: thinned before it becomes float
        step = max(1, layer.shape[-2] // (2 * height))
        layer = layer[:, ::step, ::step].float().div(255.0)
    layer = layer.detach().float().cpu()
    h, w = layer.shape[-2:]
    if h <= height:
        return layer
    size = (height, max(1, round(w * height / h)))
    return F.interpolate(layer[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _uint8(layer: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] → (H, W, C) uint8."""
    return layer.clamp(0, 1).mul(255).add(0.5).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def to_pil(image: ImageLike) -> Image.Image:
    """A PIL RGB image from a PIL image, an (H, W[, 3|4]) uint8 / float [0, 1] array or
    a (1|3|4, H, W) float [0, 1] tensor; RGBA is flattened over the checkerboard."""
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    elif isinstance(image, torch.Tensor):
        array = _uint8(image.detach().float().cpu())
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = (np.clip(array.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(_flatten(array)), "RGB")


def png_bytes(image: Image.Image) -> bytes:
    """PNG bytes of a PIL image."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


# -- panels of a frame --------------------------------------------------------------------------


def _frame_of(item: Any):
    """The Frame of a Frame or a Result (ValueError when a Result has none)."""
    frame = getattr(item, "frame", item)
    if frame is None or not hasattr(frame, "image"):
        error = getattr(item, "error", "")
        raise ValueError(f"nothing to draw: the result has no frame ({error or 'empty'})")
    return frame


def stage_panels(item: Any, height: int = PANEL_HEIGHT) -> list[tuple[str, Image.Image]]:
    """One (label, PIL RGB image) per layer present on a Frame or a Result's frame.

    Order: ``image`` (3, H, W), ``matte`` (alpha (1, H, W), grey), ``glass`` (cyan over
    the dimmed image), ``plates`` (quads (N, 4, 2) outlined on the image; drawn even
    when none was found, labelled ``plates (0)``), ``shadow`` (black on white, the
    vehicle faint), ``output`` (3 or 4, H, W; RGBA over a checkerboard). Missing layers
    are skipped. Panels are ``min(H, height)`` pixels tall (`height` capped at 512).
    """
    frame = _frame_of(item)
    h = min(int(height), MAX_HEIGHT)
    image = _shrink(frame.image[:3], h)
    scale = image.shape[-2] / frame.size[0]
    shrink = lambda layer: _shrink(layer, image.shape[-2])  # noqa: E731  (same canvas as `image`)
    panels = [("image", Image.fromarray(_uint8(image)))]
    if frame.alpha is not None:
        panels.append(("matte", to_pil(shrink(frame.alpha))))
    if frame.glass is not None:
        glass = shrink(frame.glass)
        cyan = torch.tensor(_GLASS_COLOUR).view(3, 1, 1)
        panels.append(("glass", Image.fromarray(_uint8(image * 0.4 * (1 - glass) + cyan * glass))))
    if frame.plates is not None:
        quads = frame.plates.detach().float().cpu().numpy().reshape(-1, 4, 2) * scale
        panel = Image.fromarray(_uint8(image))
        draw = ImageDraw.Draw(panel)
        for quad in quads:  # drawn after the downscale so the outline stays 2 px wide
            draw.polygon([tuple(map(float, p)) for p in quad], outline=_PLATE_COLOUR, width=2)
        panels.append((f"plates ({len(quads)})", panel))
    if frame.shadow is not None:
        shadow = shrink(frame.shadow)
        ground = 1.0 - shadow
        if frame.alpha is not None:  # the car as a faint silhouette, to see where the shadow sits
            alpha = shrink(frame.alpha)
            ground = ground * (1 - alpha) + 0.88 * alpha
        panels.append(("shadow", to_pil(ground)))
    if frame.output is not None:
        panels.append(("output", to_pil(shrink(frame.output))))
    return panels


# -- figures ------------------------------------------------------------------------------------


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _fit_label(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def montage(panels: Sequence[tuple[str, ImageLike]], height: int = PANEL_HEIGHT) -> Image.Image:
    """Images side by side, each under its label, on one white RGB sheet.

    Args:
        panels: (label, image) pairs; images as `to_pil` takes them, any sizes.
        height: the most pixels an image may be tall (capped at 512): taller images are
            downscaled to it, shorter ones are never upscaled (centred vertically).

    Returns a PIL RGB image ``(LABEL_HEIGHT + row height)`` pixels tall.
    """
    if not panels:
        raise ValueError("`panels` is empty: nothing to draw")
    images = [to_pil(img) for _, img in panels]
    row = min(int(height), MAX_HEIGHT, max(img.height for img in images))
    # taller images shrink to the row; shorter ones keep their pixels, centred vertically
    images = [
        img if img.height <= row else img.resize((max(1, round(img.width * row / img.height)), row), Image.BILINEAR, reducing_gap=2.0)
        for img in images
    ]
    width = sum(img.width for img in images) + GAP * (len(images) - 1)
    sheet = Image.new("RGB", (width, LABEL_HEIGHT + row), "white")
    draw, font = ImageDraw.Draw(sheet), _font()
    x = 0
    for (label, _), img in zip(panels, images):
        sheet.paste(img, (x, LABEL_HEIGHT + (row - img.height) // 2))
        draw.text((x + 3, 2), _fit_label(draw, str(label), img.width - 6, font), fill=_TEXT_COLOUR, font=font)
        x += img.width + GAP
    return sheet


def stage_figure(item: Any, height: int = PANEL_HEIGHT) -> Image.Image:
    """The stages of a Frame or Result side by side: `stage_panels` on one sheet.

    In a notebook the returned PIL image displays itself; ``.save("stages.png")``
    keeps it."""
    return montage(stage_panels(item, height), height)


# -- rich display hooks -------------------------------------------------------------------------


def result_png(result: Any, height: int = MAX_HEIGHT) -> bytes | None:
    """PNG of a Result's output (RGBA over the checkerboard), at most `height` tall;
    None when there is no output (an error), so the notebook shows the text repr."""
    frame = getattr(result, "frame", None)
    if frame is None or frame.output is None:
        return None
    return png_bytes(to_pil(_shrink(frame.output, min(int(height), MAX_HEIGHT))))


def frame_png(frame: Any, height: int = PANEL_HEIGHT) -> bytes:
    """PNG of a Frame's stage figure."""
    return png_bytes(stage_figure(frame, height))
