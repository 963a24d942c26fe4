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
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from . import loaders, memory
from .edge import (BACKGROUND_MAX_PIXELS, PLATE_MAX_SIDE, InputMemo, api_keys_from, as_items, as_request_failed, at_most,
                   group_key, output_name, source_name, to_tensor)
from .errors import BGRError, RequestFailed, Unauthorized
from .frame import Frame
from .functional.full_resolution import WORK_PIXELS, area_reduced, work_scale
from .imageio import ImageLimits, check_output_size, load_image, write_atomic
from .request import Request, parse_request
from .recipe import build_stages
from .result import Result
from .runner import run_stages, stream_batches
from .stages.base import Stage
from .stages.layout import canvas_bound, parse_aspect
from .stages.refine_sam import SamRefine
from .stages.segment import VehicleMatte

__all__ = ["Pipeline"]

log = logging.getLogger("bgr_core")

# Pipeline(cpu_dtype=...) -> VehicleMatte(cpu_amp_dtype=...)
CPU_DTYPES = {"auto": "auto", "float32": None, "bfloat16": torch.bfloat16}


class Pipeline:
    """Run the vehicle pipeline on a device.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. A
            CUDA device on a machine without CUDA is not a crash: every request answers
            ``request_failed`` ("CUDA is not available"), `unavailable` holds that error.
        batch_size: images per batch through the stages (memory grows with it).
        weights: explicit weight paths by key (``{"u2netp_vehicle_half": "/path/net.safetensors"}``);
            others resolve as `bgr_core.weights` documents.
        matte_model: the matte net, a name of `bgr_core.loaders.MATTE_MODELS`:
            ``"u2netp_vehicle_half"`` (default: the vehicle net distilled, its last
            decoder block at half size: the same cut at 1.5-2x the speed),
            ``"u2netp_vehicle"`` (U2NetP trained on vehicle masks, its teacher) or
            ``"u2netp"`` (the generic salient-object net it started from).
        limits: input limits (pixels, bytes, network, local files); `allow_network` /
            `allow_private` / `allow_files` override the corresponding fields
            (`allow_files=False` for anything that forwards web parameters: paths and
            ``file://`` URLs in them are then refused).
        api_keys: when given (or set in ``$BGR_API_KEYS``, comma-separated), each request
            must carry one of them as ``key``, checked before anything else in it. A list
            of non-empty strings; a single string, an empty list, a blank key or a variable
            without a key raise `ValueError` (never "no authentication").
        output_dir: when set, each result is written there and `output_url` is its
            ``file://`` URI.
        decontaminate: remove the old background's colour from the vehicle's soft edge.
        fast: the matte's preset. True (default): `VehicleMatte.fast`, no mirror
            test-time augmentation, crop pass only for small vehicles, the net at 224 with
            a recheck at 320 where it is unsure: the net runs about once per photo. With
            the vehicle net this is as good as the thorough preset on held-out photos
            (README, Quality). False: `VehicleMatte`'s thorough preset (net at 320 on the
            photo and its mirror image, a crop pass around most vehicles: 2-4 runs).
        refine_edges: run the vehicle matte's edge refiner
            (``weights/edge_refiner.safetensors``, `bgr_core.models.edge_refiner`): the
            alpha on a few pixels around the outline is re-estimated from the photo, so
            the cut follows the car's own edge (README, Quality). False: the guided
            upsampling's edge alone.
        workers: threads that decode inputs and encode outputs in `remove_backgrounds`
            while the models run (0: everything on the calling thread).
        net_size: side of U2NetP's square input (None: 320, as trained, or the fast
            preset's 224 with its recheck at 320); smaller is faster (224: half the
            pixels) at a cost on studio photos, see `VehicleMatte.fast`. Given, it
            replaces the preset's size and its recheck.
        streams: batches `remove_backgrounds` runs through the stages at once, each on
            its own thread (None: 2 on the CPU, where the net alone leaves cores idle and
            the per-image post-processing is single-threaded, 1 on CUDA). Results and
            their order are the same for any value.
        cpu_dtype: the matte net's precision on the CPU: ``"auto"`` (bfloat16 autocast
            where the CPU has it natively, Intel AMX or AVX512-BF16: about 2.5x faster, the
            held-out figures unchanged within 0.001; float32 elsewhere), ``"float32"`` or
            ``"bfloat16"``. CUDA always runs the net in float16 autocast.
        keep_freed_memory: on the CPU, call `bgr_core.memory.keep_freed_memory` (glibc
            keeps freed large blocks for reuse instead of unmapping them after every
            layer: the net runs about 1.5x faster; process-wide; the process then keeps
            its peak memory). Ignored on CUDA, a no-op off glibc.
        components: swappable parts by name, used instead of the ones the pipeline would
            build (as diffusers pipelines take theirs): ``"segment"`` (a stage like
            `VehicleMatte`: frames in, frames with ``alpha`` and ``box`` out), ``"sam"``
            (a stage like `SamRefine`; given, ``refine="auto"`` uses it), ``"plate_detector"``
            (a `bgr_core.stages.plates.PlateDetector`) and ``"inpainter"`` (a diffusers
            inpainting pipeline for ``generative_background``).
        work_pixels: the working resolution (default
            `bgr_core.functional.full_resolution.WORK_PIXELS`, 4 MP). A photo or output
            canvas larger than this is worked on at a reduced copy of about this many
            pixels (matte, glass, plates, layout, shadow); only the final composite is made
            at full size, band by band, from the full-resolution photo (the edge follows
            the full photo by guided upsampling of the matte). Memory then stays about that
            of a 4 MP photo plus the output buffer, whatever the photo's size. None: every
            stage at full size (memory grows with the photo: about 8 GB at 50 MP).

    A CUDA out-of-memory error halves the batch and retries it; the smaller batch is
    kept for the rest of the pipeline's life (`batch_size` stays as asked,
    `effective_batch_size` says what runs).
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
        allow_files: bool | None = None,
        api_keys: Iterable[str] | None = None,
        output_dir: str | os.PathLike | None = None,
        decontaminate: bool = True,
        fast: bool = True,
        refine_edges: bool = True,
        workers: int = 2,
        streams: int | None = None,
        net_size: int | None = None,
        keep_freed_memory: bool = True,
        matte_model: str = loaders.DEFAULT_MATTE_MODEL,
        cpu_dtype: str = "auto",
        work_pixels: int | None = WORK_PIXELS,
        components: Mapping[str, Any] | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1 but is {batch_size}")
        try:
            self.device = loaders.resolve_device(device)
            self.unavailable: BGRError | None = None
        except RequestFailed as err:  # "cuda" without CUDA: every request answers with it
            self.device = torch.device(device)
            self.unavailable = err
        if keep_freed_memory and self.device.type == "cpu":
            memory.keep_freed_memory()
        self.batch_size = int(batch_size)
        self.weights = dict(weights or {})
        limits = limits or ImageLimits()
        overrides = {"allow_network": allow_network, "allow_private": allow_private, "allow_files": allow_files}
        self.limits = ImageLimits(
            **{**limits.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        )
        self.api_keys = api_keys_from(api_keys)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.decontaminate = decontaminate
        self.fast = bool(fast)
        self.refine_edges = bool(refine_edges)
        self.workers = max(0, int(workers))
        if streams is not None and streams < 1:
            raise ValueError(f"`streams` must be >= 1 but is {streams}")
        self.streams = int(streams) if streams is not None else (2 if self.device.type == "cpu" else 1)
        if net_size is not None and not 64 <= net_size <= 1024:
            raise ValueError(f"`net_size` must be between 64 and 1024 but is {net_size}")
        self.net_size = int(net_size) if net_size is not None else None
        if matte_model not in loaders.MATTE_MODELS:
            raise ValueError(f"`matte_model` must be one of {', '.join(map(repr, loaders.MATTE_MODELS))} but is {matte_model!r}")
        self.matte_model = matte_model
        if cpu_dtype not in CPU_DTYPES:
            raise ValueError(f"`cpu_dtype` must be one of {', '.join(map(repr, CPU_DTYPES))} but is {cpu_dtype!r}")
        self.cpu_dtype = cpu_dtype
        if work_pixels is not None and (isinstance(work_pixels, bool) or int(work_pixels) < 10_000):
            raise ValueError(f"`work_pixels` must be None or >= 10000 but is {work_pixels}")
        self.work_pixels = int(work_pixels) if work_pixels is not None else None
        self.effective_batch_size = self.batch_size
        self._lock = threading.Lock()
        components = dict(components or {})
        unknown = sorted(set(components) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown component(s) {', '.join(map(repr, unknown))}; known: {', '.join(COMPONENTS)}")
        self.components = components
        self._segment: VehicleMatte | None = components.get("segment")
        self._sam: SamRefine | None = components.get("sam")

    def __repr__(self) -> str:
        fast = "" if self.fast else ", fast=False"
        return f"Pipeline(device='{self.device}', batch_size={self.batch_size}{fast})"

    # -- components -------------------------------------------------------------------

    @property
    def segment(self) -> VehicleMatte:
        """The vehicle matte stage (U2NetP loaded once, on this pipeline's device)."""
        with self._lock:
            if self._segment is None:
                net = loaders.load_matte_net(self.matte_model, self.device, self.weights.get(self.matte_model))
                options = {} if self.net_size is None else {"net_size": self.net_size, "recheck_size": None}
                options["cpu_amp_dtype"] = CPU_DTYPES[self.cpu_dtype]
                if self.refine_edges:
                    options["edge_refiner"] = loaders.load_edge_refiner(self.device, self.weights.get("edge_refiner"))
                if self.fast:  # the thorough preset averages flipped passes: no confidence test there
                    options["min_confidence"] = loaders.load_matte_confidence(
                        self.matte_model, self.weights.get("matte_confidence"))
                self._segment = VehicleMatte.fast(net, **options) if self.fast else VehicleMatte(net, **options)
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
        return "sam" in self.components or loaders.sam_available(self.weights.get("sam"))

    def stages_for(self, request: Request) -> list[Stage]:
        """The stages serving `request` (`bgr_core.recipe.build_stages`) with this
        pipeline's components; they serve every request with the same non-image
        parameters (the request's custom background and plate travel in its Frame).
        Missing optional weights raise `WeightsNotFound` (a `request_failed` naming the
        file and where to put it)."""
        return build_stages(
            request,
            segment=self.segment,
            sam=lambda: self.sam_refine,
            sam_available=self.sam_configured,
            plate_detector=self.components.get("plate_detector"),
            inpainter=lambda: self.components.get("inpainter")
            or loaders.load_sd_inpaint(self.device, self.weights.get("sd_inpaint")),
            decontaminate=self.decontaminate,
        )

    # -- running ------------------------------------------------------------------------

    def frame(self, array: np.ndarray, **meta: Any) -> Frame:
        """A Frame on this pipeline's device from an (H, W, 3) uint8 RGB array (``image``
        and ``photo`` the same tensor)."""
        image = to_tensor(array, self.device)
        return Frame(image=image, photo=image, meta=dict(meta))

    def run(self, frames: Sequence[Frame], stages: Sequence[Stage]) -> list[Frame]:
        """Run `stages` over `frames` in batches of `effective_batch_size`, order kept
        (`bgr_core.runner.run_stages`): each frame's `timings` gets the milliseconds of
        every stage; a CUDA out-of-memory error on a batch of more than one frame halves
        the batch size (for this and later calls) and retries; on one frame it is raised."""

        def shrink(size: int) -> None:
            # min: batches running on other streams only ever lower it
            self.effective_batch_size = min(self.effective_batch_size, size)

        return run_stages(frames, stages, lambda: self.effective_batch_size, shrink)

    def remove_background(self, **params: Any) -> Result:
        """One image through the pipeline; API errors are returned in the Result, never raised."""
        results = list(self._serve([params]))
        return results[0]

    def remove_backgrounds(self, images: Iterable[Any], **params: Any) -> Iterator[Result]:
        """Many images with the same API parameters, batched; yields one Result per image, in order.

        Each item of `images` is anything ``image_file`` accepts (path, bytes, file
        object, PIL image, array). A folder (str or path) stands for its jpg / jpeg / png
        / webp files, sorted by name (not recursive); a single path, bytes, PIL image or
        array is one image. With `workers` > 0 the next batch is decoded and the
        previous one encoded (when `output_dir` is set) on worker threads while the
        models run on this one. Memory stays bounded by the batch size (about three
        batches in flight: decoding, running, encoding), never by the number of images.
        Closing the iterator early (``close()``, or dropping it) cancels what has not
        started; batches already running end on their own threads, unwaited.
        """
        memo = InputMemo()  # the custom background and plate: decoded once for all images
        shared: dict[str, Any] = {}  # the stages: built once for all batches
        yield from stream_batches(
            ({**params, "image_file": image} for image in as_items(images)),
            prepare=lambda item: self._prepare(item, memo),
            run=lambda prepared: self._process(prepared, shared),
            finish=lambda outcome: self._result(*outcome),
            batch_size=self.batch_size,
            workers=self.workers,
            streams=self.streams,
            finish_on_workers=self.output_dir is not None,
        )

    def remove_background_many(self, param_sets: Sequence[Mapping[str, Any]]) -> list[Result]:
        """Independent requests (each its own parameters, as `remove_background` takes
        them), one Result each, in order. Requests that share their non-image parameters
        run through the stages together, in batches; the others run group by group. The
        server's batcher gathers concurrent requests into one such call."""
        groups: dict[tuple, list[int]] = {}
        for i, params in enumerate(param_sets):
            groups.setdefault(group_key(params), []).append(i)
        results: list[Result | None] = [None] * len(param_sets)
        for indices in groups.values():
            for i, result in zip(indices, self._serve([param_sets[i] for i in indices])):
                results[i] = result
        return results  # type: ignore[return-value]

    def _prepare(self, params: Mapping[str, Any], memo: InputMemo) -> tuple[Request | None, Frame | BGRError]:
        """Authorise, parse and decode one request (thread-safe): the key is checked before
        anything else, so a caller without one learns nothing about the parameters.
        `memo` holds the custom backgrounds and plates this call has decoded."""
        try:
            self._authorize(params)
            if self.unavailable is not None:
                raise self.unavailable
            request = parse_request(params)
            return request, self._load(request, memo)
        except BGRError as err:
            return None, err
        except Exception as err:  # a decoder or torch failure while loading must not escape
            return None, as_request_failed(err)

    def _serve(self, param_sets: Sequence[Mapping[str, Any]]) -> Iterator[Result]:
        """Parse, load and run requests that share their non-image parameters."""
        memo = InputMemo()
        prepared = [self._prepare(params, memo) for params in param_sets]
        for request, outcome in self._process(prepared, {}):
            yield self._result(request, outcome)

    def _process(
        self, prepared: Sequence[tuple[Request | None, Frame | BGRError]], shared: dict[str, Any]
    ) -> list[tuple[Request | None, Frame | BGRError]]:
        """Run the decoded frames of `prepared` (requests sharing their non-image
        parameters) through the stages; `shared` caches the stages between calls."""
        ready = [(r, f) for r, f in prepared if r is not None]
        done: dict[int, Frame | BGRError] = {}
        if ready:
            request0 = ready[0][0]
            try:
                # batches on other streams wait here for the one that builds the stages
                with shared.setdefault("lock", threading.Lock()):
                    if "stages" not in shared:
                        shared["stages"] = self.stages_for(request0)
                frames = self.run([f for _, f in ready], shared["stages"])
                done = {id(src): out for (_, src), out in zip(ready, frames)}
            except BGRError as err:
                done = {id(src): err for _, src in ready}
            except Exception as err:  # a model or stage failure must not escape the API
                failure = as_request_failed(err)
                done = {id(src): failure for _, src in ready}
        return [(request, done.get(id(item), item)) for request, item in prepared]

    def _authorize(self, params: Mapping[str, Any]) -> None:
        if not self.api_keys:
            return
        key = params.get("key") if isinstance(params, Mapping) else None
        # any text, even invalid UTF-8, is compared in constant time; anything else fails
        given = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else b""
        valid = False
        for k in self.api_keys:  # no early exit: every key is compared
            valid |= hmac.compare_digest(given, k.encode("utf-8", "surrogatepass"))
        if not valid:
            raise Unauthorized("the `key` is missing or not valid for this service")

    def _load(self, request: Request, memo: InputMemo) -> Frame:
        start = time.perf_counter()
        array = load_image(request.image, request.image_param, self.limits)
        canvas_w, canvas_h = self._check_output(request, array.shape[:2])
        named = request.image_param != "image_base64"
        name = source_name(request.image) if named else None
        cap = self.work_pixels
        h, w = array.shape[:2]
        if cap is None or max(h * w, canvas_w * canvas_h) <= cap:
            frame = self.frame(array, source=name)
        else:  # the stages run on a reduced copy; only the output is made at full size
            zoom = work_scale(h * w, cap)
            work = area_reduced(array, zoom)
            frame = self.frame(work, source=name, work_scale=zoom, work_pixels=cap, source_size=(h, w),
                               work_size=tuple(work.shape[:2]), full_size=(h, w))
            full = array if array.flags.writeable else array.copy()
            frame = frame.replace(source=torch.from_numpy(full).permute(2, 0, 1))
        if request.background == "custom_background":
            key = memo.key("background", request.background_param, request.background_source, request.output_size)
            frame.background_image = memo.get(key, lambda: self._load_background(request))
        if request.plate_replacement == "image":
            key = memo.key("plate", request.plate_param, request.plate_source)
            frame.plate_image = memo.get(key, lambda: self._load_plate(request))
        frame.timings["decode"] = (time.perf_counter() - start) * 1000.0
        return frame

    def _check_output(self, request: Request, image_size: tuple[int, int]) -> tuple[int, int]:
        """An output the limits or its format cannot hold is refused before any work;
        (width, height) the canvas can reach otherwise."""
        why = " and ".join(f"`{k}`" for k, v in (("output_size", request.output_size),
                                                  ("aspect_ratio", request.aspect_ratio)) if v) or "the image"
        aspect = parse_aspect(request.aspect_ratio) if request.aspect_ratio else None
        w, h = canvas_bound(request.layout, image_size, request.output_size, aspect)
        check_output_size(w, h, request.extension, self.limits, why)
        return w, h

    def _load_background(self, request: Request) -> torch.Tensor:
        array = load_image(request.background_source, request.background_param, self.limits)
        h, w = array.shape[:2]
        scale = work_scale(h * w, BACKGROUND_MAX_PIXELS)
        if request.output_size is not None:  # the canvas is known: no more than covers it
            out_w, out_h = request.output_size
            scale = min(scale, max(out_h / h, out_w / w))
        return to_tensor(area_reduced(array, scale), self.device)

    def _load_plate(self, request: Request) -> torch.Tensor:
        array = load_image(request.plate_source, request.plate_param, self.limits)
        return to_tensor(at_most(array, PLATE_MAX_SIDE), self.device)

    def _result(self, request: Request | None, outcome: Frame | BGRError) -> Result:
        if isinstance(outcome, Frame) and outcome.error is not None:
            outcome = outcome.error if isinstance(outcome.error, BGRError) else as_request_failed(outcome.error)
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
                path = self.output_dir / output_name(outcome.meta.get("source"), request.extension)
                write_atomic(path, result.encode(), overwrite=False)
                result.timings["encode"] = (time.perf_counter() - start) * 1000.0
                result.output_url = path.resolve().as_uri()
            except Exception as err:  # a full disk or an encoder failure: this image's error
                reason = getattr(err, "strerror", None) or type(err).__name__
                return Result(error="request_failed", error_description=f"could not write the output ({reason})")
        return result


COMPONENTS = ("segment", "sam", "plate_detector", "inpainter")


