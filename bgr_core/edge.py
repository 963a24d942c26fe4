"""The service edge of `Pipeline`: API keys, turning inputs into tensors (and reducing
the oversized), grouping requests, output names, and errors as the API reports them."""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .errors import BGRError, InvalidInput, RequestFailed
from .functional.full_resolution import area_reduced

__all__ = ["KEYS_ENV_VAR", "api_keys_from", "to_tensor", "group_key", "InputMemo", "at_most", "as_items", "output_name",
           "source_name", "as_request_failed", "IMAGE_SUFFIXES", "BACKGROUND_MAX_PIXELS", "PLATE_MAX_SIDE"]

log = logging.getLogger("bgr_core")


KEYS_ENV_VAR = "BGR_API_KEYS"


def to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float32 in [0, 1] on `device` (uint8 travels, float is made there)."""
    if not array.flags.writeable:
        array = array.copy()
    tensor = torch.from_numpy(array)
    if device.type == "cuda":  # pinned host memory: the copy overlaps with the running models
        return tensor.pin_memory().to(device, non_blocking=True).permute(2, 0, 1).float().div_(255.0)
    return tensor.permute(2, 0, 1).float().div_(255.0)


def api_keys_from(api_keys: Iterable[str] | None) -> tuple[str, ...]:
    """The configured keys: `api_keys`, else ``$BGR_API_KEYS`` (comma-separated), else none.

    Keys that were asked for but come out empty are a configuration error, never
    "authentication off": a single string (it would be taken letter by letter), an empty
    list, a blank key, or a variable that holds only commas and spaces."""
    if api_keys is None:
        env = os.environ.get(KEYS_ENV_VAR)
        if env is None or env == "":
            return ()
        keys = tuple(k.strip() for k in env.split(",") if k.strip())
        if not keys:
            raise ValueError(f"${KEYS_ENV_VAR} is set but holds no key ({env!r}); unset it for no authentication")
        return keys
    if isinstance(api_keys, (str, bytes)):
        raise ValueError("`api_keys` must be a list of keys, e.g. ['secret'], not a single string")
    try:
        keys = tuple(api_keys)
    except TypeError:
        raise ValueError(f"`api_keys` must be a list of keys, not {type(api_keys).__name__}") from None
    if not keys:
        raise ValueError("`api_keys` is empty: pass None (the default) for no authentication")
    for k in keys:
        if not isinstance(k, str) or not k.strip():
            raise ValueError(f"every key in `api_keys` must be a non-empty string, got {k!r}")
    return keys


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


# a custom background is reduced on decode to this many pixels at most (about 4900 x 3270,
# sampled at full resolution behind any output), or to what covers `output_size`
BACKGROUND_MAX_PIXELS = 16_000_000


# a replacement plate is drawn a few hundred pixels wide at most: a larger one is reduced
# on decode (a 7000 x 7000 plate image held 1.8 GB through the stages)
PLATE_MAX_SIDE = 1024


# a request's own images travel in its Frame, not in the stages (and the key is checked
# per request): requests that differ only in these run through the same stages
_PER_REQUEST = ("image_url", "image_base64", "image_file", "key", "background_url", "background_file",
                "custom_background", "plate_base64", "license_plate_input")


def group_key(params: Any) -> tuple:
    """What requests must share to run through the same stages: every parameter but the
    images (photo, custom background, plate) and the key (values that cannot be hashed
    count by identity)."""
    if not isinstance(params, Mapping):
        return ("", id(params))
    items = []
    for name, value in params.items():
        if name in _PER_REQUEST:
            continue
        try:
            hash(value)
        except TypeError:
            value = ("id", id(value))
        items.append((str(name), value))
    return tuple(sorted(items, key=lambda kv: kv[0]))


class InputMemo:
    """The request inputs (custom backgrounds, plates) decoded during one call, by
    source: the background shared by every image of a `remove_backgrounds` call is
    decoded once and its tensor shared by their frames. Thread-safe; an API error is
    kept and raised again for each request naming the same source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple, tuple[Any, BGRError | None]] = {}

    @staticmethod
    def key(*parts: Any) -> tuple:
        """A key from the source and what its decoding depends on: text, bytes, numbers
        and tuples of them by value; anything else (a file object, an array) by identity,
        which holds as long as the call's parameters do."""
        by_value = (str, bytes, int, float, tuple, type(None))
        return tuple(p if isinstance(p, by_value) else ("id", id(p)) for p in parts)

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._done:
                try:
                    self._done[key] = (load(), None)
                except BGRError as err:
                    self._done[key] = (None, err)
            value, err = self._done[key]
        if err is not None:
            raise err
        return value


def at_most(array: np.ndarray, side: int) -> np.ndarray:
    """(H, W, C) uint8 reduced (area average) so that its longer side is at most `side`."""
    return area_reduced(array, side / max(array.shape[:2]))


def as_items(images: Any) -> Iterable[Any]:
    """`remove_backgrounds`' input as an iterable of single images."""
    if isinstance(images, (str, os.PathLike)):
        path = Path(images)
        if path.is_dir():
            return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [images]
    if isinstance(images, (bytes, bytearray, memoryview, np.ndarray)) or hasattr(images, "getbands"):
        return [images]  # one encoded image, array or PIL image, not a sequence of them
    return images


def output_name(source: str | None, extension: str) -> str:
    """A new, unguessable file name for one result: the source's stem (made safe, at most
    48 characters) for the reader, then 96 random bits, so two callers never share a name
    and no caller can guess another's output."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source or "")[:48].strip("._") or "bgr"
    return f"{stem}-{secrets.token_hex(12)}.{extension}"


def source_name(source: Any) -> str | None:
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


def as_request_failed(err: BaseException) -> RequestFailed:
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return RequestFailed("out of memory while processing the image; try a smaller batch_size or image")
    if isinstance(err, InvalidInput):
        return err  # type: ignore[return-value]
    log.exception("bgr_core: processing failed", exc_info=err)
    return RequestFailed(f"processing failed ({type(err).__name__})")
