"""Licence plates: find each plate as a quadrilateral and cover it with a custom or blank plate.

- `PlateDetector` is the swappable detector protocol: ``detect(image, alpha, box) ->
  list[PlateDetection]``. `ContourPlateDetector` is the default, classical (OpenCV and
  numpy only); `TorchScriptPlateDetector` runs a learned detector from a weights file.
- `PlateReplacement` (stage "plates") sets ``Frame.plates`` (N, 4, 2) and draws the
  replacement into each quad with `bgr_core.functional.plates.overlay_plate`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import cv2
import numpy as np
import torch
from torch import Tensor

from ..frame import Frame
from ..functional.plate_border import outer_border
from ..functional.plates import order_quad, overlay_plate, quad_iou
from .base import FrameStage

__all__ = [
    "PlateDetection",
    "PlateDetector",
    "ContourPlateDetector",
    "TorchScriptPlateDetector",
    "LearnedPlateScorer",
    "PlateScorerNet",
    "plate_patch",
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


# -- helpers -----------------------------------------------------------------------------------


def _soft(x: float, lo: float, hi: float) -> float:
    """0 at or below `lo`, 1 at or above `hi`, linear between (decreasing when lo > hi)."""
    if hi == lo:
        return float(x >= hi)
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


def _to_uint8_rgb(image: Tensor) -> np.ndarray:
    arr = image.detach()[:3].float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def _line_intersection(p1, d1, p2, d2):
    """Intersection of lines p1 + t d1 and p2 + s d2 (None if parallel)."""
    den = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(den) < 1e-9:
        return None
    t = ((p2[0] - p1[0]) * d2[1] - (p2[1] - p1[1]) * d2[0]) / den
    return np.array([p1[0] + t * d1[0], p1[1] + t * d1[1]])


def _is_convex(q: np.ndarray) -> bool:
    signs = []
    for i in range(4):
        a, b, c = q[i], q[(i + 1) % 4], q[(i + 2) % 4]
        signs.append((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]))
    return all(s > 0 for s in signs) or all(s < 0 for s in signs)


def _side_lengths(q: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.roll(q, -1, axis=0) - q, axis=1)  # top, right, bottom, left


def _quad_from_points(points: np.ndarray) -> np.ndarray | None:
    """A quad (4, 2) ordered clockwise from top-left around a point set (N, 2): the
    4-vertex simplification of its convex hull, or its minimum-area rectangle."""
    hull = cv2.convexHull(points.astype(np.float32).reshape(-1, 1, 2))
    if len(hull) < 3:
        return None
    peri = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.02, 0.035, 0.05, 0.07, 0.09):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float64)
            break
        if len(approx) < 4:
            break
    if quad is None or not _is_convex(order_quad(quad)):
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)
    return order_quad(quad)


@dataclass
class _Work:
    """The detector's working canvas: a crop of the image around the vehicle, scaled."""

    gray: np.ndarray  # (h, w) uint8
    chroma: np.ndarray  # (h, w) uint8, the a* (green-red) channel of CIELAB: coloured plates
    smooth: np.ndarray  # (h, w) float32, lightly blurred gray
    gx: np.ndarray  # (h, w) float32 Sobel x of `smooth` (grey levels per pixel)
    gy: np.ndarray
    alpha: np.ndarray | None  # (h, w) float32 in [0, 1]
    x0: float  # crop origin in image pixels
    y0: float
    scale: float  # work pixels per image pixel
    vehicle: tuple[float, float, float, float]  # vehicle box in work pixels (or the whole canvas)
    has_box: bool
    rgb: np.ndarray | None = None  # (h, w, 3) uint8, the colour crop (for learned scorers)

    def to_image(self, q: np.ndarray) -> np.ndarray:
        return q / self.scale + np.array([self.x0, self.y0])


# -- the classical detector ------------------------------------------------------------------


