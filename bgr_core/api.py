"""`remove_background(**api_params)`: the web API's call, served locally."""

from __future__ import annotations

import logging
import threading
from typing import Any

from .errors import BGRError
from .limits import show
from .pipeline import Pipeline
from .result import Result

__all__ = ["remove_background", "default_pipeline", "clear_default_pipelines"]

_DEFAULT: dict[str, Pipeline] = {}
_LOCK = threading.Lock()
log = logging.getLogger("bgr_core")


def default_pipeline(device: str = "auto") -> Pipeline:
    """The shared Pipeline for `device`, created on first use (models load once)."""
    with _LOCK:
        if device not in _DEFAULT:
            _DEFAULT[device] = Pipeline(device)
        return _DEFAULT[device]


def clear_default_pipelines() -> None:
    """Forget the shared pipelines (the next call builds them anew, e.g. after the
    environment's keys changed)."""
    with _LOCK:
        _DEFAULT.clear()


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
    if pipeline is not None and not isinstance(pipeline, Pipeline):
        return Result(
            error="invalid_input",
            error_description=f"`pipeline` must be a bgr_core.Pipeline, not {type(pipeline).__name__}",
        )
    bad_device = Result(
        error="invalid_input",
        error_description=f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N' but is {show(device, 60, quoted=True)}",
    )
    try:
        name = _device_name(device)
    except Exception:
        return bad_device
    try:
        pipe = pipeline or default_pipeline(name)
    except BGRError as err:
        return Result(error=err.code, error_description=str(err))
    except ValueError as err:  # the service's own configuration (e.g. $BGR_API_KEYS), not the caller's
        return Result(error="request_failed", error_description=f"the service is misconfigured: {err}")
    except Exception:  # torch.device("tpu") and the like
        return bad_device
    try:
        return pipe.remove_background(**api_params)
    except Exception as err:  # last line of defence: the API never raises
        log.exception("bgr_core: unexpected failure in remove_background", exc_info=err)
        return Result(error="request_failed", error_description=f"processing failed ({type(err).__name__})")


def _device_name(device: Any) -> str:
    if device is None:
        return "auto"
    if not isinstance(device, str):
        device = str(device) if type(device).__name__ == "device" else device
    if not isinstance(device, str) or len(device) > 32:
        raise ValueError("bad device")
    return device
