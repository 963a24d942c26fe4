"""Image input and output: every source kind the API takes, limits, EXIF, encoding.

Everything that reads caller data raises `InvalidInput` (or `RequestFailed` for an
unreachable URL) with a description that names the parameter; no other exception
escapes for bad data.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidInput, RequestFailed

__all__ = [
    "ImageLimits",
    "load_image",
    "decode_bytes",
    "fetch_url",
    "encode_image",
    "write_atomic",
    "SUPPORTED_FORMATS",
]

SUPPORTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
_URL_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied before decoding; every one is configurable on the Pipeline.

    max_pixels: width x height of an input image (checked from the header, before decoding).
    max_bytes: size of an encoded input (file, base64 payload, download).
    timeout_s: network time-out for http(s) URLs.
    max_redirects: http(s) redirects followed, each re-checked.
    allow_network: http(s) URLs are refused unless True.
    allow_private: loopback / private / link-local addresses refused unless True.
    """

    max_pixels: int = 50_000_000
    max_bytes: int = 50 * 1024 * 1024
    timeout_s: float = 15.0
    max_redirects: int = 3
    allow_network: bool = False
    allow_private: bool = False


def load_image(source: Any, param: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode any accepted source into an RGB uint8 array (H, W, 3), EXIF orientation applied.

    `source` is a path (str / PathLike), a ``file://`` or http(s) URL (for ``*_url``
    params), a base64 string (for ``*_base64`` params, with or without a ``data:``
    prefix), bytes, a binary file object, a PIL image or a numpy array (H, W[, 3|4]).
    `param` is the API parameter it came from, used in error messages and to tell
    a base64 string from a path.
    """
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, param, limits)
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, param, limits)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(source), param, limits)
    if hasattr(source, "read"):
        data = source.read(limits.max_bytes + 1)
        if isinstance(data, str):
            raise InvalidInput(f"`{param}` is a text file object; open the file in binary mode ('rb')")
        return decode_bytes(_cap(data, param, limits), param, limits)
    if isinstance(source, os.PathLike):
        return decode_bytes(_read_file(Path(source), param, limits), param, limits)
    if not isinstance(source, str):
        raise InvalidInput(
            f"`{param}` must be a path, URL, base64 string, bytes, file object, PIL image or "
            f"numpy array, not {type(source).__name__}"
        )
    if param.endswith("base64"):
        return decode_bytes(decode_base64(source, param, limits), param, limits)
    if param.endswith("url"):
        return decode_bytes(read_url(source, param, limits), param, limits)
    return decode_bytes(_read_file(Path(source).expanduser(), param, limits), param, limits)


def decode_base64(text: str, param: str, limits: ImageLimits) -> bytes:
    text = text.strip()
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or ";base64" not in head:
            raise InvalidInput(f"`{param}` is a data URI without ';base64,'")
    if len(text) > limits.max_bytes * 4 // 3 + 4:
        raise InvalidInput(f"`{param}` is larger than the limit of {limits.max_bytes} bytes")
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:  # URL-safe alphabet is common in web clients
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        except (binascii.Error, ValueError):
            raise InvalidInput(f"`{param}` is not valid base64") from None


def read_url(url: str, param: str, limits: ImageLimits) -> bytes:
    """Bytes behind a local path, ``file://`` URI or (when allowed) http(s) URL."""
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInput(f"`{param}`: file URIs must be local, got host '{parsed.netloc}'")
        return _read_file(Path(urllib.request.url2pathname(parsed.path)), param, limits)
    if scheme in _URL_SCHEMES:
        return fetch_url(url, param, limits)
    if scheme and len(scheme) > 1:  # "C:\\..." has a one-letter scheme
        raise InvalidInput(f"`{param}`: scheme '{scheme}' is not supported; use http(s), file:// or a path")
    return _read_file(Path(url).expanduser(), param, limits)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, param: str, limits: ImageLimits):
        self.param, self.limits = param, limits
        self.count = 0

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        self.count += 1
        if self.count > self.limits.max_redirects:
            raise RequestFailed(f"`{self.param}`: more than {self.limits.max_redirects} redirects")
        _check_url_target(newurl, self.param, self.limits)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_url_target(url: str, param: str, limits: ImageLimits) -> None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme.lower() not in _URL_SCHEMES:
        raise InvalidInput(f"`{param}`: only http(s) URLs can be fetched, not '{parsed.scheme}'")
    host = parsed.hostname
    if not host:
        raise InvalidInput(f"`{param}`: URL has no host")
    if limits.allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, parsed.port or 80, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as err:
        raise RequestFailed(f"`{param}`: cannot resolve host '{host}' ({err})") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if not addr.is_global or addr.is_multicast:
            raise InvalidInput(
                f"`{param}`: host '{host}' resolves to a private, loopback or link-local address, "
                "which is refused (allow_private=True permits it)"
            )


