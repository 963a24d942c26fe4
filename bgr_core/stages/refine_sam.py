"""Segment Anything refinement of the vehicle matte (``refine="sam"``, extra ``sam``).

`SamRefine` prompts SAM with the vehicle box and with points deep inside (positive)
and in the background pockets of the box (negative) taken from the U2NetP matte,
keeps the multimask output that agrees best with that matte, cleans it like the
default path (blobs away from the vehicle removed, holes closed) and snaps it to the
image's edges with the same guided filter. When even the best SAM mask disagrees
with the matte (IoU below `min_iou`), the U2NetP matte is kept and a warning added:
a wrong box or an odd photo must not turn a good matte into a bad one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..frame import Frame
from ..functional import matte as M
from ..functional.prompts import exterior_points, interior_points, mask_iou
from .base import FrameStage

__all__ = ["SamRefine"]


class SamRefine(FrameStage):
    """Refine ``alpha`` (1, H, W) and ``box`` (4,) XYXY with Segment Anything.

    Args:
        model: a `segment_anything.Sam` (e.g. ``bgr_core.loaders.load_sam(device)``)
            or a `segment_anything.SamPredictor` around one.
        work_size: long side of the canvas where SAM's masks are compared with the
            matte and cleaned (never larger than the image).
        n_positive / n_negative: point prompts inside the matte / outside it in the box.
        box_margin: the box prompt is the vehicle box grown by this share of its size
            on each side (U2NetP's box can clip a mirror or a bumper).
        limit_margin: SAM's mask is cut to the vehicle box grown by this share: the box
            says where the vehicle is, so what SAM adds far outside it is not the vehicle.
        min_iou: below this agreement with the matte, the matte is kept (warning).
        threshold: level of the masks that counts as vehicle.
        fill_holes: close holes in SAM's silhouette (glass that came out transparent).
        contrast: (low, high) soft threshold of SAM's probability, or None.
        radius / eps: guided filter window (canvas pixels) and regularisation of the
            edge-aware upsampling, as in `VehicleMatte`.

    Frames need ``alpha`` and ``box`` (run `VehicleMatte` first); frames with
    ``error`` pass through. ``meta["sam_iou"]`` gets the agreement of the chosen mask.
    """

    name = "refine_sam"

    def __init__(
        self,
        model,
        *,
        work_size: int = 1024,
        n_positive: int = 3,
        n_negative: int = 2,
        box_margin: float = 0.02,
        limit_margin: float = 0.1,
        min_iou: float = 0.7,
        threshold: float = 0.5,
        fill_holes: bool = True,
        contrast: tuple[float, float] | None = (0.3, 0.7),
        radius: int = 2,
        eps: float = 1e-2,
    ) -> None:
        if work_size < 16:
            raise ValueError(f"`work_size` must be >= 16 but is {work_size}")
        if n_positive < 1:
            raise ValueError(f"`n_positive` must be >= 1 but is {n_positive}")
        if n_negative < 0:
            raise ValueError(f"`n_negative` must be >= 0 but is {n_negative}")
        if not 0.0 <= min_iou <= 1.0:
            raise ValueError(f"`min_iou` must be in [0, 1] but is {min_iou}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"`threshold` must be in (0, 1) but is {threshold}")
        if box_margin < 0 or limit_margin < 0:
            raise ValueError(f"`box_margin` and `limit_margin` must be >= 0 but are {box_margin}, {limit_margin}")
        if hasattr(model, "set_image"):  # already a SamPredictor
            self.predictor = model
        else:
            from segment_anything import SamPredictor

            self.predictor = SamPredictor(model)
        self.work_size = int(work_size)
        self.n_positive = int(n_positive)
        self.n_negative = int(n_negative)
        self.box_margin = float(box_margin)
        self.limit_margin = float(limit_margin)
        self.min_iou = float(min_iou)
        self.threshold = float(threshold)
        self.fill_holes = bool(fill_holes)
        self.contrast = M.soft_range("contrast", contrast)
        self.radius = int(radius)
        self.eps = float(eps)

    @property
    def model(self):
        return self.predictor.model

    def __repr__(self) -> str:
        return f"SamRefine(work_size={self.work_size}, min_iou={self.min_iou})"

    def __call__(self, frames: Sequence[Frame]) -> list[Frame]:
        with torch.inference_mode():
            return super().__call__(frames)

    def process(self, frame: Frame) -> Frame:
        if frame.alpha is None or frame.box is None:
            raise ValueError("SamRefine needs `alpha` and `box` on the frame: run the segment stage first")
        h, w = frame.size
        ch, cw = M.work_size(h, w, self.work_size)
        matte = F.interpolate(frame.alpha[None].float(), size=(ch, cw), mode="bilinear", align_corners=False)[0, 0]
        matte_bin = (matte >= self.threshold).cpu()
        if not bool(matte_bin.any()):
            return frame

        logits = self._predict(frame, matte_bin.numpy(), (ch, cw))  # (3, ch, cw)
        prob = torch.sigmoid(logits.float()).cpu()
        prob = prob * self._box_limit(frame.box, (h, w), (ch, cw))
        ious = mask_iou(prob >= self.threshold, matte_bin[None])
        best = int(torch.argmax(ious))
        iou = float(ious[best])
        meta = {**frame.meta, "sam_iou": iou}
        if iou < self.min_iou or not bool((prob[best] >= self.threshold).any()):
            warning = (
                f"SAM refinement disagreed with the matte (IoU {iou:.2f} < {self.min_iou:.2f}); "
                "kept the U2NetP matte"
            )
            return frame.replace(warnings=[*frame.warnings, warning], meta=meta)

        alpha = self._finish(frame, prob[best], matte_bin.numpy())
        box = M.mask_box(alpha >= self.threshold)
        if box is None:  # cleaning left nothing: the matte is the safer answer
            return frame.replace(warnings=[*frame.warnings, "SAM refinement came out empty; kept the U2NetP matte"], meta=meta)
        return frame.replace(alpha=alpha.to(frame.image.dtype), box=box.to(frame.device), meta=meta)

    # -- pieces -------------------------------------------------------------------------

    def _predict(self, frame: Frame, matte_bin: np.ndarray, canvas: tuple[int, int]) -> Tensor:
        """SAM's multimask logits (3, ch, cw) for the frame's box and matte prompts."""
        h, w = frame.size
        ch, cw = canvas
        sx, sy = w / cw, h / ch
        image = (frame.image.float().clamp(0, 1) * 255).round().to(torch.uint8)
        self.predictor.set_image(image.permute(1, 2, 0).cpu().numpy())  # SAM's own resize

        x0, y0, x1, y1 = (float(v) for v in frame.box)
        mx, my = self.box_margin * (x1 - x0), self.box_margin * (y1 - y0)
        box = np.array([max(0.0, x0 - mx), max(0.0, y0 - my), min(w, x1 + mx), min(h, y1 + my)], np.float32)
        canvas_box = (box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy)
        pos = interior_points(matte_bin, self.n_positive)
        neg = exterior_points(matte_bin, canvas_box, self.n_negative, min_dist=0.02 * float(np.hypot(ch, cw)))
        points = np.concatenate([pos, neg]).astype(np.float32)
        points = (points + 0.5) * np.array([sx, sy], np.float32) - 0.5  # canvas → image pixels
        labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.float32)

        model, dev = self.model, self.predictor.device
        coords = torch.as_tensor(self.predictor.transform.apply_coords(points, (h, w)), dtype=torch.float32, device=dev)
        boxes = torch.as_tensor(self.predictor.transform.apply_boxes(box[None], (h, w)), dtype=torch.float32, device=dev)
        sparse, dense = model.prompt_encoder(
            points=(coords[None], torch.as_tensor(labels, device=dev)[None]), boxes=boxes, masks=None
        )
        low_res, _ = model.mask_decoder(
            image_embeddings=self.predictor.features,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
        # straight to the canvas, not the full image: (1, 3, 256, 256) → (3, ch, cw)
        return model.postprocess_masks(low_res, self.predictor.input_size, (ch, cw))[0]

    def _box_limit(self, box: Tensor, size: tuple[int, int], canvas: tuple[int, int]) -> Tensor:
        """(1, ch, cw) float: 1 inside the vehicle box grown by `limit_margin`, else 0."""
        (h, w), (ch, cw) = size, canvas
        x0, y0, x1, y1 = (float(v) for v in box)
        mx, my = self.limit_margin * (x1 - x0), self.limit_margin * (y1 - y0)
        ys = (torch.arange(ch) + 0.5) * (h / ch)
        xs = (torch.arange(cw) + 0.5) * (w / cw)
        inside_y = (ys >= y0 - my) & (ys <= y1 + my)
        inside_x = (xs >= x0 - mx) & (xs <= x1 + mx)
        return (inside_y[:, None] & inside_x[None, :]).float()[None]

    def _finish(self, frame: Frame, prob: Tensor, matte_bin: np.ndarray) -> Tensor:
        """SAM probability (ch, cw) on the CPU → cleaned full-resolution alpha (1, H, W)."""
        prob_np = prob.numpy()
        sam_bin = prob_np >= self.threshold
        # SAM's blobs that touch the matte's vehicle stay, with their soft fringe
        overlap = sam_bin & matte_bin
        region = M.keep_region(prob_np, overlap if overlap.any() else sam_bin)
        out = prob * torch.from_numpy(region)
        if self.fill_holes:
            kept = sam_bin & region
            holes = torch.from_numpy(M.fill_holes(kept) & ~kept)
            out = torch.where(holes, torch.ones_like(out), out)
        if self.contrast is not None:
            out = M.soft_threshold(out, *self.contrast)
        image = frame.image.to(torch.promote_types(frame.image.dtype, torch.float32))
        radius = max(1, round(self.radius * frame.size[0] / prob.shape[-2]))
        return M.refine_alpha(image, out[None].to(image), radius, self.eps, guided=True)