class ContourPlateDetector:
    """A classical plate finder (OpenCV and numpy only).

    1. The search region is the vehicle box (from `box`, else from `alpha`, else the whole
       image) without its top fifth and with a small margin, scaled so its long side is
       about `work_size` pixels.
    2. Candidate regions: maximally stable extremal regions (MSER) of the grey image and of
       the CIELAB a* channel, bright and dark, which find plate backgrounds (characters are
       holes in them) and the uniform patches of blurred plates; closed outlines in a Canny
       edge map; axis-aligned rectangles whose four sides all carry a consistent step or
       line (a search over sizes with cumulative sums, for faint outlines); rectangles with a
       smooth inside and a consistent outline, ranked by outline contrast over the inside's
       texture (`_flat_search`: blank or blurred plates with faint borders); and, for plates
       with legible characters, blobs of dark-on-light / light-on-dark strokes (black-hat /
       top-hat, closed horizontally) grown to a plate around them.
    3. Each candidate becomes a quad (the 4-vertex simplification of its convex hull). The
       most promising ones are refitted to the plate border: profiles across each side find
       the strongest step (or line) of the side's polarity, a robust line fit through those
       points gives the side, and neighbouring sides intersect in the corners, so the quad
       follows perspective and rounded corners do not pull it inwards.
    4. Each quad is measured (`FEATURES`): outline evidence on its four sides (step or line
       contrast, continuity), the tones inside (one: blurred or blank plate; two: paint and
       characters), texture inside and just beyond the sides (a rectangle drawn through a
       row of characters has characters beyond it), size relative to the vehicle, height
       on it, cover by the matte, shape (tilt, lean, parallel sides), and `split`: a straight
       step across the inside (a box spanning a plate and the panel beside it). The score is a
       logistic function of a gated linear model - one weight set for smooth insides, one
       for legible ones, blended by the inside's texture - plus fixed priors: apparent
       aspect ratio flat from 1.4 to 5.5 (falling towards `aspect_range`, down to 0.5 for
       plates foreshortened in three-quarter views, not penalised when off centre), and a
       plate near the middle unless the view is oblique (see `_prior_logit`). The weights
       (`_FITTED_WEIGHTS`) were fitted by `benchmarks/plates.py --fit` as a ranking in each
       image against "no plate" (logit 0), so ``score > 0.5`` reads "better than no plate".
       With a learned `scorer` (default: the shipped `LearnedPlateScorer`,
       ``weights/plate_scorer.safetensors``, when it is found; ``scorer=None`` for the
       logistic score alone), the best `rescore_top` candidates by that score are scored
       again by a tiny CNN over the candidate rectified with its surroundings (it can also
       take the hand features; the shipped file masks them all out: they overfitted), and
       the others dropped; the containment step below is then skipped
       (the scorer judges whole plates against their parts).
    5. A candidate outscored by one that contains it by less than a logit of 1 gives way to
       it (the plate holds rectangles of its own); overlapping candidates are suppressed;
       the best with ``score >= min_score`` is returned, and a second one (up to
       `max_plates`) only when nearly as good (logit within `second_margin`), of a similar
       height and a third of the vehicle's width away from the first.

    Everything runs on CPU in numpy / OpenCV whatever the image's device; about 0.5-1 s
    for a 640-pixel working canvas.
    """

    def __init__(
        self,
        *,
        work_size: int = 640,
        min_score: float = 0.5,
        max_plates: int = 2,
        second_margin: float = 1.5,
        aspect_range: tuple[float, float] = (0.5, 7.0),
        refine: bool = True,
        refine_top: int = 30,
        flat: bool = True,
        scorer: "LearnedPlateScorer | str | os.PathLike | None" = "auto",
        rescore_top: int = 20,
    ):
        self.work_size = int(work_size)
        self.min_score = float(min_score)
        self.max_plates = int(max_plates)
        self.second_margin = float(second_margin)
        self.aspect_range = aspect_range
        self.refine = refine
        self.refine_top = int(refine_top)
        # `_flat_search` candidates (smooth rectangles with faint outlines); the fitted weights
        # assume them
        self.flat = bool(flat)
        self.box_width = 320.0  # the rectangle search runs where the vehicle is at most this wide
        # the learned re-scorer of the best `rescore_top` candidates: "auto" loads the shipped
        # one when its weights file is found (else the logistic score alone), None never does,
        # a path or a `LearnedPlateScorer` must load
        self.rescore_top = int(rescore_top)
        if isinstance(scorer, str) and scorer == "auto":
            scorer = _default_scorer()
        elif scorer is not None and not callable(scorer):
            scorer = LearnedPlateScorer(scorer)
        self.scorer = scorer

    def __repr__(self) -> str:
        return (f"ContourPlateDetector(work_size={self.work_size}, min_score={self.min_score}, max_plates={self.max_plates}, "
                f"scorer={self.scorer!r})")

    # -- public -------------------------------------------------------------------------------

    def detect(self, image: Tensor, alpha: Tensor | None = None, box: Tensor | None = None) -> list[PlateDetection]:
        work = self._prepare(image, alpha, box)
        if work is None:
            return []
        scored = self._scored(work)
        if self.scorer is not None:
            scored = self._rescored(work, scored)
        else:
            scored = self._prefer_outlines(scored)
        kept: list[tuple[float, np.ndarray, dict]] = []
        for score, quad, feats in scored:
            if score <= 0:
                break
            if any(quad_iou(quad, k[1]) > 0.2 or _contains(k[1], quad) or _contains(quad, k[1]) for k in kept):
                continue
            kept.append((score, quad, feats))
        out: list[PlateDetection] = []
        first = None
        for score, quad, feats in kept:
            if score < self.min_score or len(out) >= self.max_plates:
                break
            if first is not None and not self._second_plate(work, first, (score, quad, feats)):
                continue
            if first is None:
                first = (score, quad, feats)
            out.append(PlateDetection(torch.from_numpy(work.to_image(quad).astype(np.float32)), score, feats))
        return out

    def _second_plate(self, work: "_Work", first, other) -> bool:
        """Whether `other` may be a further plate beside the best one `first`: nearly as
        convincing (logit at most `second_margin` lower), of a similar height, and apart
        from it (centres at least a third of the vehicle's width apart) - a vehicle's
        front and rear plates are never side by side, and a second vehicle's plate is not
        inside this one's box unless the vehicles overlap. None in an oblique view (the
        first plate's `oblique` above 0.5: a vehicle box wider than tall, one end of one
        vehicle in three-quarter or side view)."""
        s1, q1, f1 = first
        s2, q2, _ = other
        if f1.get("oblique", 0.0) > 0.5:
            # an oblique view (vehicle box wider than tall) shows one end of one vehicle
            return False
        z1 = math.log(max(s1, 1e-12) / max(1 - s1, 1e-12))
        z2 = math.log(max(s2, 1e-12) / max(1 - s2, 1e-12))
        if z2 < z1 - self.second_margin:
            return False
        h1 = (_side_lengths(q1)[1] + _side_lengths(q1)[3]) / 2
        h2 = (_side_lengths(q2)[1] + _side_lengths(q2)[3]) / 2
        if not 0.6 <= h2 / max(h1, 1e-6) <= 1.6:
            return False
        vw = work.vehicle[2] - work.vehicle[0]
        return abs(float(q1[:, 0].mean() - q2[:, 0].mean())) >= vw / 3

    def candidates(self, image: Tensor, alpha: Tensor | None = None, box: Tensor | None = None) -> list[PlateDetection]:
        """Every scored candidate, best first, before suppression and thresholds (to inspect)."""
        work = self._prepare(image, alpha, box)
        if work is None:
            return []
        scored = self._scored(work)
        if self.scorer is not None:
            scored = self._rescored(work, scored, keep_rest=True)
        return [PlateDetection(torch.from_numpy(work.to_image(q).astype(np.float32)), s, f) for s, q, f in scored]

    def _rescored(self, work: "_Work", scored: list[tuple[float, np.ndarray, dict]],
                  keep_rest: bool = False) -> list[tuple[float, np.ndarray, dict]]:
        """The best `rescore_top` candidates by the logistic score, scored again by the
        learned scorer (the logistic score kept as ``feats["logistic"]``), best first. The
        others are dropped (kept with score 0 when `keep_rest`)."""
        top = scored[: self.rescore_top]
        probs = self.scorer(work, top, self.aspect_range) if top else []
        out = [(float(p), q, dict(f, logistic=s)) for p, (s, q, f) in zip(probs, top)]
        out.sort(key=lambda t: -t[0])
        if keep_rest:
            out += [(0.0, q, dict(f, logistic=s)) for s, q, f in scored[self.rescore_top :]]
        return out

    # -- steps ------------------------------------------------------------------------------------

    def _scored(self, work: "_Work") -> list[tuple[float, np.ndarray, dict]]:
        measured = []
        for quad, source in _dedupe(self._candidates(work)):
            feats = self._features(work, quad)
            if feats is not None:
                feats["source"] = source
                # first leniently on shape: a crooked hull of a plate's region is what the
                # refit repairs
                measured.append((self._score_features(feats, lenient=self.refine), quad, feats))
        measured.sort(key=lambda t: -t[0])
        out = []
        done: list[np.ndarray] = []
        for rank, (_, quad, feats) in enumerate(measured):
            best = (self._score_features(feats), quad, feats)
            if self.refine and rank < self.refine_top:
                new = self._refine(work, quad)
                if any(np.abs(new - d).max() < 1.0 for d in done):
                    continue
                done.append(new)
                f2 = self._features(work, new)
                if f2 is not None:
                    f2["source"] = feats["source"]
                    s2 = self._score_features(f2)
                    # the refit follows the outline more closely: keep it while it is still
                    # a confident plate (logit >= 2) or scores nearly as well (logit -1)
                    if _logit(s2) >= min(_logit(best[0]) - 1.0, 2.0):
                        best = (s2, new, f2)
            out.append(best)
        out.sort(key=lambda t: -t[0])
        return out

    def _prefer_outlines(self, scored: list[tuple[float, np.ndarray, dict]], margin: float = 1.0,
                         max_growth: float = 3.0) -> list[tuple[float, np.ndarray, dict]]:
        """A plate holds rectangles of its own (a row of characters, a coloured strip, the
        patch of a blur) that can outscore it: a candidate is replaced by one that contains
        it (85 % of its area), is at most `max_growth` times larger and scores nearly as well
        (logit at most `margin` lower, plus up to 0.5 as the contained one's inside is
        legible: a row of characters outscores its plate by more than a blurred patch does);
        the replacement takes the contained one's score."""
        if not scored:
            return scored
        logits = [math.log(max(sc, 1e-12) / max(1 - sc, 1e-12)) for sc, _, _ in scored]
        areas = [abs(cv2.contourArea(q.astype(np.float32))) for _, q, _ in scored]
        out = []
        for i, (sc, q, f) in enumerate(scored[:12]):
            cur = i
            for _ in range(3):
                best = None
                for j in range(len(scored)):
                    if j == cur or areas[j] <= areas[cur] * 1.08 or areas[j] > areas[cur] * max_growth:
                        continue
                    m = margin + 0.5 * _soft(scored[cur][2]["texture"], *self.GATE)
                    if logits[j] < logits[cur] - m or not _contains(scored[j][1], scored[cur][1]):
                        continue
                    if best is None or logits[j] > logits[best]:
                        best = j
                if best is None:
                    break
                cur = best
            if cur != i:
                f2 = dict(scored[cur][2], grown_from=i)
                out.append((sc, scored[cur][1], f2))
            else:
                out.append((sc, q, f))
        out += scored[12:]
        out.sort(key=lambda t: -t[0])
        return out

    def _prepare(self, image: Tensor, alpha: Tensor | None, box: Tensor | None) -> "_Work | None":
        if image.ndim != 3 or image.shape[0] < 3:
            raise ValueError(f"image must be (3, H, W) but is {tuple(image.shape)}")
        h, w = image.shape[-2:]
        rgb = _to_uint8_rgb(image)
        a = None
        if alpha is not None:
            a = alpha.detach().float().reshape(h, w).cpu().numpy()
        vb = None
        if box is not None:
            vb = [float(v) for v in torch.as_tensor(box).reshape(4)]
        elif a is not None and (a > 0.5).any():
            ys, xs = np.nonzero(a > 0.5)
            vb = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        has_box = vb is not None and (vb[2] - vb[0]) >= 8 and (vb[3] - vb[1]) >= 8
        if not has_box:
            vb = [0.0, 0.0, float(w), float(h)]
        bw, bh = vb[2] - vb[0], vb[3] - vb[1]
        cx0 = max(0, int(math.floor(vb[0] - 0.04 * bw)))
        cy0 = max(0, int(math.floor(vb[1] + (0.2 * bh if has_box else 0.0))))
        cx1 = min(w, int(math.ceil(vb[2] + 0.04 * bw)))
        cy1 = min(h, int(math.ceil(vb[3] + 0.04 * bh)))
        if cx1 - cx0 < 16 or cy1 - cy0 < 8:
            return None
        scale = self.work_size / max(cx1 - cx0, (cy1 - cy0) * 1.25)
        scale = min(1.25, max(0.1, scale))
        crop = rgb[cy0:cy1, cx0:cx1]
        size = (max(1, int(round((cx1 - cx0) * scale))), max(1, int(round((cy1 - cy0) * scale))))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crop = cv2.resize(crop, size, interpolation=interp)
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        chroma = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)[..., 1]
        smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.8)
        gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        wa = None
        if a is not None:
            wa = cv2.resize(a[cy0:cy1, cx0:cx1], size, interpolation=interp)
        s = (size[0] / (cx1 - cx0) + size[1] / (cy1 - cy0)) / 2
        vehicle = ((vb[0] - cx0) * s, (vb[1] - cy0) * s, (vb[2] - cx0) * s, (vb[3] - cy0) * s)
        return _Work(gray, chroma, smooth, gx, gy, wa, float(cx0), float(cy0), s, vehicle, has_box, crop)

    def _size_ok(self, work: "_Work", bw: float, bh: float) -> bool:
        vw = work.vehicle[2] - work.vehicle[0]
        lo = 0.04 if work.has_box else 0.012
        if bw < max(14, lo * vw) or bh < 7:
            return False
        if bw > 0.7 * vw or bh > 0.45 * (work.vehicle[3] - work.vehicle[1]):
            return False
        return 0.45 <= bw / bh <= 9.0

    def _candidates(self, work: "_Work") -> list[tuple[np.ndarray, str]]:
        h, w = work.gray.shape
        out: list[tuple[np.ndarray, str]] = []
        seen: set[tuple[int, int, int, int]] = set()

        def add(points: np.ndarray, source: str, quad: np.ndarray | None = None) -> None:
            x, y = points[:, 0], points[:, 1]
            bx0, by0, bx1, by1 = float(x.min()), float(y.min()), float(x.max() + 1), float(y.max() + 1)
            if not self._size_ok(work, bx1 - bx0, by1 - by0):
                return
            key = (int(bx0 // 3), int(by0 // 3), int(bx1 // 3), int(by1 // 3))
            if key in seen:
                return
            seen.add(key)
            if quad is None:
                quad = _quad_from_points(points)
            if quad is not None:
                out.append((quad, source))

        area = h * w
        mser = cv2.MSER_create(delta=3, min_area=max(60, int(area * 0.0004)), max_area=int(area * 0.08),
                               max_variation=0.5, min_diversity=0.05)
        sources = [(work.gray, "mser-"), (255 - work.gray, "mser+")]
        if float(work.chroma.std()) >= 3:  # some colour in the scene: red, yellow, blue plates
            sources += [(work.chroma, "mser-a"), (255 - work.chroma, "mser+a")]
        for src, name in sources:
            regions, bboxes = mser.detectRegions(src)
            for reg, (bx, by, bw, bh) in zip(regions, bboxes):
                if self._size_ok(work, bw, bh) and len(reg) >= 0.2 * bw * bh:
                    add(reg, name)
        # closed outlines in the edge map
        mag = np.hypot(work.gx, work.gy)
        hi = max(float(np.percentile(mag, 90)), 4.0)
        edges = cv2.Canny(work.gray, 0.5 * hi * 8, hi * 8, L2gradient=True)  # Canny's Sobel is 8x ours
        edges = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            pts = c.reshape(-1, 2)
            if len(pts) >= 4:
                add(pts, "edge")
        # rectangles whose four sides all carry a consistent step or line (faint outlines)
        for quad in self._box_search(work):
            add(quad, "box", quad)
        # smooth rectangles with a consistent outline (blank or blurred plates, faint borders)
        if self.flat:
            for quad in self._flat_search(work):
                add(quad, "flat", quad)
        # strokes of characters: dark on light and light on dark
        kh = max(3, int(round(h * 0.035)))
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kh * 2 + 1, kh + 1))
        for op, name in ((cv2.MORPH_BLACKHAT, "text-"), (cv2.MORPH_TOPHAT, "text+")):
            strokes = cv2.morphologyEx(work.gray, op, kernel)
            sx = np.abs(cv2.Sobel(strokes, cv2.CV_32F, 1, 0, ksize=3))
            sx = cv2.GaussianBlur(sx, (0, 0), 1.5)
            if sx.max() <= 0:
                continue
            thr = max(float(np.percentile(sx, 97)), 30.0)
            mask = (sx > thr).astype(np.uint8)
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (kh * 3 + 1, 3)))
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
            cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for c in cs:
                pts = c.reshape(-1, 2).astype(np.float64)
                if len(pts) < 4:
                    continue
                # the characters fill the middle of the plate: grow the blob to its likely outline
                (cx, cy), (rw, rh), ang = cv2.minAreaRect(pts.astype(np.float32))
                if rw < rh:
                    rw, rh, ang = rh, rw, ang + 90
                grown = cv2.boxPoints(((cx, cy), (rw * 1.12 + 4, rh * 1.5 + 4), ang)).astype(np.float64)
                add(grown, name, order_quad(grown))
        return out

    def _box_search(self, work: "_Work", keep: int = 60) -> list[np.ndarray]:
        """Axis-aligned rectangles whose four sides each carry a consistent step or line.

        On a copy scaled so the vehicle is at most 320 px wide, the signed vertical (for top
        and bottom) and horizontal (for left and right) derivatives are averaged along each
        side, with cumulative sums so that every rectangle costs O(1); texture averages
        out, an outline does not. A thin line has two opposite flanks a pixel or two apart,
        so the best of three neighbouring rows (columns) is taken, never their sum. The
        weakest side, times a mild bonus for length, ranks the rectangles; the best, overlaps
        suppressed, are returned as quads in work pixels."""
        vw = work.vehicle[2] - work.vehicle[0]
        f = min(1.0, self.box_width / max(vw, 1.0))
        gx, gy, cx, cy = _gradient_sums(work.smooth, f)
        hh, ww = gx.shape
        lo_w = max(10.0, 0.065 * vw * f)
        hi_w = min(ww - 2.0, 0.6 * vw * f)
        heights = []
        hgt = 5.0
        while hgt <= min(0.35 * (work.vehicle[3] - work.vehicle[1]) * f, hh - 2):
            heights.append(int(round(hgt)))
            hgt *= 1.12
        found = []  # (rank, x0, y0, w, h)
        dil_r, dil_c = np.ones((3, 1), np.uint8), np.ones((1, 3), np.uint8)
        for bh in sorted(set(heights)):
            j0, j1 = int(round(0.2 * bh)), int(round(0.8 * bh))
            col_all = np.abs(cx[j1 : hh - bh + j1 + 1, :] - cx[j0 : hh - bh + j0 + 1, :]) / max(1, j1 - j0)
            col_all = cv2.dilate(col_all, dil_c)
            for aspect in (1.15, 1.4, 1.7, 2.0, 2.4, 2.9, 3.5, 4.3, 5.2):
                bw = int(round(bh * aspect))
                if bw < lo_w or bw > hi_w or bw >= ww - 1 or bh >= hh - 1:
                    continue
                i0, i1 = int(round(0.15 * bw)), int(round(0.85 * bw))
                row = np.abs(cy[:, i1 : ww - bw + i1 + 1] - cy[:, i0 : ww - bw + i0 + 1]) / max(1, i1 - i0)
                row = cv2.dilate(row, dil_r)
                ny, nx = hh - bh, ww - bw
                score = np.minimum(np.minimum(row[0:ny, :nx], row[bh : bh + ny, :nx]),
                                   np.minimum(col_all[:ny, 0:nx], col_all[:ny, bw : bw + nx]))
                if score.size == 0:
                    continue
                peak = cv2.dilate(score, np.ones((5, 5), np.uint8))
                ys, xs = np.nonzero((score >= peak) & (score > 1.2))
                if len(ys) > 40:
                    order = np.argsort(-score[ys, xs])[:40]
                    ys, xs = ys[order], xs[order]
                weight = math.sqrt(bw / lo_w)  # long consistent sides are stronger evidence
                found.extend((float(score[y, x]) * weight, int(x), int(y), bw, bh) for y, x in zip(ys, xs))
        return _best_rects(found, keep, 0.5, f)

    def _flat_search(self, work: "_Work", keep: int = 8, width: float = 224.0, eps: float = 0.5,
                     min_side: float = 1.0) -> list[np.ndarray]:
        """Axis-aligned rectangles with a smooth inside and a consistent outline: blank or
        blurred plates, whose border is often faint (a grey patch on a grey bumper) and may
        change polarity along a side (half on paint, half on a dark grille).

        On a copy scaled so the vehicle is at most `width` px wide, each side is split in two
        halves; a half's evidence is its mean signed derivative across the side (unsigned:
        either polarity), and a side's is the weaker half (so one strong edge crossing the
        side does not make it). The weakest side (at least `min_side`) over the mean gradient
        magnitude of the inner half of the rectangle (plus `eps`) ranks the rectangles - a
        contrast-normalised outline, so a faint border round a flat patch ranks high where
        `_box_search` ranks it below the strong edges of the bodywork. Cumulative sums make
        each rectangle O(1); the best `keep`, overlaps suppressed, are returned in work pixels."""
        vx0, vy0, vx1, vy1 = work.vehicle
        vw = vx1 - vx0
        f = min(1.0, width / max(vw, 1.0))
        gx, gy, cx, cy = _gradient_sums(work.smooth, f)
        hh, ww = gx.shape
        tex = cv2.integral(np.abs(gx) + np.abs(gy), sdepth=cv2.CV_32F)
        lo_w = max(7.0, 0.065 * vw * f)
        hi_w = min(ww - 2.0, 0.6 * vw * f)
        heights = []
        hgt = 5.6
        while hgt <= min(0.35 * (vy1 - vy0) * f, hh - 2):
            heights.append(int(round(hgt)))
            hgt *= 1.1
        found = []  # (rank, x0, y0, w, h)
        dil_r, dil_c = np.ones((3, 1), np.uint8), np.ones((1, 3), np.uint8)
        for bh in sorted(set(heights)):
            j0, jm, j1 = int(round(0.15 * bh)), int(round(0.5 * bh)), int(round(0.85 * bh))
            ca = np.abs(cx[jm : hh - bh + jm + 1] - cx[j0 : hh - bh + j0 + 1]) / max(1, jm - j0)
            cb = np.abs(cx[j1 : hh - bh + j1 + 1] - cx[jm : hh - bh + jm + 1]) / max(1, j1 - jm)
            col = cv2.dilate(np.minimum(ca, cb), dil_c)
            b0, b1 = int(round(0.25 * bh)), int(round(0.75 * bh))
            # below 1: plates foreshortened in three-quarter views
            for aspect in (0.55, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 1.7, 1.9, 2.1, 2.4, 2.9, 3.5, 4.3, 5.2):
                bw = int(round(bh * aspect))
                if bw < lo_w or bw > hi_w or bw >= ww - 1 or bh >= hh - 1:
                    continue
                i0, im, i1 = int(round(0.12 * bw)), int(round(0.5 * bw)), int(round(0.88 * bw))
                ra = np.abs(cy[:, im : ww - bw + im + 1] - cy[:, i0 : ww - bw + i0 + 1]) / max(1, im - i0)
                rb = np.abs(cy[:, i1 : ww - bw + i1 + 1] - cy[:, im : ww - bw + im + 1]) / max(1, i1 - im)
                row = cv2.dilate(np.minimum(ra, rb), dil_r)
                ny, nx = hh - bh, ww - bw
                side = np.minimum(np.minimum(row[0:ny, :nx], row[bh : bh + ny, :nx]),
                                  np.minimum(col[:ny, 0:nx], col[:ny, bw : bw + nx]))
                a0, a1 = int(round(0.2 * bw)), int(round(0.8 * bw))
                inner = (tex[b1 : b1 + ny, a1 : a1 + nx] - tex[b0 : b0 + ny, a1 : a1 + nx]
                         - tex[b1 : b1 + ny, a0 : a0 + nx] + tex[b0 : b0 + ny, a0 : a0 + nx])
                score = side / (inner / max(1, (a1 - a0) * (b1 - b0)) + eps)
                score[side < min_side] = 0
                peak = cv2.dilate(score, np.ones((5, 5), np.uint8))
                ys, xs = np.nonzero((score >= peak) & (score > 0))
                if len(ys) > 40:
                    order = np.argsort(-score[ys, xs])[:40]
                    ys, xs = ys[order], xs[order]
                found.extend((float(score[y, x]), int(x), int(y), bw, bh) for y, x in zip(ys, xs))
        return _best_rects(found, keep, 0.4, f)

    # -- sampling -------------------------------------------------------------------------------------

    @staticmethod
    def _sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Bilinear samples of `img` at points (..., 2) in pixel-edge coordinates."""
        flat = pts.reshape(1, -1, 2).astype(np.float32) - 0.5
        vals = cv2.remap(img, flat[..., 0], flat[..., 1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return vals.reshape(pts.shape[:-1])

    @staticmethod
    def _sides(q: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points along the four sides (4, K, 2) at fractions `ts`, and outward normals (4, 2)."""
        a = q
        d = np.roll(q, -1, axis=0) - q
        length = np.linalg.norm(d, axis=1, keepdims=True)
        n = np.stack([d[:, 1], -d[:, 0]], 1) / np.maximum(length, 1e-9)  # outward for clockwise quads
        base = a[:, None, :] + ts[None, :, None] * d[:, None, :]
        return base, n

    # -- refinement ---------------------------------------------------------------------------------

    def _refine(self, work: "_Work", q: np.ndarray, rounds: int = 2) -> np.ndarray:
        """Refit each side of `q` to the plate border (see the class docs)."""
        q = q.astype(np.float64)
        ts = np.linspace(0.1, 0.9, 25)
        for it in range(rounds):
            sides = _side_lengths(q)
            height = (sides[1] + sides[3]) / 2
            r = float(np.clip((0.25 if it == 0 else 0.12) * height, 2.0, 12.0))
            offsets = np.arange(-r, r + 1e-6, 0.5)
            zero = int(np.argmin(np.abs(offsets)))
            base, n = self._sides(q, ts)
            pts = base[:, :, None, :] + offsets[None, None, :, None] * n[:, None, None, :]  # (4, K, O, 2)
            dn = self._sample(work.gx, pts) * n[:, None, None, 0] + self._sample(work.gy, pts) * n[:, None, None, 1]
            inten = self._sample(work.smooth, pts)
            # polarity of each side: the outside against the plate's own tone (the median
            # inside, which characters near a side do not sway)
            outside = self._sample(work.smooth, base + n[:, None, :] * (r + 1))
            inner = _quad_values(work.smooth, q, shrink=0.2)
            level = float(np.median(inner)) if inner.size else float(np.median(outside))
            step = np.median(outside, axis=1) - level  # (4,)
            lines = []
            out_level = np.median(outside, axis=1)  # (4,)
            for side in range(4):
                resp = dn[side] * np.sign(step[side]) if abs(step[side]) >= 5 else np.abs(dn[side])
                k = resp.argmax(1).astype(np.float64)
                strength = resp[np.arange(len(k)), k.astype(int)]
                old = float(np.maximum(resp[:, max(0, zero - 2) : zero + 3].max(1), 0).mean())
                if abs(out_level[side] - level) >= 12:
                    # the outline is where the profile leaves the plate's tone for good: the
                    # first mid-level crossing beyond the last sample of the plate's tone (so
                    # characters or a border line near the side do not capture it)
                    k, strength = _outline_positions(inten[side], dn[side], level, out_level[side], k, strength)
                found = base[side] + np.interp(k, np.arange(len(offsets)), offsets)[:, None] * n[side][None]
                ok = strength > 0.8
                line = _fit_side(found[ok], strength[ok], tol=1.0, min_inliers=max(6, int(0.35 * len(k))))
                lines.append(line[:2] if line is not None and line[2] >= old else None)
            new = q.copy()
            for corner in range(4):
                l1, l2 = lines[(corner - 1) % 4], lines[corner]  # the sides meeting at this corner
                if l1 is None and l2 is None:
                    continue
                if l1 is None:  # a side that was not refitted keeps its line
                    a, b = q[(corner - 1) % 4], q[corner]
                    l1 = (a, (b - a) / max(np.linalg.norm(b - a), 1e-9))
                if l2 is None:
                    a, b = q[corner], q[(corner + 1) % 4]
                    l2 = (a, (b - a) / max(np.linalg.norm(b - a), 1e-9))
                p = _line_intersection(l1[0], l1[1], l2[0], l2[1])
                if p is not None and np.linalg.norm(p - q[corner]) <= 2.5 * r:
                    new[corner] = p
            if not _is_convex(new):
                break
            q = new
        return q

    # -- scoring --------------------------------------------------------------------------------

    # features of a candidate quad, in the order of FEATURES
    FEATURES = (
        "edge_min", "edge_2nd", "edge_mean", "cont_min", "cont_mean", "mode1", "two_tone", "texture",
        "inout", "log_width", "log_width2", "cy", "cy2", "matte", "tilt", "lean", "para", "lr_out_tex", "tb_out_tex",
        "split",
    )
    # The score is a gated logistic model: two sets of weights over FEATURES (+ bias), one
    # for plates with a smooth inside (blurred or blank) and one for plates with legible
    # characters, blended by the inside's texture (`GATE`: the texture feature's ramp).
    # Fitted with `benchmarks/plates.py --fit` (see that script for the data); an empty
    # WEIGHTS means `_FITTED_WEIGHTS`.
    GATE = (0.45, 0.75)
    WEIGHTS: dict[str, dict[str, float]] = {}  # set below the class: _FITTED_WEIGHTS

    def _features(self, work: "_Work", q: np.ndarray) -> dict | None:
        """Measurements of candidate `q` (None when it cannot be a plate at all)."""
        if not _is_convex(q):
            return None
        sides = _side_lengths(q)
        width = (sides[0] + sides[2]) / 2
        height = (sides[1] + sides[3]) / 2
        if height < 5 or width < 10:
            return None
        aspect = width / height
        lo, hi = self.aspect_range
        if not (lo <= aspect <= hi):
            return None
        d = np.roll(q, -1, axis=0) - q
        ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))  # top ~0, right ~90, bottom ~+-180, left ~-90
        top, right = ang[0], ang[1]
        bottom = ang[2] - 180 if ang[2] > 0 else ang[2] + 180
        left = ang[3] + 180
        tilt = max(abs(top), abs(bottom))
        lean = max(abs(90 - left), abs(90 - right))
        para = max(abs(top - bottom), abs(left - right))
        if tilt > 40 or lean > 45 or para > 35:
            return None
        vx0, vy0, vx1, vy1 = work.vehicle
        vw, vh = vx1 - vx0, vy1 - vy0
        wf = width / vw
        cx = (float(q[:, 0].mean()) - vx0) / vw
        cy = (float(q[:, 1].mean()) - vy0) / vh
        oblique = _soft(vw / max(vh, 1e-6), 1.15, 1.6) if work.has_box else 0.5
        off = abs(cx - 0.5)
        if not work.has_box:
            cy, off = 0.7, 0.0  # nothing known about the vehicle: neutral values
        matte = 1.0
        if work.alpha is not None:
            m = _quad_values(work.alpha, q)
            matte = float(m.mean()) if m.size else 0.0
        inner = _quad_mask(work.gray.shape, q, shrink=0.18)
        # outline evidence on each side: a step (or a thin line) along it
        r = float(np.clip(0.15 * height, 2.0, 8.0))
        base, n = self._sides(q, np.linspace(0.15, 0.85, 17))
        offs = np.array([-r, -1.0, 0.0, 1.0, r])
        v = self._sample(work.smooth, base[:, :, None, :] + offs[None, None, :, None] * n[:, None, None, :])
        inside, outside = v[..., 0], v[..., 4]
        on_max, on_min = v[..., 1:4].max(-1), v[..., 1:4].min(-1)
        step = outside - inside
        mid = (outside + inside) / 2
        line = np.where(np.abs(on_max - mid) > np.abs(on_min - mid), on_max - mid, on_min - mid)
        # a side may change polarity along its length (a grey plate half on a white bumper,
        # half on a black grille): the unsigned step counts too, a little less than a signed one
        st = np.maximum(np.abs(np.median(step, axis=1)), 0.7 * np.median(np.abs(step), axis=1))
        ln = np.abs(np.median(line, axis=1))
        use_step = st >= ln
        prof = np.where(use_step[:, None], step, line)
        strength = np.where(use_step, st, ln)
        conts = (np.abs(prof) > np.maximum(0.4 * strength[:, None], 3.0)).mean(1)
        ev = np.sort(strength)
        # inside: one tone (a blurred or blank plate) or two (paint and characters)
        if inner is None or int(inner[2].sum()) < 10:
            return None
        y0, x0, mask = inner
        sl = (slice(y0, y0 + mask.shape[0]), slice(x0, x0 + mask.shape[1]))
        vals = work.smooth[sl][mask]
        hist = np.bincount(np.clip(vals, 0, 255).astype(np.int32) >> 3, minlength=32)
        win = np.convolve(hist, np.ones(3), mode="same") / vals.size
        k1 = int(np.argmax(win))
        mode1 = float(win[k1])
        rest = win.copy()
        rest[max(0, k1 - 3) : k1 + 4] = 0
        two_tone = mode1 + float(rest.max())
        gin = np.abs(work.gx[sl][mask]) + np.abs(work.gy[sl][mask])
        texture = float(gin.mean()) / (float(ev.mean()) / max(r, 1.0) + 1.0)
        ring = self._sample(work.smooth, base + n[:, None, :] * (r + 2)).ravel()
        inout = abs(float(np.median(vals)) - float(np.median(ring))) / 64.0
        # just outside a plate is paint, not more characters: a side drawn through a row of
        # characters (part of a plate) has texture beyond it
        band = self._sample(work.smooth, base[:, :, None, :] + (np.array([1.2, 1.8, 2.4]) * r)[None, None, :, None]
                            * n[:, None, None, :])
        out_std = band.reshape(4, -1).std(1) / (strength + 8.0)
        lr_out_tex = float(max(out_std[1], out_std[3]))
        tb_out_tex = float(max(out_std[0], out_std[2]))
        split = self._split(work, q, float(ev.mean()))
        return dict(
            edge_min=math.log1p(float(ev[0])), edge_2nd=math.log1p(float(ev[1])), edge_mean=math.log1p(float(ev.mean())),
            cont_min=float(conts.min()), cont_mean=float(conts.mean()), mode1=mode1, two_tone=two_tone,
            texture=texture, inout=inout, aspect=aspect,
            log_width=math.log(wf), log_width2=math.log(wf / ((0.25 - 0.13 * oblique) * _foreshortening(aspect))) ** 2, cy=cy, cy2=(cy - 0.75) ** 2,
            off_centre=off, oblique=oblique, matte=matte, tilt=tilt / 30, lean=lean / 30,
            para=para / 30, lr_out_tex=lr_out_tex, tb_out_tex=tb_out_tex, split=split,
        )

    def _split(self, work: "_Work", q: np.ndarray, edge: float) -> float:
        """Evidence that `q` is two regions side by side (a plate and the bumper, grille or
        lamp beside it, or two panels) rather than one plate: the strongest straight step
        along a line across the inside from the top side to the bottom one, parallel to the
        left and right sides (the mean derivative across the line over its whole length, so
        that characters, which are short and alternate, average out), over the outline's
        own strength. A box drawn from one side of a plate to some edge of the bodywork
        holds the plate's far side inside it. Lines parallel to the top and bottom are not
        measured: a plate with characters (or a coloured strip) has a horizontal step inside."""
        ts = np.linspace(0.2, 0.8, 9)
        ss = np.linspace(0.08, 0.92, 11)
        a0, a1, b0, b1 = q[0], q[1], q[3], q[2]
        # lines from a point on the top side (a0 -> a1 at t) to the bottom side (b0 -> b1 at t)
        p0 = a0[None] + ts[:, None] * (a1 - a0)[None]
        p1 = b0[None] + ts[:, None] * (b1 - b0)[None]
        d = (a1 - a0 + b1 - b0) / 2
        n = d / max(float(np.linalg.norm(d)), 1e-9)  # across the lines
        pts = p0[:, None, :] + ss[None, :, None] * (p1 - p0)[:, None, :]
        g = self._sample(work.gx, pts) * n[0] + self._sample(work.gy, pts) * n[1]
        return float(np.abs(g.mean(1)).max()) / (edge + 4.0)

    def _logit(self, feats: dict) -> float:
        weights = self.WEIGHTS or _FITTED_WEIGHTS
        g = _soft(feats["texture"], *self.GATE)
        z = 0.0
        for part, share in (("smooth", 1.0 - g), ("text", g)):
            if share > 0:
                w = weights[part]
                z += share * (w.get("bias", 0.0) + sum(w.get(k, 0.0) * feats[k] for k in self.FEATURES))
        return z

    def _score_features(self, feats: dict, lenient: bool = False) -> float:
        if lenient:
            feats = dict(feats, tilt=0.0, lean=0.0, para=0.0)
        z = self._logit(feats) + _prior_logit(feats, self.aspect_range)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def _score(self, work: "_Work", q: np.ndarray) -> tuple[float, dict]:
        """Score in [0, 1] and measurements of quad `q` (work pixels); 0 when impossible."""
        feats = self._features(work, q)
        if feats is None:
            return 0.0, {}
        return self._score_features(feats), feats