def fetch_url(url: str, param: str, limits: ImageLimits) -> bytes:
    """Download an http(s) URL with a time-out, a byte cap and checked redirects."""
    if not limits.allow_network:
        raise InvalidInput(
            f"`{param}`: http(s) URLs are refused because network access is off "
            "(Pipeline(allow_network=True) turns it on)"
        )
    _check_url_target(url, param, limits)
    opener = urllib.request.build_opener(_CheckedRedirects(param, limits))
    request = urllib.request.Request(url, headers={"User-Agent": "bgr_core"})
    try:
        with opener.open(request, timeout=limits.timeout_s) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limits.max_bytes:
                raise InvalidInput(f"`{param}`: download is larger than {limits.max_bytes} bytes")
            return _cap(response.read(limits.max_bytes + 1), param, limits)
    except urllib.error.HTTPError as err:
        raise RequestFailed(f"`{param}`: the server answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise RequestFailed(f"`{param}`: URL not reachable ({reason})") from None


def _read_file(path: Path, param: str, limits: ImageLimits) -> bytes:
    try:
        if not path.is_file():
            raise InvalidInput(f"`{param}`: no such file '{path}'")
        if path.stat().st_size > limits.max_bytes:
            raise InvalidInput(f"`{param}`: file is larger than {limits.max_bytes} bytes")
        return path.read_bytes()
    except OSError as err:
        raise InvalidInput(f"`{param}`: cannot read '{path}' ({err.strerror})") from None


def _cap(data: bytes, param: str, limits: ImageLimits) -> bytes:
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"`{param}` is larger than the limit of {limits.max_bytes} bytes")
    return data


def decode_bytes(data: bytes, param: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode encoded jpg / png / webp bytes, refusing oversized images before decoding."""
    if not data:
        raise InvalidInput(f"`{param}` is empty")
    _cap(data, param, limits)
    try:
        with warnings.catch_warnings():
            # our own pixel limit is checked from the header below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format
            if fmt not in SUPPORTED_FORMATS:
                raise InvalidInput(
                    f"`{param}`: image format {fmt or 'unknown'} is not supported; use jpg, png or webp"
                )
            _check_pixels(image.size, param, limits)
            return _pil_to_rgb(image, param, limits)
    except InvalidInput:
        raise
    except Image.DecompressionBombError:
        raise InvalidInput(f"`{param}`: image is larger than the limit of {limits.max_pixels} pixels") from None
    except UnidentifiedImageError:
        raise InvalidInput(f"`{param}` is not a decodable image (jpg, png or webp expected)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError) as err:
        raise InvalidInput(f"`{param}`: the image is corrupt or truncated ({type(err).__name__})") from None


def _check_pixels(size: tuple[int, int], param: str, limits: ImageLimits) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise InvalidInput(f"`{param}`: image has no pixels ({w}x{h})")
    if w * h > limits.max_pixels:
        raise InvalidInput(
            f"`{param}`: image is {w}x{h} = {w * h} pixels, over the limit of {limits.max_pixels}"
        )


def _pil_to_rgb(image: Image.Image, param: str, limits: ImageLimits) -> np.ndarray:
    _check_pixels(image.size, param, limits)
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        else:
            image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _array_to_rgb(array: np.ndarray, param: str, limits: ImageLimits) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None].repeat(3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InvalidInput(f"`{param}`: array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    _check_pixels((array.shape[1], array.shape[0]), param, limits)
    if array.shape[2] == 1:
        array = array.repeat(3, axis=2)
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise InvalidInput(f"`{param}`: array dtype must be uint8 or float in [0, 1], got {array.dtype}")
        if not np.isfinite(array).all():
            raise InvalidInput(f"`{param}`: array has NaN or infinite values")
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if array.shape[2] == 4:
        a = array[..., 3:4].astype(np.float32) / 255.0
        array = (array[..., :3] * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(array)


def encode_image(array: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    """Encode (H, W, 3|4) uint8 as ``png``, ``jpg`` or ``webp`` bytes (jpg drops alpha)."""
    fmt = fmt.lower()
    mode = "RGBA" if array.shape[2] == 4 else "RGB"
    image = Image.fromarray(array, mode)
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, "PNG", compress_level=3)
    elif fmt in ("jpg", "jpeg"):
        image.convert("RGB").save(buf, "JPEG", quality=quality, subsampling=0)
    elif fmt == "webp":
        image.save(buf, "WEBP", quality=quality, lossless=False)
    else:
        raise InvalidInput(f"`output_format` must be one of png, jpg, webp but is '{fmt}'")
    return buf.getvalue()


def write_atomic(path: Path, data: bytes, overwrite: bool = True) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, then rename.

    Nothing half-written is ever left at `path`. With ``overwrite=False`` an existing
    file raises `FileExistsError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"'{path}' exists (pass overwrite=True to replace it)")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if overwrite:
            os.replace(tmp, path)
        else:  # link fails if someone created `path` meanwhile: never clobber
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
