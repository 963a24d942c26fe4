"""Image input and output: every source kind the API takes, limits, EXIF, encoding.

Everything that reads caller data raises `InvalidInput` (or `RequestFailed` for an
unreachable URL) with a description that names the parameter; no other exception
escapes for bad data.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidInput
from .fetch import URL_SCHEMES, fetch_url
from .limits import ImageLimits, show as _show

__all__ = [
    "ImageLimits",
    "load_image",
    "decode_bytes",
    "fetch_url",
    "encode_image",
    "write_atomic",
    "SUPPORTED_FORMATS",
    "MAX_SIDE",
    "check_output_size",
]

SUPPORTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# a JPEG that carries more images in its MPF index (camera previews, depth or gain maps)
# opens as MPO: its first frame is the photo
_JPEG_LIKE = ("MPO",)



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
        data = bytes(source)
        if param.endswith("base64") and not _looks_encoded(data):
            try:  # base64 text given as bytes
                text = data.decode("ascii")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                return decode_bytes(decode_base64(text, param, limits), param, limits)
        return decode_bytes(data, param, limits)
    if hasattr(source, "read"):
        try:
            data = source.read(limits.max_bytes + 1)
        except (OSError, ValueError, TypeError) as err:  # closed, unreadable, not a real file
            raise InvalidInput(f"`{param}`: the file object cannot be read ({type(err).__name__})") from None
        if isinstance(data, str):
            raise InvalidInput(f"`{param}` is a text file object; open the file in binary mode ('rb')")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput(f"`{param}`: the file object's read() gave {type(data).__name__}, not bytes")
        return decode_bytes(_cap(bytes(data), param, limits), param, limits)
    if isinstance(source, os.PathLike):
        try:
            path = Path(source)
        except TypeError:
            raise InvalidInput(f"`{param}` is a path-like object that gives no text path") from None
        return decode_bytes(_read_file(path, param, limits), param, limits)
    if not isinstance(source, str):
        raise InvalidInput(
            f"`{param}` must be a path, URL, base64 string, bytes, file object, PIL image or "
            f"numpy array, not {type(source).__name__}"
        )
    if param.endswith("base64"):
        return decode_bytes(decode_base64(source, param, limits), param, limits)
    if param.endswith("url"):
        return decode_bytes(read_url(source, param, limits), param, limits)
    return decode_bytes(_read_file(_local_path(source, param), param, limits), param, limits)


_OTHER_FORMATS = (
    (b"BM", "BMP"), (b"GIF8", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP", "JPEG2000"), (b"\xffO\xffQ", "JPEG2000"), (b"%!PS", "EPS"),
    (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"%PDF", "PDF"),
)
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n", b"RIFF")


def _looks_encoded(data: bytes) -> bool:
    """True when `data` starts like an encoded jpg / png / webp rather than base64 text."""
    return data.startswith(_MAGIC)


def _local_path(text: str, param: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~user/..." for an unknown user
        raise InvalidInput(f"`{param}`: cannot expand the home folder in '{_show(text)}'") from None


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
    try:
        parsed = urllib.parse.urlparse(url)
    except ValueError as err:  # e.g. "http://[::1" (unbalanced bracket)
        raise InvalidInput(f"`{param}` is not a valid URL ({err})") from None
    scheme = parsed.scheme.lower()
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInput(f"`{param}`: file URIs must be local, got host '{_show(parsed.netloc)}'")
        return _read_file(Path(urllib.request.url2pathname(parsed.path)), param, limits)
    if scheme in URL_SCHEMES:
        return fetch_url(url, param, limits)
    if scheme and len(scheme) > 1:  # "C:\\..." has a one-letter scheme
        raise InvalidInput(
            f"`{param}`: scheme '{_show(scheme, 20)}' is not supported; use http(s), file:// or a path"
        )
    return _read_file(_local_path(url, param), param, limits)


def _read_file(path: Path, param: str, limits: ImageLimits) -> bytes:
    if not limits.allow_files:  # one wording: a caller learns nothing about the file system
        raise InvalidInput(f"`{param}`: local files are not accepted here")
    try:
        found = path.is_file()
    except (OSError, ValueError) as err:  # name too long, no permission on a parent, ...
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise InvalidInput(f"`{param}`: cannot read '{_show(str(path))}' ({reason})") from None
    if not found:
        raise InvalidInput(f"`{param}`: no such file '{_show(str(path))}'")
    try:
        with path.open("rb") as fh:  # read at most the limit: the file may be growing
            data = fh.read(limits.max_bytes + 1)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise InvalidInput(f"`{param}`: cannot read '{_show(str(path))}' ({reason})") from None
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"`{param}`: file is larger than {limits.max_bytes} bytes")
    return data


def _cap(data: bytes, param: str, limits: ImageLimits) -> bytes:
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"`{param}` is larger than the limit of {limits.max_bytes} bytes")
    return data


def decode_bytes(data: bytes, param: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode encoded jpg / png / webp bytes, refusing oversized images before decoding."""
    if not data:
        raise InvalidInput(f"`{param}` is empty")
    _cap(data, param, limits)
    _check_jpeg_scans(data, param)
    try:
        with warnings.catch_warnings():
            # our own pixel limit is checked from the header below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=tuple(SUPPORTED_FORMATS))  # JPEG's opener gives MPO
            fmt = image.format
            if fmt in _JPEG_LIKE:
                image.seek(0)
            elif fmt not in SUPPORTED_FORMATS:
                raise InvalidInput(
                    f"`{param}`: image format {fmt or 'unknown'} is not supported; use jpg, png or webp"
                )
            _check_pixels(image.size, param, limits)
            return _pil_convert(image)
    except InvalidInput:
        raise
    except Image.DecompressionBombError:
        raise InvalidInput(f"`{param}`: image is larger than the limit of {limits.max_pixels} pixels") from None
    except UnidentifiedImageError:
        # only jpg / png / webp decoders ever see caller bytes; other formats are named
        other = next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)
        if other:
            raise InvalidInput(
                f"`{param}`: image format {other} is not supported; use jpg, png or webp"
            ) from None
        raise InvalidInput(f"`{param}` is not a decodable image (jpg, png or webp expected)") from None
    except Exception as err:  # any decoder failure on caller bytes is bad input, never a crash
        raise InvalidInput(f"`{param}`: the image is corrupt or truncated ({type(err).__name__})") from None