def _default_scorer() -> "LearnedPlateScorer | None":
    """The shipped learned scorer when its weights file is found, else None (the logistic
    score alone). Loaded once per process."""
    global _DEFAULT_SCORER
    if _DEFAULT_SCORER is None:
        from ..errors import WeightsNotFound

        try:
            _DEFAULT_SCORER = LearnedPlateScorer()
        except WeightsNotFound:
            _DEFAULT_SCORER = False
    return _DEFAULT_SCORER or None


_DEFAULT_SCORER: "LearnedPlateScorer | bool | None" = None


def _logit(p: float) -> float:
    return math.log(max(p, 1e-12) / max(1.0 - p, 1e-12))


def _foreshortening(aspect: float) -> float:
    """How much narrower than it is a plate of apparent aspect `aspect` looks (1: seen
    straight on): plates are at least about 1.7:1, so a squarer one is turned away."""
    return float(min(1.0, max(0.3, aspect / 1.7)))


def _prior_logit(feats: dict, limits: tuple[float, float]) -> float:
    """Fixed (not fitted) priors added to the logit: `_aspect_logit`, and a plate near the
    middle of the vehicle box: -2 per tenth of the box width beyond 0.1 off centre, unless
    the view is oblique. A view is taken as oblique from the vehicle box (wider than tall:
    a side or three-quarter view of a saloon) or from the plate itself (apparent aspect
    under 1.3: foreshortened, as in a three-quarter view of a tall vehicle, whose box is
    square); an oblique plate may lie up to 0.5 off centre (the visible end), and a
    foreshortened one off centre is not penalised for its aspect."""
    fore = _soft(feats["aspect"], 1.3, 0.8)
    allowed = 0.1 + 0.4 * max(feats["oblique"], fore)
    off = feats["off_centre"]
    aspect = _aspect_logit(feats["aspect"], limits)
    if feats["aspect"] < 1.4:
        aspect *= 1.0 - _soft(off, 0.12, 0.3)
    return aspect - 20.0 * max(0.0, off - allowed)


