"""`Pipeline`: owns the device, the models and the batch size; builds and runs the stages.

One Pipeline serves many calls (and threads): models are loaded once per device.
``Pipeline.remove_background(**api_params)`` is one image; ``remove_backgrounds(images,
**api_params)`` runs many images with the same parameters in batches.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from . import loaders
from .errors import BGRError, InvalidInput, RequestFailed, Unauthorized
from .frame import Frame
from .imageio import ImageLimits, load_image, write_atomic
from .request import Request, parse_request
from .result import Result
from .stages.background import ComposeBackground
from .stages.generative import GenerativeBackground
from .stages.base import Stage
from .stages.layout import Layout
from .stages.plates import PlateReplacement
from .stages.refine_sam import SamRefine
from .stages.shadow import Shadow
from .stages.segment import VehicleMatte
from .stages.windows import WindowCorrection

__all__ = ["Pipeline"]

log = logging.getLogger("bgr_core")

KEYS_ENV_VAR = "BGR_API_KEYS"


def _to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float32 in [0, 1] on `device` (uint8 travels, float is made there)."""
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).to(device).permute(2, 0, 1).float().div_(255.0)


class Pipeline:
    """Run the vehicle pipeline on a device.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: images per batch through the stages (memory grows with it).
        weights: explicit weight paths by key (``{"u2netp": "/path/u2netp.safetensors"}``);
            others resolve as `bgr_core.weights` documents.
        limits: input limits (pixels, bytes, network); `allow_network` / `allow_private`
            override the corresponding fields.
        api_keys: when given (or set in ``$BGR_API_KEYS``, comma-separated), each request
            must carry one of them as ``key``.
        output_dir: when set, each result is written there and `output_url` is its
            ``file://`` URI.
        decontaminate: remove the old background's colour from the vehicle's soft edge.
    """

    def __init__(
        self,
        device: str | torch.device = "auto",
        *,
        batch_size: int = 4,
        weights: Mapping[str, str | os.PathLike] | None = None,
        limits: ImageLimits | None = None,
        allow_network: bool | None = None,
        allow_private: bool | None = None,
        api_keys: Sequence[str] | None = None,
        output_dir: str | os.PathLike | None = None,
        decontaminate: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1 but is {batch_size}")
        self.device = loaders.resolve_device(device)
        self.batch_size = int(batch_size)
        self.weights = dict(weights or {})
        limits = limits or ImageLimits()
        overrides = {"allow_network": allow_network, "allow_private": allow_private}
        self.limits = ImageLimits(
            **{**limits.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        )
        if api_keys is None and os.environ.get(KEYS_ENV_VAR):
            api_keys = [k.strip() for k in os.environ[KEYS_ENV_VAR].split(",") if k.strip()]
        self.api_keys = tuple(api_keys or ())
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.decontaminate = decontaminate
        self._lock = threading.Lock()
        self._segment: VehicleMatte | None = None
        self._sam: SamRefine | None = None

    def __repr__(self) -> str:
        return f"Pipeline(device='{self.device}', batch_size={self.batch_size})"

    # -- components -------------------------------------------------------------------

    @property
    def segment(self) -> VehicleMatte:
        """The vehicle matte stage (U2NetP loaded once, on this pipeline's device)."""
        with self._lock:
            if self._segment is None:
                net = loaders.load_u2netp(self.device, self.weights.get("u2netp"))
                self._segment = VehicleMatte(net)
            return self._segment

    @property
    def sam_refine(self) -> SamRefine:
        """The Segment Anything refinement stage (checkpoint loaded once, on this device);
        `WeightsNotFound` names the file and where to put it when there is none."""
        with self._lock:
            if self._sam is None:
                self._sam = SamRefine(loaders.load_sam(self.device, self.weights.get("sam")))
            return self._sam

    def sam_configured(self) -> bool:
        """Whether ``refine="auto"`` uses SAM: a checkpoint is found (explicit path,
        ``$BGR_WEIGHTS_DIR`` or ``weights/``) and ``segment-anything`` is installed."""
        return loaders.sam_available(self.weights.get("sam"))

    def stages_for(
        self, request: Request, background: torch.Tensor | None = None, plate: torch.Tensor | None = None
    ) -> list[Stage]:
        """The stages serving `request`, in order: segment, [SAM refinement], windows, plates,
        shadow, layout, background (composed or generated). `background` / `plate` are the decoded custom background and
        replacement plate, (3, H, W) in [0, 1]. Missing optional weights raise
        `WeightsNotFound` (a `request_failed` naming the file and where to put it)."""
        mode = {"white_background": "white", "transparent_background": "transparent", "custom_background": "custom"}
        stages: list[Stage] = [self.segment]
        if request.refine == "sam" or (request.refine == "auto" and self.sam_configured()):
            stages.append(self.sam_refine)  # before the windows and plates: they read alpha and box
        if request.window_correction != "none":
            stages.append(WindowCorrection(request.window_correction))
        if request.plate_replacement != "none":
            if request.plate_replacement == "image" and plate is None:
                raise InvalidInput("`plate_replacement` is 'image' but no plate image was given")
            stages.append(PlateReplacement(request.plate_replacement, plate))
        if request.effect == "shadow":
            stages.append(Shadow(request.shadow_strength, request.shadow_softness))
        stages.append(Layout(request.layout, margin=request.margin, size=request.output_size,
                             aspect=request.aspect_ratio))
        if request.background == "generative_background":
            pipe = loaders.load_sd_inpaint(self.device, self.weights.get("sd_inpaint"))
            stages.append(GenerativeBackground(pipe, prompt=request.background_prompt,
                                               negative_prompt=request.background_negative_prompt, seed=request.seed))
        else:
            stages.append(ComposeBackground(mode[request.background], background, decontaminate=self.decontaminate))
        return stages

    # -- running ------------------------------------------------------------------------

    def frame(self, array: np.ndarray, **meta: Any) -> Frame:
        """A Frame on this pipeline's device from an (H, W, 3) uint8 RGB array."""
        return Frame(image=_to_tensor(array, self.device), meta=dict(meta))

    def run(self, frames: Sequence[Frame], stages: Sequence[Stage]) -> list[Frame]:
        """Run `stages` over `frames` in batches of `batch_size`, order kept.

        Each frame's `timings` gets the milliseconds of every stage (the batch's time
        split evenly over its frames)."""
        out: list[Frame] = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = list(frames[start : start + self.batch_size])
                for stage in stages:
                    start_t = time.perf_counter()
                    batch = stage(batch)
                    per_frame = (time.perf_counter() - start_t) * 1000.0 / len(batch)
                    for frame in batch:  # stages return new frames: stamp those
                        frame.timings[stage.name] = frame.timings.get(stage.name, 0.0) + per_frame
                out.extend(batch)
        return out

    def remove_background(self, **params: Any) -> Result:
        """One image through the pipeline; API errors are returned in the Result, never raised."""
        results = list(self._serve([params]))
        return results[0]

    def remove_backgrounds(self, images: Iterable[Any], **params: Any) -> Iterator[Result]:
        """Many images with the same API parameters, batched; yields one Result per image, in order.

        Each item of `images` is anything ``image_file`` accepts (path, bytes, file
        object, PIL image, array); memory stays bounded by `batch_size`.
        """
        chunk: list[dict[str, Any]] = []
        for image in images:
            chunk.append({**params, "image_file": image})
            if len(chunk) == self.batch_size:
                yield from self._serve(chunk)
                chunk = []
        if chunk:
            yield from self._serve(chunk)

    def _serve(self, param_sets: Sequence[Mapping[str, Any]]) -> Iterator[Result]:
        """Parse, load and run requests that share their non-image parameters."""
        prepared: list[tuple[Request | None, Frame | BGRError]] = []
        for params in param_sets:
            try:
                request = parse_request(params)
                self._authorize(request)
                prepared.append((request, self._load(request)))
            except BGRError as err:
                prepared.append((None, err))
            except Exception as err:  # a decoder or torch failure while loading must not escape
                prepared.append((None, _as_request_failed(err)))
        ready = [(r, f) for r, f in prepared if r is not None]
        done: dict[int, Frame | BGRError] = {}
        if ready:
            request0 = ready[0][0]
            try:
                background = self._load_background(request0)
                stages = self.stages_for(request0, background, self._load_plate(request0))
                frames = self.run([f for _, f in ready], stages)
                done = {id(src): out for (_, src), out in zip(ready, frames)}
            except BGRError as err:
                done = {id(src): err for _, src in ready}
            except Exception as err:  # a model or stage failure must not escape the API
                failure = _as_request_failed(err)
                done = {id(src): failure for _, src in ready}
        for request, item in prepared:
            outcome = done.get(id(item), item)
            yield self._result(request, outcome)

    def _authorize(self, request: Request) -> None:
        if not self.api_keys:
            return
        given = (request.key or "").encode()
        if not any(hmac.compare_digest(given, k.encode()) for k in self.api_keys):
            raise Unauthorized("the `key` is missing or not valid for this service")

    def _load(self, request: Request) -> Frame:
        start = time.perf_counter()
        array = load_image(request.image, request.image_param, self.limits)
        named = request.image_param != "image_base64"
        frame = self.frame(array, source=_source_name(request.image) if named else None)
        frame.timings["decode"] = (time.perf_counter() - start) * 1000.0
        return frame

    def _load_background(self, request: Request) -> torch.Tensor | None:
        if request.background != "custom_background":
            return None
        array = load_image(request.background_source, request.background_param, self.limits)
        return _to_tensor(array, self.device)

    def _load_plate(self, request: Request) -> torch.Tensor | None:
        if request.plate_replacement != "image":
            return None
        array = load_image(request.plate_source, request.plate_param, self.limits)
        return _to_tensor(array, self.device)

    def _result(self, request: Request | None, outcome: Frame | BGRError) -> Result:
        if isinstance(outcome, Frame) and outcome.error is not None:
            outcome = outcome.error if isinstance(outcome.error, BGRError) else _as_request_failed(outcome.error)
        if isinstance(outcome, BGRError):
            return Result(error=outcome.code, error_description=str(outcome))
        assert request is not None
        result = Result(
            frame=outcome,
            extension=request.extension,
            warnings=list(outcome.warnings),
            timings=dict(outcome.timings),
        )
        if self.output_dir is not None:
            try:
                start = time.perf_counter()
                path = self.output_dir / f"{outcome.meta.get('source') or 'bgr-' + uuid.uuid4().hex[:12]}.{request.extension}"
                write_atomic(path, result.encode())
                result.timings["encode"] = (time.perf_counter() - start) * 1000.0
                result.output_url = path.resolve().as_uri()
            except Exception as err:  # a full disk or an encoder failure: this image's error
                reason = getattr(err, "strerror", None) or type(err).__name__
                return Result(error="request_failed", error_description=f"could not write the output ({reason})")
        return result


def _source_name(source: Any) -> str | None:
    """A file stem to name the output after, when the source is a path or file URI."""
    if isinstance(source, os.PathLike):
        return Path(source).stem or None
    if isinstance(source, str) and len(source) < 4096 and not source.startswith("data:"):
        parsed = urllib.parse.urlparse(source)
        path = parsed.path if parsed.scheme in ("file", "http", "https") else source
        stem = Path(urllib.parse.unquote(path)).stem
        return stem or None
    name = getattr(source, "name", None)
    return Path(name).stem if isinstance(name, str) else None


def _as_request_failed(err: BaseException) -> RequestFailed:
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return RequestFailed("out of memory while processing the image; try a smaller batch_size or image")
    if isinstance(err, InvalidInput):
        return err  # type: ignore[return-value]
    log.exception("bgr_core: processing failed", exc_info=err)
    return RequestFailed(f"processing failed ({type(err).__name__})")