# A progressive JPEG has about 10 scans; each one is a full pass of the decoder over the
# image, so a small file with thousands of duplicated scans takes minutes to decode.
MAX_JPEG_SCANS = 100


def _check_jpeg_scans(data: bytes, param: str) -> None:
    """Refuse JPEG data with more than `MAX_JPEG_SCANS` start-of-scan markers (0xFFDA),
    before decoding. The marker cannot occur inside entropy-coded data (0xFF is stuffed
    there), so counting it is an upper bound of the scans, embedded thumbnails included."""
    if not data.startswith(b"\xff\xd8"):
        return
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise InvalidInput(
            f"`{param}`: the JPEG has {scans} scans, more than the {MAX_JPEG_SCANS} a photo needs; refused "
            "(it would take minutes to decode)"
        )


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
    try:
        return _pil_convert(image)
    except Exception as err:  # truncated data behind a lazily loaded image, odd modes
        raise InvalidInput(
            f"`{param}`: the image is corrupt or truncated, or its mode '{image.mode}' cannot be "
            f"converted to RGB ({type(err).__name__})"
        ) from None


def _pil_convert(image: Image.Image) -> np.ndarray:
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16 bits: the high byte
        image = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8))
    elif image.mode == "I":
        image = Image.fromarray(np.clip(np.asarray(image) / 256, 0, 255).astype(np.uint8))
    elif image.mode == "La":  # premultiplied: back to straight alpha
        la = np.asarray(image).astype(np.float32)
        grey = np.where(la[..., 1] > 0, la[..., 0] * 255 / np.maximum(la[..., 1], 1), 0)
        image = Image.fromarray(np.stack([np.clip(grey, 0, 255), la[..., 1]], -1).astype(np.uint8), "LA")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.nan_to_num(np.asarray(image)), 0, 255).astype(np.uint8))
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        else:
            image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _array_to_rgb(array: np.ndarray, param: str, limits: ImageLimits) -> np.ndarray:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InvalidInput(f"`{param}`: array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    _check_pixels((array.shape[1], array.shape[0]), param, limits)  # before any copy
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise InvalidInput(f"`{param}`: array dtype must be uint8 or float in [0, 1], got {array.dtype}")
        if not np.isfinite(array).all():
            raise InvalidInput(f"`{param}`: array has NaN or infinite values")
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 1:
        array = array.repeat(3, axis=2)
    if array.shape[2] == 4:
        a = array[..., 3:4].astype(np.float32) / 255.0
        array = (array[..., :3] * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(array)


# the largest side each output format can hold
MAX_SIDE = {"png": 2**31 - 1, "jpg": 65_500, "jpeg": 65_500, "webp": 16_383}


def check_output_size(width: int, height: int, fmt: str, limits: ImageLimits, why: str) -> None:
    """`InvalidInput` before any work when an output of `width` x `height` in `fmt` is
    over the pixel limit or more than the format can hold; `why` names the parameters
    that make it that large."""
    if width * height > limits.max_pixels:
        raise InvalidInput(
            f"{why} makes a {width}x{height} output = {width * height} pixels, over the limit of {limits.max_pixels}"
        )
    side = MAX_SIDE.get(fmt.lower(), MAX_SIDE["png"])
    if max(width, height) > side:
        raise InvalidInput(f"{why} makes a {width}x{height} output, more than {fmt} can hold ({side} pixels a side)")


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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp gives 0600)


def write_atomic(path: Path, data: bytes, overwrite: bool = True) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, then rename.

    Nothing half-written is ever left at `path` (nor a temporary file, when writing
    fails). With ``overwrite=False`` an existing file raises `FileExistsError`, even
    when another process creates it meanwhile.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"'{path}' exists (pass overwrite=True to replace it)")
    # the temporary name stays short: a legal 255-byte name plus a prefix and suffix is not
    short = path.name.encode("utf-8", "surrogateescape")[:64].decode("utf-8", "ignore")
    fd, tmp = tempfile.mkstemp(prefix=f".{short}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, _FILE_MODE)
        except OSError:
            pass
        if overwrite:
            os.replace(tmp, path)
        else:  # link fails if someone created `path` meanwhile: never clobber
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"'{path}' exists (pass overwrite=True to replace it)") from None
            except OSError as err:  # file systems without hard links
                if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                if path.exists():
                    raise FileExistsError(f"'{path}' exists (pass overwrite=True to replace it)") from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
