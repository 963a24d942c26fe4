"""Input limits (`ImageLimits`) and the shortening of caller values in messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ImageLimits", "show"]


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied before decoding; every one is configurable on the Pipeline.

    max_pixels: width x height of an input image (checked from the header, before decoding).
    max_bytes: size of an encoded input (file, base64 payload, download).
    timeout_s: total time allowed for fetching an http(s) URL (connecting, redirects,
        headers and body together); a stalled or trickling server is cut off after it.
    max_redirects: http(s) redirects followed, each re-checked.
    allow_network: http(s) URLs are fetched (True, the default: the web API's first
        input method is a public URL), always through the address guard below; False
        refuses every http(s) URL.
    allow_private: loopback / private / link-local addresses refused unless True; the
        check is made on the address actually connected to (DNS rebinding does not
        get round it), and environment proxies are not used.
    allow_files: local paths and ``file://`` URLs are read (True, right for a library
        call); anything that forwards web parameters turns it off, and then every local
        file is refused with the same words, whether it exists or not.
    """

    max_pixels: int = 50_000_000
    max_bytes: int = 50 * 1024 * 1024
    timeout_s: float = 15.0
    max_redirects: int = 3
    allow_network: bool = True
    allow_private: bool = False
    allow_files: bool = True


def show(value: Any, limit: int = 80, *, quoted: bool = False) -> str:
    """`value` for an error message, shortened: callers may pass megabytes by mistake.
    Text as it is (`quoted`: its repr, as every other value), at most `limit` characters."""
    try:
        text = value if isinstance(value, str) and not quoted else repr(value)
    except Exception:  # a caller's object whose repr fails
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
