"""`remove_background(**api_params)`: the web API's call, served locally."""

from __future__ import annotations

import threading
from typing import Any

from .errors import BGRError
from .pipeline import Pipeline
from .result import Result

__all__ = ["remove_background", "default_pipeline"]

_DEFAULT: dict[str, Pipeline] = {}
_LOCK = threading.Lock()


def default_pipeline(device: str = "auto") -> Pipeline:
    """The shared Pipeline for `device`, created on first use (models load once)."""
    with _LOCK:
        if device not in _DEFAULT:
            _DEFAULT[device] = Pipeline(device)
        return _DEFAULT[device]


def remove_background(*, pipeline: Pipeline | None = None, device: str = "auto", **api_params: Any) -> Result:
    """Cut the vehicle out of a photo and put it on a new background.

    Takes the web API's parameters (see DESIGN.md / README): exactly one of
    ``image_url``, ``image_base64``, ``image_file``; ``background``, ``background_url``
    / ``background_file``, ``layout``, ``effect``, ``plate_replacement``, ... and the
    seed's aliases. Never raises for API errors: they come back as
    ``Result(error=code, error_description=...)``.

    Args:
        pipeline: the Pipeline to run on (default: a shared one for `device`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``, when no `pipeline` is given.
    """
    try:
        pipe = pipeline or default_pipeline(device)
    except BGRError as err:
        return Result(error=err.code, error_description=str(err))
    return pipe.remove_background(**api_params)