def _aspect_logit(aspect: float, limits: tuple[float, float]) -> float:
    """A fixed prior on the apparent aspect ratio (added to the logit, not fitted: the
    labelled plates are mostly 1.4-2:1 and would teach the fit to reject 4.7:1 EU plates):
    flat from 1.4 to 5.5, falling to -3 at the lower limit (oblique or square plates) and
    to -4 at the upper one."""
    lo, hi = limits
    if aspect < 1.4:
        return -3.0 * math.log(1.4 / aspect) / math.log(1.4 / lo)
    if aspect > 5.5:
        return -4.0 * math.log(aspect / 5.5) / math.log(hi / 5.5)
    return 0.0


# Weights of the gated logistic score, fitted by `benchmarks/plates.py --fit` (conditional
# logit: in each image the candidates compete with "no plate" at logit 0) on carparts train1-99
# (blurred plates, hand-labelled), the same images with synthetic legible plates warped onto
# the labelled quads, and openalpr_us (image weights 2 : 1 : 2, lam 0.001), with `_flat_search`'s
# candidates (including its foreshortened aspects below 1) and the `split` feature; refitted after
# train80-99 were labelled (three-quarter views among them) and the position prior was changed.
# The fit measured `split` across both pairs of sides; it is now measured only parallel to the
# left and right sides (not refitted). Its "text" weight (fitted -3.15) is set to 0: legible
# plates have steps inside.
_FITTED_WEIGHTS = {
    "smooth": dict(
        edge_min=1.1963, edge_2nd=-0.1295, edge_mean=0.0715, cont_min=5.8675, cont_mean=13.6124, mode1=-2.3722,
        two_tone=1.5139, texture=-0.4973, inout=-1.516, log_width=1.8337, log_width2=-4.1444, cy=4.852, cy2=0.5986,
        matte=4.16, tilt=-0.3295, lean=-2.595, para=-0.0297, lr_out_tex=0.7404, tb_out_tex=-0.1748, split=-2.6731,
        bias=-24.7753,
    ),
    "text": dict(
        edge_min=0.0097, edge_2nd=1.2144, edge_mean=-0.8001, cont_min=9.2344, cont_mean=38.6806, mode1=0.0672,
        two_tone=6.2724, texture=0.4436, inout=-0.8912, log_width=2.1693, log_width2=-5.9282, cy=7.2541, cy2=-3.5259,
        matte=3.95, tilt=-6.4476, lean=-2.1322, para=0.1127, lr_out_tex=-0.3066, tb_out_tex=-1.0337, split=0.0,
        bias=-52.317,
    ),
}


