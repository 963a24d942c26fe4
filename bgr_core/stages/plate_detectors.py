"""Plate detectors: the classical `ContourPlateDetector` (candidate search, measurement and
the logistic score, re-scored by the learned `LearnedPlateScorer` when its weights are
found) and `TorchScriptPlateDetector` (a learned detector from a TorchScript file). Both
follow `bgr_core.stages.plates.PlateDetector`; pass one as ``PlateReplacement(detector=...)``
or ``Pipeline(components={"plate_detector": ...})``.
"""

from __future__ import annotations

import math
import os
import cv2
import numpy as np
import torch
from torch import Tensor

from ..errors import WeightsNotFound
from ..functional.plate_features import (FEATURES, GATE, SCORER_EXTRA, logistic_score, logit, measure, plate_patch,
                                         scorer_features)
from ..functional.plate_geometry import contains, dedupe, quad_values, side_lengths, soft
from ..functional.plate_search import BOX_WIDTH, PlateWork, find_candidates, prepare_work, refine_quad
from ..functional.quad_warp import order_quad, quad_iou
from ..loaders import load_plate_logistic, load_plate_scorer
from .plates import PlateDetection

__all__ = ["ContourPlateDetector", "LearnedPlateScorer", "TorchScriptPlateDetector", "default_scorer"]


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
       texture (`flat_search`: blank or blurred plates with faint borders); and, for plates
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
       plate near the middle unless the view is oblique (see `prior_logit`). The weights
       (`weights`, default ``weights/plate_logistic.json``) were fitted by `tools/fit_plate_logistic.py` as a ranking in each
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
        weights: dict[str, dict[str, float]] | None = None,
    ):
        self.work_size = int(work_size)
        self.min_score = float(min_score)
        self.max_plates = int(max_plates)
        self.second_margin = float(second_margin)
        self.aspect_range = aspect_range
        self.refine = refine
        self.refine_top = int(refine_top)
        # `flat_search` candidates (smooth rectangles with faint outlines); the fitted weights
        # assume them
        self.flat = bool(flat)
        self.box_width = BOX_WIDTH  # the rectangle search runs where the vehicle is at most this wide
        # the gated logistic model's weights (data: weights/plate_logistic.json)
        self.weights = load_plate_logistic() if weights is None else weights
        # the learned re-scorer of the best `rescore_top` candidates: "auto" loads the shipped
        # one when its weights file is found (else the logistic score alone), None never does,
        # a path or a `LearnedPlateScorer` must load
        self.rescore_top = int(rescore_top)
        if isinstance(scorer, str) and scorer == "auto":
            scorer = default_scorer()
        elif scorer is not None and not callable(scorer):
            scorer = LearnedPlateScorer(scorer)
        self.scorer = scorer

    def __repr__(self) -> str:
        return (f"ContourPlateDetector(work_size={self.work_size}, min_score={self.min_score}, max_plates={self.max_plates}, "
                f"scorer={self.scorer!r})")

    def detect(self, image: Tensor, alpha: Tensor | None = None, box: Tensor | None = None) -> list[PlateDetection]:
        work = prepare_work(image, alpha, box, self.work_size)
        if work is None:
            return []
        scored = self.scored(work)
        if self.scorer is not None:
            scored = self._rescored(work, scored)
        else:
            scored = self._prefer_outlines(scored)
        kept: list[tuple[float, np.ndarray, dict]] = []
        for score, quad, feats in scored:
            if score <= 0:
                break
            if any(quad_iou(quad, k[1]) > 0.2 or contains(k[1], quad) or contains(quad, k[1]) for k in kept):
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

    def _second_plate(self, work: PlateWork, first, other) -> bool:
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
        h1 = (side_lengths(q1)[1] + side_lengths(q1)[3]) / 2
        h2 = (side_lengths(q2)[1] + side_lengths(q2)[3]) / 2
        if not 0.6 <= h2 / max(h1, 1e-6) <= 1.6:
            return False
        vw = work.vehicle[2] - work.vehicle[0]
        return abs(float(q1[:, 0].mean() - q2[:, 0].mean())) >= vw / 3

    def candidates(self, image: Tensor, alpha: Tensor | None = None, box: Tensor | None = None) -> list[PlateDetection]:
        """Every scored candidate, best first, before suppression and thresholds (to inspect)."""
        work = prepare_work(image, alpha, box, self.work_size)
        if work is None:
            return []
        scored = self.scored(work)
        if self.scorer is not None:
            scored = self._rescored(work, scored, keep_rest=True)
        return [PlateDetection(torch.from_numpy(work.to_image(q).astype(np.float32)), s, f) for s, q, f in scored]

    def _rescored(self, work: PlateWork, scored: list[tuple[float, np.ndarray, dict]],
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

    def scored(self, work: PlateWork) -> list[tuple[float, np.ndarray, dict]]:
        """Every candidate on `work` (`bgr_core.functional.plate_search.prepare_work`)
        measured, refined and scored by the logistic model: (score, quad, features), best
        first, before the learned re-scoring, suppression and thresholds."""
        measured = []
        for quad, source in dedupe(find_candidates(work, self.flat, self.box_width)):
            feats = measure(work, quad, self.aspect_range)
            if feats is not None:
                feats["source"] = source
                # first leniently on shape: a crooked hull of a plate's region is what the
                # refit repairs
                measured.append((logistic_score(feats, self.weights, self.aspect_range, lenient=self.refine), quad, feats))
        measured.sort(key=lambda t: -t[0])
        out = []
        done: list[np.ndarray] = []
        for rank, (_, quad, feats) in enumerate(measured):
            best = (logistic_score(feats, self.weights, self.aspect_range), quad, feats)
            if self.refine and rank < self.refine_top:
                new = refine_quad(work, quad)
                if any(np.abs(new - d).max() < 1.0 for d in done):
                    continue
                done.append(new)
                f2 = measure(work, new, self.aspect_range)
                if f2 is not None:
                    f2["source"] = feats["source"]
                    s2 = logistic_score(f2, self.weights, self.aspect_range)
                    # the refit follows the outline more closely: keep it while it is still
                    # a confident plate (logit >= 2) or scores nearly as well (logit -1)
                    if logit(s2) >= min(logit(best[0]) - 1.0, 2.0):
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
                    m = margin + 0.5 * soft(scored[cur][2]["texture"], *GATE)
                    if logits[j] < logits[cur] - m or not contains(scored[j][1], scored[cur][1]):
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

    def _score(self, work: PlateWork, q: np.ndarray) -> tuple[float, dict]:
        """Score in [0, 1] and measurements of quad `q` (work pixels); 0 when impossible."""
        feats = measure(work, q, self.aspect_range)
        if feats is None:
            return 0.0, {}
        return logistic_score(feats, self.weights, self.aspect_range), feats


class LearnedPlateScorer:
    """Re-scores `ContourPlateDetector`'s candidates with `PlateScorerNet` from a safetensors
    file (default: ``plate_scorer.safetensors`` found by `bgr_core.weights`), trained by
    ``tools/train_plate_scorer.py``. The file's metadata holds the net's shape (width,
    patch size, context, feature names, ``members``: a `PlateScorerEnsemble` of that many
    nets, else one bare net); weights load on CPU, strictly. Runs on CPU in float32,
    deterministic; ``__call__(work, scored) -> (N,) probabilities``."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.net, self.config, self.path = load_plate_scorer(path)
        names = tuple(self.config["features"])
        expected = tuple(FEATURES) + SCORER_EXTRA
        if names != expected:
            raise ValueError(f"'{self.path}' was trained on features {names}, this detector measures {expected}")
        self.size = (int(self.config["size"][0]), int(self.config["size"][1]))
        self.context = (float(self.config["context"][0]), float(self.config["context"][1]))

    def __repr__(self) -> str:
        return f"LearnedPlateScorer({self.path.name!r})"

    def inputs(self, work: PlateWork, scored: list, limits: tuple[float, float]) -> tuple[Tensor, Tensor]:
        rgb = work.rgb if work.rgb is not None else np.repeat(work.gray[..., None], 3, axis=2)
        patches = np.stack([plate_patch(rgb, work.alpha, q, self.size, self.context) for _, q, _ in scored])
        feats = np.array([scorer_features(f, s, limits) for s, _, f in scored], np.float32)
        return torch.from_numpy(patches), torch.from_numpy(feats)

    def __call__(self, work: PlateWork, scored: list, limits: tuple[float, float] = (0.5, 7.0)) -> np.ndarray:
        if not scored:
            return np.zeros(0)
        patches, feats = self.inputs(work, scored, limits)
        with torch.no_grad():
            z = self.net(patches, feats).double()
        return torch.sigmoid(z).numpy()


def default_scorer() -> "LearnedPlateScorer | None":
    """The shipped learned scorer when its weights file is found, else None (the logistic
    score alone). Its net is loaded once per process (`bgr_core.loaders`)."""
    try:
        return LearnedPlateScorer()
    except WeightsNotFound:
        return None


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
                vals = quad_values(a, quad.numpy().astype(np.float64))
                if vals.size and float(vals.mean()) < self.min_matte:
                    continue
            out.append(PlateDetection(quad, score))
        out.sort(key=lambda d: -d.score)
        return out
