"""bgr_core on Ray Data (optional extra ``ray``): the same pipeline from a folder or a
bucket to a cluster of GPUs, in Ray Data's pattern for batch inference.

Three steps on a `ray.data.Dataset` of rows ``{"path", "bytes"?, "target"?}``:

1. `decode_batch` (CPU tasks): the bytes (read from ``path`` when the row has none) are
   decoded with the library's limits into raw RGB pixels, or the row gets its
   ``invalid_input`` error;
2. `BackgroundRemover` (a callable class on an actor pool, ``num_gpus`` where there are
   GPUs): one `Pipeline` per actor, loaded once, runs the decoded photos in batches and
   returns the output's raw pixels, or the row's error code and description;
3. `encode_batch` (CPU tasks): the output is encoded (the request's format) and, for
   rows with a ``target``, written there atomically.

An image that fails is a row with ``error`` set, never a failed job; the pipeline is
deterministic, so a retried batch writes the same bytes. `remove_background_dataset`
chains the three; `process_files` runs a list of files to targets (what ``bgr --engine
ray`` does). Raw pixels travel as bytes with their shape (no ragged tensor columns).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import BGRError
from ..imageio import ImageLimits, decode_bytes, encode_image, write_atomic
from ..request import parse_request

__all__ = ["BackgroundRemover", "decode_batch", "encode_batch", "remove_background_dataset", "process_files",
           "RESULT_COLUMNS"]

# the columns of the result dataset
RESULT_COLUMNS = ("path", "output_path", "error", "error_description", "seconds")


def _column(batch: Mapping[str, Any], name: str, n: int) -> list:
    values = batch.get(name)
    return [None] * n if values is None else list(values)


def decode_batch(batch: Mapping[str, Any], limits: ImageLimits | None = None) -> dict[str, list]:
    """CPU step: ``path`` (+ ``bytes``) → raw ``pixels`` (uint8 H*W*3 bytes), ``height``,
    ``width``; a photo that does not decode gets ``error`` / ``error_description``."""
    limits = limits or ImageLimits()
    paths = [str(p) for p in batch["path"]]
    data, targets = _column(batch, "bytes", len(paths)), _column(batch, "target", len(paths))
    out: dict[str, list] = {k: [] for k in ("path", "target", "pixels", "height", "width", "error", "error_description")}
    for path, raw, target in zip(paths, data, targets):
        pixels, h, w, code, text = b"", 0, 0, "", ""
        try:
            blob = bytes(raw) if raw is not None else _read(path, limits)
            array = decode_bytes(blob, "image_file", limits)
            h, w = array.shape[:2]
            pixels = np.ascontiguousarray(array).tobytes()
        except BGRError as err:
            code, text = err.code, str(err)
        except OSError as err:
            code, text = "invalid_input", f"`image_file`: cannot read '{path}' ({err.strerror or type(err).__name__})"
        for key, value in (("path", path), ("target", "" if target is None else str(target)), ("pixels", pixels),
                           ("height", h), ("width", w), ("error", code), ("error_description", text)):
            out[key].append(value)
    return out


def _read(path: str, limits: ImageLimits) -> bytes:
    with open(path, "rb") as fh:  # at most the byte cap (+1: over it is refused by decode)
        return fh.read(limits.max_bytes + 1)


class BackgroundRemover:
    """Actor step: one `Pipeline` per actor (models loaded once) running the decoded
    photos of each batch with the request's `params` (`remove_background`'s, without the
    image). Rows that already carry an error pass through.

    Args:
        params: the API parameters shared by every photo (files as bytes: the actor may
            be on another machine).
        device: the pipeline's device (``"auto"``: the actor's GPU when Ray gave it one).
        batch_size: the pipeline's batch size.
        pipeline_options: further `Pipeline` arguments (``fast``, ``matte_model``, ...).
    """

    def __init__(self, params: Mapping[str, Any] | None = None, device: str = "auto", batch_size: int = 4,
                 **pipeline_options: Any):
        from ..pipeline import Pipeline

        options = {"workers": 0, "streams": 1, "allow_files": False, **pipeline_options}
        self.pipeline = Pipeline(device, batch_size=batch_size, **options)
        self.params = dict(params or {})

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        n = len(batch["path"])
        errors, texts = list(batch["error"]), list(batch["error_description"])
        todo = [i for i in range(n) if not errors[i]]
        images = [np.frombuffer(batch["pixels"][i], np.uint8).reshape(int(batch["height"][i]), int(batch["width"][i]), 3)
                  for i in todo]
        pixels, heights, widths, chans, seconds = [b""] * n, [0] * n, [0] * n, [0] * n, [0.0] * n
        start = time.perf_counter()
        results = self.pipeline.remove_backgrounds(images, **self.params)
        for i, result in zip(todo, results):
            if result.ok:
                array = result.array
                pixels[i] = np.ascontiguousarray(array).tobytes()
                heights[i], widths[i], chans[i] = array.shape
            else:
                errors[i], texts[i] = result.error, result.error_description
        results.close()  # zip stops short of the stream's end: its threads end now, not when collected
        share = (time.perf_counter() - start) / max(1, len(todo))
        for i in todo:
            seconds[i] = share
        return {"path": list(batch["path"]), "target": list(batch["target"]), "pixels": pixels, "height": heights,
                "width": widths, "channels": chans, "error": errors, "error_description": texts, "seconds": seconds}


def encode_batch(batch: Mapping[str, Any], extension: str, overwrite: bool = False) -> dict[str, list]:
    """CPU step: the output pixels encoded as `extension` and written to each row's
    ``target`` (atomically; nothing is written for a row with an error)."""
    out: dict[str, list] = {k: [] for k in RESULT_COLUMNS}
    for i, path in enumerate(batch["path"]):
        code, text, written = str(batch["error"][i]), str(batch["error_description"][i]), ""
        if not code:
            try:
                h, w, c = int(batch["height"][i]), int(batch["width"][i]), int(batch["channels"][i])
                array = np.frombuffer(batch["pixels"][i], np.uint8).reshape(h, w, c)
                data = encode_image(array, extension)
                target = str(batch["target"][i])
                if target:
                    written = str(write_atomic(Path(target), data, overwrite=overwrite))
            except FileExistsError:
                code, text = "request_failed", f"{batch['target'][i]} exists; pass overwrite to replace it"
            except Exception as err:  # a full disk, an encoder failure: this image's error
                code, text = "request_failed", f"could not write the output ({type(err).__name__}: {err})"
        for key, value in (("path", str(path)), ("output_path", written), ("error", code),
                           ("error_description", text), ("seconds", float(batch["seconds"][i]))):
            out[key].append(value)
    return out


def remove_background_dataset(ds, params: Mapping[str, Any] | None = None, *, workers: int = 1,
                              gpus_per_worker: float = 0, cpus_per_worker: float = 1, batch_size: int = 4,
                              device: str = "auto", overwrite: bool = False, limits: ImageLimits | None = None,
                              task_cpus: float = 0.5, **pipeline_options: Any):
    """The dataset of results (`RESULT_COLUMNS`) for a dataset of rows ``{"path",
    "bytes"?, "target"?}`` (e.g. ``ray.data.read_binary_files(src, include_paths=True)``:
    its rows have both). `workers` actors, each with `gpus_per_worker` GPUs (0: on the
    CPU, `cpus_per_worker` cores, fewer where the cluster would otherwise have none left
    for the tasks) and one `Pipeline` of `batch_size`; decoding and encoding run as CPU
    tasks of `task_cpus` cores around them."""
    import ray

    params = dict(params or {})
    params.pop("image_file", None)
    extension = parse_request({**params, "image_file": b"x"}).extension  # checks the parameters first
    # the actors must leave room for the decoding and encoding tasks, or nothing feeds them
    total = float(ray.cluster_resources().get("CPU", 0)) if ray.is_initialized() else 0.0
    if total and int(workers) * cpus_per_worker + task_cpus > total:
        cpus_per_worker = max(0.01, (total - task_cpus) / int(workers))
    # decoding and encoding are CPU tasks of their own (half a core each, so that Ray does
    # not fuse them into the actors: a GPU actor must not wait on JPEG decoding)
    decoded = ds.map_batches(decode_batch, fn_kwargs={"limits": limits}, batch_size=batch_size, batch_format="numpy",
                             num_cpus=task_cpus)
    ran = decoded.map_batches(
        BackgroundRemover,
        fn_constructor_kwargs={"params": params, "device": "cuda" if gpus_per_worker else device,
                               "batch_size": batch_size, **pipeline_options},
        batch_size=batch_size, batch_format="numpy", concurrency=int(workers),
        num_gpus=gpus_per_worker or None, num_cpus=cpus_per_worker,
    )
    return ran.map_batches(encode_batch, fn_kwargs={"extension": extension, "overwrite": overwrite},
                           batch_size=batch_size, batch_format="numpy", num_cpus=task_cpus)


def process_files(sources: Sequence[str | os.PathLike], targets: Sequence[str | os.PathLike],
                  params: Mapping[str, Any] | None = None, *, address: str | None = None, **options: Any) -> list[dict]:
    """Run `sources` to `targets` (same order) on Ray: connects to `address` (a running
    cluster, e.g. ``"auto"`` or ``"ray://head:10001"``) or starts a local Ray. Files in
    `params` (``background_file``, ``plate_base64`` as paths) are read here and sent as
    bytes. Returns one result row per source (`RESULT_COLUMNS`), in the sources' order."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    params = {k: (Path(v).read_bytes() if isinstance(v, os.PathLike) else v) for k, v in dict(params or {}).items()}
    # absolute: the workers need not share the driver's working folder
    rows = [{"path": str(Path(s).resolve()), "target": str(Path(t).resolve())} for s, t in zip(sources, targets)]
    ds = ray.data.from_items(rows)
    results = remove_background_dataset(ds, params, **options).take_all()
    by_path = {r["path"]: r for r in results}
    return [dict(by_path[row["path"]], path=str(src)) for row, src in zip(rows, sources)]