def _dedupe(cands: list[tuple[np.ndarray, str]], iou: float = 0.88) -> list[tuple[np.ndarray, str]]:
    """Drop candidates whose corner box nearly repeats an earlier one's (MSER nests many)."""
    if not cands:
        return cands
    boxes = np.array([[q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()] for q, _ in cands])
    corners = np.array([q.reshape(-1) for q, _ in cands])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    for i in range(len(cands)):
        if keep:
            k = np.array(keep)
            ix = np.clip(np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0]), 0, None)
            iy = np.clip(np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1]), 0, None)
            inter = ix * iy
            ov = inter / np.maximum(area[k] + area[i] - inter, 1e-9)
            close = np.abs(corners[k] - corners[i]).max(1) <= 0.06 * max(boxes[i, 2] - boxes[i, 0], 1.0)
            if np.any((ov >= iou) & close):
                continue
        keep.append(i)
    return [cands[i] for i in keep]


def _quad_mask(shape, q: np.ndarray, shrink: float = 0.0):
    """(y0, x0, mask) of the pixels inside quad `q` shrunk by `shrink`, or None."""
    h, w = shape[:2]
    c = q.mean(0)
    qq = c + (q - c) * (1 - shrink)
    x0 = max(0, int(math.floor(qq[:, 0].min())))
    y0 = max(0, int(math.floor(qq[:, 1].min())))
    x1 = min(w, int(math.ceil(qq[:, 0].max())))
    y1 = min(h, int(math.ceil(qq[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((qq - [x0, y0] - 0.5) * 4).astype(np.int32), 1, lineType=cv2.LINE_8, shift=2)
    return y0, x0, mask.astype(bool)


def _quad_values(img: np.ndarray, q: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    """The values of `img` at pixels inside quad `q` (shrunk towards its centre by `shrink`)."""
    inner = _quad_mask(img.shape, q, shrink)
    if inner is None:
        return np.zeros(0, np.float32)
    y0, x0, mask = inner
    return img[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]][mask]


def _outline_positions(inten: np.ndarray, dn: np.ndarray, level: float, out_level: float, k: np.ndarray,
                       strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per profile (rows of `inten`, inside to outside), the fractional index where it
    crosses half-way from the plate's tone `level` to `out_level` after the last sample
    still within 35 % of the plate's tone; profiles without such a crossing keep `k`."""
    k = k.copy()
    strength = strength.copy()
    gap = out_level - level
    mid = level + 0.5 * gap
    rel = (inten - level) / gap  # 0 on the plate, 1 outside
    for i in range(len(k)):
        plate = np.nonzero(rel[i] < 0.35)[0]
        if plate.size == 0:
            continue
        last = int(plate.max())
        beyond = np.nonzero(rel[i, last:] >= 0.5)[0]
        if beyond.size == 0:
            continue
        j = last + int(beyond[0])
        a, b = inten[i, j - 1] - mid, inten[i, j] - mid
        frac = a / (a - b) if a != b else 1.0
        k[i] = j - 1 + float(np.clip(frac, 0.0, 1.0))
        strength[i] = max(float(abs(dn[i, j])), float(abs(dn[i, j - 1])))
    return k, strength


def _fit_side(points: np.ndarray, weights: np.ndarray, tol: float = 1.0, min_inliers: int = 6):
    """A line through most of `points` (M, 2): a Huber fit when most points agree with it,
    else the best of a few two-point hypotheses (RANSAC). Returns (point, unit direction,
    mean inlier weight) or None."""
    m = len(points)
    if m < max(2, min_inliers):
        return None
    vx, vy, x0, y0 = cv2.fitLine(points.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).reshape(4)
    normal = np.array([-vy, vx], np.float64)
    dist = np.abs((points - [x0, y0]) @ normal)
    mask = dist < tol
    if mask.sum() < 0.7 * m:
        fit = _ransac_line(points, weights, tol, min_inliers)
        if fit is None:
            return None
        mask = fit
    if int(mask.sum()) < min_inliers:
        return None
    vx, vy, x0, y0 = cv2.fitLine(points[mask].astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).reshape(4)
    return np.array([x0, y0], np.float64), np.array([vx, vy], np.float64), float(weights[mask].mean())


def _ransac_line(points: np.ndarray, weights: np.ndarray, tol: float = 1.0, min_inliers: int = 6,
                 hypotheses: int = 60) -> np.ndarray | None:
    """Inlier mask (M,) of the best line among two-point hypotheses spread along the side."""
    m = len(points)
    i, j = np.triu_indices(m, 1)
    far = (j - i) >= max(2, m // 4)  # well separated pairs give stable lines
    i, j = i[far], j[far]
    if len(i) == 0:
        return None
    if len(i) > hypotheses:
        pick = np.linspace(0, len(i) - 1, hypotheses).astype(int)
        i, j = i[pick], j[pick]
    d = points[j] - points[i]
    norm = np.linalg.norm(d, axis=1)
    keep = norm > 1e-6
    i, d, norm = i[keep], d[keep], norm[keep]
    if len(i) == 0:
        return None
    nrm = np.stack([-d[:, 1], d[:, 0]], 1) / norm[:, None]
    rel = points[None, :, :] - points[i][:, None, :]
    inl = np.abs(rel[..., 0] * nrm[:, None, 0] + rel[..., 1] * nrm[:, None, 1]) < tol
    best = int(np.argmax((inl * weights[None]).sum(1)))
    mask = inl[best]
    return mask if int(mask.sum()) >= min_inliers else None


def _gradient_sums(smooth: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """On `smooth` scaled by `f` and lightly blurred: the x / y derivatives (h, w) and
    their running sums down the columns (h + 1, w) and along the rows (h, w + 1), so
    that the mean derivative along any side of a rectangle costs O(1)."""
    img = smooth if f == 1.0 else cv2.resize(smooth, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    hh, ww = img.shape
    cy = np.concatenate([np.zeros((hh, 1), np.float32), np.cumsum(gy, axis=1, dtype=np.float32)], axis=1)
    cx = np.concatenate([np.zeros((1, ww), np.float32), np.cumsum(gx, axis=0, dtype=np.float32)], axis=0)
    return gx, gy, cx, cy


def _best_rects(found: list[tuple[float, int, int, int, int]], keep: int, overlap: float,
                f: float) -> list[np.ndarray]:
    """The best `keep` of scored rectangles ``(score, x0, y0, w, h)`` found on a copy scaled
    by `f`, none overlapping a better one by IoU > `overlap`, as quads in unscaled pixels."""
    found = sorted(found, key=lambda t: -t[0])
    quads: list[np.ndarray] = []
    rects: list[tuple[float, float, float, float]] = []
    for _, x0, y0, bw, bh in found:
        r = (x0, y0, x0 + bw, y0 + bh)
        if any(_rect_iou(r, o) > overlap for o in rects):
            continue
        rects.append(r)
        quads.append(np.array([[x0, y0], [x0 + bw, y0], [x0 + bw, y0 + bh], [x0, y0 + bh]], np.float64) / f)
        if len(quads) >= keep:
            break
    return quads


def _rect_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _contains(outer: np.ndarray, inner: np.ndarray, frac: float = 0.85) -> bool:
    """Whether most of `inner` lies inside `outer`."""
    a_in = abs(cv2.contourArea(inner.astype(np.float32)))
    if a_in <= 0:
        return False
    inter, _ = cv2.intersectConvexConvex(outer.astype(np.float32), inner.astype(np.float32))
    return inter / a_in >= frac


# -- a learned re-scorer of the classical candidates ------------------------------------------------

# extra measurements appended to `ContourPlateDetector.FEATURES` for the learned scorer
SCORER_EXTRA = ("aspect", "off_centre", "oblique", "prior", "old_logit")


def plate_patch(rgb: np.ndarray, alpha: np.ndarray | None, quad: np.ndarray, size: tuple[int, int] = (96, 48),
                context: tuple[float, float] = (2.0, 3.0)) -> np.ndarray:
    """The candidate `quad` (4, 2) (pixel-edge coordinates on `rgb`) rectified by homography
    with its surroundings: the quad widened `context[0]` times and heightened `context[1]`
    times about its centre (in its own frame), warped to `size` (W, H) (sampled at twice the
    size and area-averaged). Returns (4, H, W) float32: RGB in [0, 1] and the vehicle matte
    (1 where `alpha` is None)."""
    w, h = size
    cw, ch = context
    x0, x1 = w * (1 - 1 / cw) / 2, w * (1 + 1 / cw) / 2
    y0, y1 = h * (1 - 1 / ch) / 2, h * (1 + 1 / ch) / 2
    k = 2.0
    src = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64) * k - 0.5
    m = cv2.getPerspectiveTransform(src.astype(np.float32), (np.asarray(quad, np.float64) - 0.5).astype(np.float32))
    big = (int(w * k), int(h * k))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    chans = [cv2.warpPerspective(rgb, m, big, flags=flags, borderMode=cv2.BORDER_REPLICATE)]
    if alpha is not None:
        a = alpha if alpha.dtype == np.uint8 else (np.clip(alpha, 0, 1) * 255).round().astype(np.uint8)
        chans.append(cv2.warpPerspective(a, m, big, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None])
    else:
        chans.append(np.full((big[1], big[0], 1), 255, np.uint8))
    stack = np.concatenate(chans, axis=2)
    small = cv2.resize(stack, size, interpolation=cv2.INTER_AREA)
    return small.transpose(2, 0, 1).astype(np.float32) / 255.0


class PlateScorerNet(torch.nn.Module):
    """A tiny CNN over `plate_patch` (4, 48, 96) joined with the standardised hand features
    of the candidate (`feat_mean`, `feat_std`, `feat_mask` are buffers; features masked 0
    are ignored): one logit per candidate."""

    def __init__(self, n_feats: int, width: int = 16, size: tuple[int, int] = (96, 48), hidden: int = 32):
        super().__init__()
        nn = torch.nn
        c1, c2, c3, c4 = width, width * 3 // 2, width * 2, width * 3

        def block(i, o, stride):
            return [nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.conv = nn.Sequential(*block(4, c1, 2), *block(c1, c1, 1), *block(c1, c2, 2), *block(c2, c3, 2),
                                  *block(c3, c4, 2))
        fw, fh = size[0], size[1]
        for _ in range(4):
            fw, fh = (fw + 1) // 2, (fh + 1) // 2
        self.patch_fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(c4 * fw * fh, hidden), nn.ReLU(inplace=True))
        self.feat_fc = nn.Sequential(nn.Linear(n_feats, hidden), nn.ReLU(inplace=True))
        self.head = nn.Linear(2 * hidden, 1)
        self.register_buffer("feat_mean", torch.zeros(n_feats))
        self.register_buffer("feat_std", torch.ones(n_feats))
        self.register_buffer("feat_mask", torch.ones(n_feats))  # 0: a feature the scorer ignores

    def forward(self, patch: Tensor, feats: Tensor) -> Tensor:
        f = (feats - self.feat_mean) / self.feat_std * self.feat_mask
        x = torch.cat([self.patch_fc(self.conv(patch - 0.5)), self.feat_fc(f)], 1)
        return self.head(x).squeeze(1)


class PlateScorerEnsemble(torch.nn.Module):
    """Several `PlateScorerNet` trained alike from different seeds (``members.K.*``): the
    logit of their mean probability per candidate. One net's ranking of close candidates
    varies from seed to seed; the mean of a few is steadier."""

    def __init__(self, members: int, n_feats: int, **kw):
        super().__init__()
        self.members = torch.nn.ModuleList(PlateScorerNet(n_feats, **kw) for _ in range(members))

    def forward(self, patch: Tensor, feats: Tensor) -> Tensor:
        p = torch.stack([torch.sigmoid(m(patch, feats)) for m in self.members]).mean(0)
        return torch.logit(p, eps=1e-6)


def scorer_features(feats: dict, old_score: float, limits: tuple[float, float]) -> list[float]:
    """The hand features the learned scorer takes: FEATURES, then SCORER_EXTRA."""
    vals = [float(feats[k]) for k in ContourPlateDetector.FEATURES]
    vals += [float(feats["aspect"]), float(feats["off_centre"]), float(feats["oblique"]),
             _prior_logit(feats, limits), max(-30.0, min(30.0, _logit(old_score)))]
    return vals


class LearnedPlateScorer:
    """Re-scores `ContourPlateDetector`'s candidates with `PlateScorerNet` from a safetensors
    file (default: ``plate_scorer.safetensors`` found by `bgr_core.weights`), trained by
    ``benchmarks/train_plate_scorer.py``. The file's metadata holds the net's shape (width,
    patch size, context, feature names, ``members``: a `PlateScorerEnsemble` of that many
    nets, else one bare net); weights load on CPU, strictly. Runs on CPU in float32,
    deterministic; ``__call__(work, scored) -> (N,) probabilities``."""

    def __init__(self, path: str | os.PathLike | None = None):
        import json

        from safetensors import safe_open
        from safetensors.torch import load_file

        from .. import weights as _weights

        file = _weights.resolve("plate_scorer", path)
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
        try:
            cfg = json.loads(meta["config"])
        except (KeyError, ValueError) as err:
            raise ValueError(f"'{file}' is not a plate scorer file (no 'config' metadata)") from err
        names = tuple(cfg["features"])
        expected = tuple(ContourPlateDetector.FEATURES) + SCORER_EXTRA
        if names != expected:
            raise ValueError(f"'{file}' was trained on features {names}, this detector measures {expected}")
        self.path = Path(file)
        self.size = (int(cfg["size"][0]), int(cfg["size"][1]))
        self.context = (float(cfg["context"][0]), float(cfg["context"][1]))
        kw = dict(width=int(cfg["width"]), size=self.size, hidden=int(cfg["hidden"]))
        members = int(cfg.get("members", 0))  # 0: a single net saved bare (older files)
        self.net = PlateScorerEnsemble(members, len(names), **kw) if members else PlateScorerNet(len(names), **kw)
        self.net.load_state_dict(load_file(str(file), device="cpu"), strict=True)
        self.net.eval().requires_grad_(False)
        self.config = cfg

    def __repr__(self) -> str:
        return f"LearnedPlateScorer({self.path.name!r})"

    def inputs(self, work: "_Work", scored: list, limits: tuple[float, float]) -> tuple[Tensor, Tensor]:
        rgb = work.rgb if work.rgb is not None else np.repeat(work.gray[..., None], 3, axis=2)
        patches = np.stack([plate_patch(rgb, work.alpha, q, self.size, self.context) for _, q, _ in scored])
        feats = np.array([scorer_features(f, s, limits) for s, _, f in scored], np.float32)
        return torch.from_numpy(patches), torch.from_numpy(feats)

    def __call__(self, work: "_Work", scored: list, limits: tuple[float, float] = (0.5, 7.0)) -> np.ndarray:
        if not scored:
            return np.zeros(0)
        patches, feats = self.inputs(work, scored, limits)
        with torch.no_grad():
            z = self.net(patches, feats).double()
        return torch.sigmoid(z).numpy()


# -- a learned detector from a weights file ---------------------------------------------------------


class TorchScriptPlateDetector:
    """A learned plate detector loaded from a TorchScript file (``torch.jit.save``).

    The module takes a (1, 3, S, S) float batch in [0, 1] RGB (the image letterboxed to a
    square of side `input_size`, padded with zeros at the right and bottom) and returns
    (N, 9): four corners ``x1, y1, ..., x4, y4`` as fractions of S, clockwise from the
    top-left, then a score in [0, 1]. Detections are mapped back to image pixels, ordered,
    filtered by `min_score` and by the vehicle matte (mean alpha inside >= `min_matte`
    when `alpha` is given). Weights load on CPU and then move to `device`.
    """

    def __init__(self, path: str | os.PathLike, *, input_size: int = 512, min_score: float = 0.5,
                 min_matte: float = 0.3, device: str | torch.device = "cpu"):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"plate detector weights not found: {path}")
        self.module = torch.jit.load(path, map_location="cpu").eval().to(device)
        self.input_size = int(input_size)
        self.min_score = float(min_score)
        self.min_matte = float(min_matte)
        self.device = torch.device(device)

    def detect(self, image: Tensor, alpha: Tensor | None = None, box: Tensor | None = None) -> list[PlateDetection]:
        h, w = image.shape[-2:]
        s = self.input_size
        k = s / max(h, w)
        nh, nw = max(1, round(h * k)), max(1, round(w * k))
        x = torch.nn.functional.interpolate(image[None, :3].float().to(self.device), size=(nh, nw), mode="bilinear",
                                            align_corners=False, antialias=k < 1)
        x = torch.nn.functional.pad(x, (0, s - nw, 0, s - nh))
        with torch.no_grad():
            raw = self.module(x)
        raw = torch.as_tensor(raw).detach().float().cpu().reshape(-1, 9)
        out = []
        for row in raw:
            score = float(row[8])
            if score < self.min_score:
                continue
            quad = order_quad(row[:8].reshape(4, 2) * s / k)
            if alpha is not None and self.min_matte > 0:
                a = alpha.detach().float().reshape(h, w).cpu().numpy()
                vals = _quad_values(a, quad.numpy().astype(np.float64))
                if vals.size and float(vals.mean()) < self.min_matte:
                    continue
            out.append(PlateDetection(quad, score))
        out.sort(key=lambda d: -d.score)
        return out


# -- the stage ----------------------------------------------------------------------------------------


class PlateReplacement(FrameStage):
    """Find licence plates and cover them (``plate_replacement=image|blank``).

    Args:
        mode: ``"image"`` (cover each plate with `plate`, a (3|4, h, w) float image in
            [0, 1]) or ``"blank"`` (a clean plate of the plate's colour, no text).
        plate: the replacement image for ``mode="image"``.
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
        plate: Tensor | None = None,
        detector: PlateDetector | None = None,
        min_score: float = 0.3,
        *,
        fill: str | Sequence[float] = "plate",
        match: bool = True,
        cover_border: bool = True,
    ):
        if mode not in ("image", "blank"):
            raise ValueError(f"`mode` must be 'image' or 'blank' but is {mode!r}")
        if mode == "image":
            if plate is None:
                raise ValueError("`plate` (a (3|4, h, w) image) is required with mode='image'")
            if not isinstance(plate, Tensor) or plate.ndim != 3 or plate.shape[0] not in (3, 4):
                raise ValueError(f"`plate` must be a (3|4, h, w) tensor but is {getattr(plate, 'shape', type(plate))}")
            if min(plate.shape[-2:]) < 1:
                raise ValueError("`plate` is empty")
        self.mode = mode
        self.plate = plate.float() if (plate is not None and not plate.is_floating_point()) else plate
        self.detector = detector if detector is not None else ContourPlateDetector()
        if not isinstance(self.detector, PlateDetector):
            raise TypeError("`detector` must have a detect(image, alpha, box) method")
        self.min_score = float(min_score)
        self.fill = fill
        self.match = bool(match)
        self.cover_border = bool(cover_border)

    def __repr__(self) -> str:
        return f"PlateReplacement(mode={self.mode!r}, detector={self.detector!r}, min_score={self.min_score})"

    def process(self, frame: Frame) -> Frame:
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
        plate = self.plate.to(dev) if self.plate is not None else None
        outlines = []
        for quad in quads:
            # the outline is found on the photo as it was, not on a plate already drawn
            outline = outer_border(frame.image, quad).to(quad) if self.cover_border else quad
            outlines.append(outline)
            image, _ = overlay_plate(image, outline, plate if self.mode == "image" else None, fill=self.fill,
                                     match=self.match, colour_quad=quad)
        new = frame.replace(image=image, plates=quads)
        new.meta["plate_outlines"] = torch.stack(outlines)
        new.meta["plate_scores"] = [d.score for d in detections]
        return new

