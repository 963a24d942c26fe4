"""`OutputStore`: the server's encoded outputs, under unguessable names, for a bounded
time and count, in a private temporary folder."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

__all__ = ["OutputStore", "MEDIA_TYPES"]

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_NAME = re.compile(r"[0-9a-f]{32}\.(png|jpg|webp)")


class OutputStore:
    """Keep at most `keep` outputs, each for at most `keep_s` seconds; the oldest go first.

    Names are 128 random bits plus the extension: they cannot be guessed or derived
    from anything a caller sent. Files live in a folder only this user can read
    (`folder`, or a new temporary one removed by `close`).
    """

    def __init__(self, keep: int = 1000, keep_s: float = 3600.0, folder: str | os.PathLike | None = None):
        if keep < 1:
            raise ValueError(f"`keep` must be >= 1 but is {keep}")
        if keep_s <= 0:
            raise ValueError(f"`keep_s` must be > 0 but is {keep_s}")
        self.keep, self.keep_s = int(keep), float(keep_s)
        self._own = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="bgr-outputs-") if folder is None else folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._items: OrderedDict[str, float] = OrderedDict()  # name -> time stored
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, data: bytes, extension: str) -> str:
        """Store `data`; returns its name (``<32 hex>.<ext>``)."""
        if extension not in MEDIA_TYPES:
            raise ValueError(f"unknown output extension {extension!r}")
        name = f"{secrets.token_hex(16)}.{extension}"
        path = self.folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with self._lock:
            self._items[name] = time.monotonic()
            self._evict()
        return name

    def path(self, name: str) -> Path | None:
        """The file of a stored, unexpired output, or None."""
        if not _NAME.fullmatch(name):
            return None
        with self._lock:
            self._evict()
            if name not in self._items:
                return None
        return self.folder / name

    def close(self) -> None:
        with self._lock:
            self._items.clear()
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _evict(self) -> None:
        now = time.monotonic()
        while self._items:
            name, stored = next(iter(self._items.items()))
            if len(self._items) <= self.keep and now - stored <= self.keep_s:
                break
            self._items.popitem(last=False)
            (self.folder / name).unlink(missing_ok=True)
