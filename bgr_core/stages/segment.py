"""Vehicle matte stage: U2NetP → main-vehicle selection → optional second pass on a
crop around the vehicle → holes closed, strays removed → edge-aware upsampling.

`VehicleMatte` sets ``alpha`` (1, H, W) float in [0, 1] at full resolution and ``box``
(4,) XYXY pixels of the main vehicle; frames without a vehicle-like foreground get
``error=NoData(...)``. The pure pieces live in `bgr_core.functional.matte`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import NoData
from ..frame import Frame
from ..functional import matte as M
from ..functional.edge_refine import edge_reduction, refine_edges
from .base import Stage

__all__ = ["VehicleMatte"]


@dataclass
class _Job:
    """Per-frame state between the passes."""

    index: int
    canvas: Tensor  # (1, h, w) probability on the working canvas
    crop: tuple[int, int, int, int] | None = None
    near: Tensor | None = None  # (1, h, w) bool, where the crop pass may change the matte
    host: np.ndarray | None = None  # the canvas on the CPU and its vehicle, while no crop
    selection: M.Selection | None = None  # pass has changed the canvas


class VehicleMatte(Stage):
    """The vehicle alpha matte and box, from U2NetP, batched over frames.

    net: a matte net (``bgr_core.loaders.load_matte_net``): (B, 3, S, S) normalised →
    (B, 1, S, S) probability of the vehicle. Options:

    - net_size: the net's square input side (320, as trained).
    - recheck_size: with a smaller `net_size`, run the net again at this larger size on
      the photos where the first pass is unsure: more than `recheck_unsure` of the
      selected vehicle's canvas pixels have a probability in [0.5, 0.8)
      (`functional.matte.unsure_share`); the recheck's output replaces the first pass.
      At 224 the net sometimes joins studio lettering or a wall to the car, and then
      hesitates over that region; the check catches most of those at the cost of about
      5 % of street photos run twice (None: never).
    - batch_size: images per net call.
    - crop_pass: run the net a second time on a square crop around the vehicle, with
      `crop_margin` (share of the box's larger side) on each side, when that crop is at
      most `crop_max_area` of the image (otherwise it would see the same pixels again);
      the passes are merged with `merge` ("max", "mean" or "crop"), only within
      `crop_band` (share of the vehicle box diagonal) of the first pass's vehicle, so the
      crop pass refines the vehicle but cannot add objects (0 = everywhere in the crop).
    - work_size: long side of the working canvas where passes are merged and
      components found (never larger than the image).
    - threshold: level of the matte that counts as vehicle for selection and the box.
    - min_area: smallest main component, as a share of the image, below which the
      frame gets `NoData`.
    - min_confidence: lowest mean probability of the main component (its
      `Selection.confidence`) that counts as a vehicle; below it (after the recheck,
      where there is one) the frame gets `NoData`. 0 (the default) turns the test off.
      The level belongs to the net: `Pipeline` gives its fast preset the one of
      ``weights/matte_confidence.json`` (`loaders.load_matte_confidence`): 0.8 for the
      vehicle nets, sure of real vehicles in one pass (0.964 at the lowest on the 464
      photos of their training side) and lukewarm on objects they half take for one
      (0.74-0.79 on three of scikit-image's training photos without a vehicle); none for
      the generic salient-object net. It needs ``flip=False``: where the mirrored pass
      disagrees, the average halves (a small dark car in a street scene: 0.90 in one
      pass, 0.65 averaged; README, Quality).
    - fringe_reach: how far from the chosen vehicle (share of the working canvas's long
      side, at least 2 pixels) the net's soft values stay in the matte; farther out
      they are dropped, so an unsure haze over what stands behind the car (a car parked
      behind it) does not come out as a translucent ghost. None (the default) keeps
      every soft pixel connected to the vehicle: a reach also trims the door mirrors
      that the net sees only softly (held-out mirror recall 0.736 -> 0.729 at 0.02;
      README, Quality).
    - fill_holes: close holes in the silhouette (windows that came out transparent).
    - contrast: (low, high) soft threshold applied to the probability, or None.
    - edge_contrast: (low, high) soft threshold of the full-resolution alpha, last (after
      the edge refiner), or None. A car's outline is a hard edge: what the upsampling
      and the refiner leave as a faint tail or a mottled ramp (a roof line against
      grass or leaves) is background colour carried into the cut-out. With
      ``low + high == 1`` the 0.5 level, and so every silhouette measure, is unchanged.
      On selection cars pasted on street frames (`benchmarks/edge_fringe.py`'s recipe,
      never its held-out cars) (0.2, 0.8) narrowed the halo on background from 0.69 to
      0.55 px and the bite into the car from 0.93 to 0.80 px; (0.1, 0.9) gave 0.59 /
      0.83, (0.3, 0.7) 0.54 / 0.77 with harder steps.
    - flip: average the net's output on the image and on its mirror image (test-time
      augmentation; twice the net's cost).
    - refine: "guided" (edge-aware upsampling with the image as guide: a guided filter
      of `radius` working-canvas pixels and regularisation `eps`, its coefficients
      computed on the canvas and applied at full resolution) or "bilinear". The small
      default `eps` (1e-4) lets the edge follow the photo's: the fringe that carries
      background colours is a third narrower than at 1e-2 on held-out cars pasted on
      street frames, silhouettes unchanged (`benchmarks/edge_fringe.py`, README).
    - edge_refiner: an `bgr_core.models.edge_refiner.EdgeRefinerNet` (or None) that
      re-estimates the full-resolution alpha on a band of a few pixels around the
      outline from patches of photo and alpha (`functional.edge_refine.refine_edges`),
      after the guided upsampling; it moves the edge onto the photo's, never adds or
      removes a region. On a photo whose edges are blurred over several pixels it runs on
      a reduced copy where they are sharp (`edge_reduction`), its change carried up.
    - refiner_amp: run the edge refiner under the net's autocast dtype on the CPU
      (`cpu_amp_dtype`; on other devices it stays in float32, where it costs little).
      In bfloat16 the refined alpha moves by at most 0.034 on 32 street photos.
    - antialias: antialiased resizing of the images to the net's input.
    - amp_dtype: autocast dtype for the net on CUDA (float16, bfloat16, or None for
      float32).
    - cpu_amp_dtype: autocast dtype for the net on the CPU: None (float32), bfloat16,
      or "auto" (bfloat16 where the CPU has it natively,
      `bgr_core.loaders.cpu_native_bfloat16`, else float32). The net runs
      channels-last under ``torch.inference_mode``.

    ``VehicleMatte.fast(net)`` is the throughput preset (no mirror augmentation, crop
    pass only for small vehicles).
    """

    name = "segment"

    def __init__(
        self,
        net: nn.Module,
        *,
        net_size: int = 320,
        recheck_size: int | None = None,
        recheck_unsure: float = 0.07,
        batch_size: int = 4,
        crop_pass: bool = True,
        crop_margin: float = 0.15,
        crop_max_area: float = 0.6,
        crop_band: float = 0.03,
        merge: str = "mean",
        work_size: int = 640,
        threshold: float = 0.5,
        min_area: float = 0.002,
        min_confidence: float = 0.0,
        fringe_reach: float | None = None,
        fill_holes: bool = True,
        contrast: tuple[float, float] | None = (0.3, 0.7),
        edge_contrast: tuple[float, float] | None = (0.2, 0.8),
        refine: str = "guided",
        radius: int = 2,
        eps: float = 1e-4,
        edge_refiner: nn.Module | None = None,
        refiner_amp: bool = False,
        antialias: bool = True,
        flip: bool = True,
        amp_dtype: torch.dtype | None = torch.float16,
        cpu_amp_dtype: torch.dtype | str | None = None,
    ) -> None:
        if refine not in ("guided", "bilinear"):
            raise ValueError(f"refine must be 'guided' or 'bilinear', got {refine!r}")
        if merge not in ("max", "mean", "crop"):
            raise ValueError(f"merge must be 'max', 'mean' or 'crop', got {merge!r}")
        self.net = net
        self.net_size = int(net_size)
        self.recheck_size = None if recheck_size is None else int(recheck_size)
        self.recheck_unsure = float(recheck_unsure)
        self.batch_size = max(1, int(batch_size))
        self.crop_pass = bool(crop_pass)
        self.crop_margin = float(crop_margin)
        self.crop_max_area = float(crop_max_area)
        self.crop_band = float(crop_band)
        self.merge = merge
        self.work_size = int(work_size)
        self.threshold = float(threshold)
        self.min_area = float(min_area)
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
        if min_confidence > 0 and flip:
            raise ValueError("min_confidence needs flip=False: averaged with the mirrored pass, the "
                             "confidence of a vehicle the two passes see differently halves")
        self.min_confidence = float(min_confidence)
        if fringe_reach is not None and not fringe_reach >= 0:
            raise ValueError(f"fringe_reach must be None or >= 0, got {fringe_reach!r}")
        self.fringe_reach = None if fringe_reach is None else float(fringe_reach)
        self.fill_holes = bool(fill_holes)
        self.contrast = M.soft_range("contrast", contrast)
        self.edge_contrast = M.soft_range("edge_contrast", edge_contrast)
        self.refine = refine
        self.radius = int(radius)
        self.eps = float(eps)
        self.edge_refiner = edge_refiner
        self.refiner_amp = bool(refiner_amp)
        self.antialias = bool(antialias)
        self.flip = bool(flip)
        self.amp_dtype = amp_dtype
        if cpu_amp_dtype == "auto":
            from ..loaders import cpu_native_bfloat16

            cpu_amp_dtype = torch.bfloat16 if cpu_native_bfloat16() else None
        if cpu_amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"cpu_amp_dtype must be None, 'auto', torch.bfloat16 or torch.float16, got {cpu_amp_dtype!r}")
        self.cpu_amp_dtype = cpu_amp_dtype

    @classmethod
    def fast(cls, net: nn.Module, **overrides) -> "VehicleMatte":
        """The throughput preset: no mirror test-time augmentation, the crop pass only for
        small vehicles (crop at most a quarter of the image), the net in bfloat16 on a
        CPU that has it natively (``cpu_amp_dtype="auto"``) and at 288x288 where it runs
        in reduced precision (CUDA, or such a CPU: 2.5x faster than float32), else at
        224x224 (half the pixels of 320), with a recheck at 320 where the first pass is
        unsure. The net runs about 1.05 times per photo instead of 2-4 times. The edge
        refiner, if given, runs in the net's CPU dtype too (``refiner_amp``: 21 -> 17 ms
        a 512 px photo, the held-out figures unchanged to the fourth decimal). Held-out
        figures for each choice are in the README (Quality); `overrides` are any other
        options (`benchmarks/quality.py`)."""
        options = {"flip": False, "crop_max_area": 0.25, "recheck_size": 320, "cpu_amp_dtype": "auto",
                   "refiner_amp": True, **overrides}
        stage = cls(net, **{"net_size": 224, **options})
        if "net_size" not in overrides and stage.reduced_precision:
            stage.net_size = 288
        return stage

    def __repr__(self) -> str:
        return (
            f"VehicleMatte(net_size={self.net_size}, crop_pass={self.crop_pass}, "
            f"refine='{self.refine}', batch_size={self.batch_size})"
        )

    # -- net ---------------------------------------------------------------------------

    def _net_device(self) -> torch.device:
        for p in self.net.parameters():
            return p.device
        return torch.device("cpu")

    def _amp(self, dev: torch.device) -> torch.dtype | None:
        """The autocast dtype of the net on `dev` (None: float32)."""
        return self.amp_dtype if dev.type == "cuda" else self.cpu_amp_dtype if dev.type == "cpu" else None

    @property
    def reduced_precision(self) -> bool:
        """Whether the net runs in float16 / bfloat16 on its device."""
        return self._amp(self._net_device()) is not None

    def _run(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) normalised, any device → (B, 1, S, S) probability on x's device."""
        dev = self._net_device()
        amp = self._amp(dev)
        outs = []
        for start in range(0, x.shape[0], self.batch_size):
            chunk = x[start : start + self.batch_size].to(dev, torch.float32, non_blocking=True)
            chunk = chunk.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                y = self.net(chunk)
            outs.append(y.to(x.device, torch.float32).contiguous())
        return torch.cat(outs, dim=0).clamp(0.0, 1.0)

    def _run_grouped(self, inputs: list[Tensor]) -> list[Tensor]:
        """Net over a list of (1, 3, S, S) inputs, batched per device; (1, S, S) outputs."""
        result: list[Tensor | None] = [None] * len(inputs)
        by_dev: dict[torch.device, list[int]] = {}
        for i, x in enumerate(inputs):
            by_dev.setdefault(x.device, []).append(i)
        for idx in by_dev.values():
            x = torch.cat([inputs[i] for i in idx], dim=0)
            if self.flip:
                both = self._run(torch.cat([x, x.flip(-1)], dim=0))
                probs = 0.5 * (both[: len(idx)] + both[len(idx) :].flip(-1))
            else:
                probs = self._run(x)
            for k, i in enumerate(idx):
                result[i] = probs[k]
        return result  # type: ignore[return-value]

    # -- stage -------------------------------------------------------------------------

    def __call__(self, frames: Sequence[Frame]) -> list[Frame]:
        out = [f.replace() for f in frames]
        todo = [i for i, f in enumerate(frames) if f.error is None]
        if not todo:
            return out
        with torch.inference_mode():
            self._segment(frames, out, todo)
        return out

    def _segment(self, frames: Sequence[Frame], out: list[Frame], todo: list[int]) -> None:
        # Pass 1: every image squashed to the net's square input.
        canvases, host, selections = self._pass([frames[i] for i in todo], self.net_size)
        if self.recheck_size is not None and self.recheck_size > self.net_size:
            self._recheck(frames, todo, canvases, host, selections)
        jobs: list[_Job] = []
        for i, canvas, prob_np, sel in zip(todo, canvases, host, selections):
            h, w = frames[i].size
            ch, cw = canvas.shape[-2:]
            if not self._is_vehicle(sel):
                out[i] = out[i].replace(error=self._no_data(frames[i], sel))
                continue
            job = _Job(i, canvas, host=prob_np, selection=sel)
            if self.crop_pass:
                sx, sy = w / cw, h / ch
                x0, y0, x1, y1 = sel.box
                box = M.crop_box((x0 * sx, y0 * sy, x1 * sx, y1 * sy), (h, w), self.crop_margin)
                area = (box[2] - box[0]) * (box[3] - box[1])
                if area <= self.crop_max_area * h * w:
                    job.crop = box
                    if self.crop_band > 0:
                        region = M.keep_region(prob_np, sel.keep, apart=sel.apart)
                        bx0, by0, bx1, by1 = sel.box
                        band = int(np.ceil(self.crop_band * np.hypot(bx1 - bx0, by1 - by0)))
                        job.near = torch.from_numpy(M.dilate(region, band)).to(canvas.device)[None]
            jobs.append(job)

        # Pass 2: a square crop around each vehicle that is small enough to gain from it.
        cropped = [j for j in jobs if j.crop is not None]
        if cropped:
            crops = [M.crop_input(frames[j.index].image, j.crop, self.net_size, self.antialias) for j in cropped]
            for j, prob in zip(cropped, self._run_grouped(crops)):
                h, w = frames[j.index].size
                j.canvas = M.paste_pass(j.canvas, prob, j.crop, (h, w), self.merge, limit=j.near)
                j.host = j.selection = None

        for j in jobs:
            frame = frames[j.index]
            alpha = self._finish(frame, j.canvas, j.host, j.selection)
            box = None if alpha is None else M.mask_box(alpha >= self.threshold)
            if alpha is None or box is None:
                out[j.index] = out[j.index].replace(error=self._no_data(frame))
                continue
            out[j.index] = out[j.index].replace(alpha=alpha.to(frame.image.dtype), box=box.to(frame.device))

    def first_pass_confidence(self, image: Tensor) -> float | None:
        """The main component's confidence (`Selection.confidence`) on the first pass over
        a (3, H, W) image in [0, 1], as ``min_confidence`` tests it (before any recheck);
        None where nothing is selected. For calibrating the test
        (``tools/fit_matte_confidence.py``)."""
        with torch.inference_mode():
            _, _, (sel,) = self._pass([Frame(image=image)], self.net_size)
        return None if sel is None else sel.confidence

    def _pass(self, frames: Sequence[Frame], size: int) -> tuple[list[Tensor], list[np.ndarray], list]:
        """The net at `size` over `frames` (each squashed to its square input): the
        probabilities on the frames' working canvases, the same on the CPU, and the
        `Selection` of each (None where nothing is found)."""
        probs = self._run_grouped([M.net_input([f.image], size, self.antialias) for f in frames])
        canvases = [self._canvas(f, prob) for f, prob in zip(frames, probs)]
        host = [c[0].cpu().numpy() for c in canvases]  # one device-to-host copy per canvas
        return canvases, host, [M.select_vehicle(c, self.threshold, self.min_area) for c in host]

    def _is_vehicle(self, sel: M.Selection | None) -> bool:
        """A main component was found and the net is sure enough of it (`min_confidence`)."""
        return sel is not None and not sel.confidence < self.min_confidence

    def _canvas(self, frame: Frame, prob: Tensor) -> Tensor:
        """(1, S, S) net probability → (1, h, w) on the frame's working canvas."""
        ch, cw = M.work_size(*frame.size, self.work_size)
        return F.interpolate(prob[None], size=(ch, cw), mode="bilinear", align_corners=False)[0]

    def _recheck(self, frames: Sequence[Frame], todo: list[int], canvases: list[Tensor], host: list[np.ndarray],
                 selections: list) -> None:
        """Re-run the net at `recheck_size` where the first pass is unsure (in place;
        `host` holds the canvases' probabilities on the CPU)."""
        unsure = [
            k for k, (prob, sel) in enumerate(zip(host, selections))
            if not self._is_vehicle(sel) or M.unsure_share(prob, sel.keep) > self.recheck_unsure
        ]
        if not unsure:
            return
        again = self._pass([frames[todo[k]] for k in unsure], self.recheck_size)
        for n, k in enumerate(unsure):
            canvases[k], host[k], selections[k] = (part[n] for part in again)

    def _finish(self, frame: Frame, canvas: Tensor, prob_np: np.ndarray | None = None, sel=None) -> Tensor | None:
        """Merged canvas probability (1, h, w) → full-resolution alpha (1, H, W) or None
        (`prob_np`, `sel`: the canvas on the CPU and its vehicle, when already known)."""
        if prob_np is None:
            prob_np = canvas[0].cpu().numpy()
            sel = M.select_vehicle(prob_np, self.threshold, self.min_area)
        if sel is None:
            return None
        reach = None if self.fringe_reach is None else max(2, round(self.fringe_reach * max(prob_np.shape)))
        region = M.keep_region(prob_np, sel.keep, reach=reach, apart=sel.apart)
        keep = torch.from_numpy(region).to(canvas.device)[None]
        prob = canvas * keep
        if self.fill_holes:
            filled = M.fill_holes(sel.keep)
            holes = torch.from_numpy(filled & ~sel.keep).to(canvas.device)[None]
            prob = torch.where(holes, torch.ones_like(prob), prob)
        if self.contrast is not None:
            prob = M.soft_threshold(prob, *self.contrast)
        image = frame.image.to(torch.promote_types(frame.image.dtype, torch.float32))
        # The radius is given on the canvas; guided_upsample wants full-resolution pixels.
        radius = max(1, round(self.radius * frame.size[0] / canvas.shape[-2]))
        alpha = M.refine_alpha(image, prob.to(image.dtype), radius, self.eps, self.refine == "guided")
        if self.edge_refiner is not None:
            # where the photo's edges are as sharp as in its training photos: on a soft or
            # enlarged photo it would see only a slope (README, Quality: large photos)
            amp = self.cpu_amp_dtype if self.refiner_amp and alpha.device.type == "cpu" else None
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                alpha = refine_edges(image, alpha, self.edge_refiner, reduce=edge_reduction(image, alpha))
        if self.edge_contrast is not None:
            alpha = M.soft_threshold(alpha, *self.edge_contrast)
        return alpha

    def _no_data(self, frame: Frame, sel: M.Selection | None = None) -> NoData:
        h, w = frame.size
        if sel is not None and sel.confidence < self.min_confidence:
            return NoData(
                f"no vehicle found in the image ({w}x{h}): the most vehicle-like object was "
                f"recognised with confidence {sel.confidence:.2f}, below {self.min_confidence:g}"
            )
        return NoData(
            f"no vehicle found in the image ({w}x{h}): no vehicle-like foreground "
            "large enough was segmented"
        )
