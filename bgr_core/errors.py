"""Errors, each carrying the web API's error code.

`remove_background` turns any `BGRError` into ``Result(error=code,
error_description=str(err))``; the Pipeline and the stages raise them.
"""

from __future__ import annotations

__all__ = [
    "BGRError",
    "InvalidInput",
    "Unauthorized",
    "NoData",
    "RequestFailed",
    "WeightsNotFound",
    "FeatureNotAvailable",
    "API_ERROR_CODES",
]

API_ERROR_CODES = ("invalid_input", "unauthorized_request", "no_data", "request_failed")


class BGRError(Exception):
    """Base class: an error the API reports with `code` and a human description."""

    code = "request_failed"

    @property
    def description(self) -> str:
        return str(self)


class InvalidInput(BGRError, ValueError):
    """The request itself is wrong: missing / duplicate / undecodable input, bad enum or combination."""

    code = "invalid_input"


class Unauthorized(BGRError):
    """A key is configured and the request's key does not match."""

    code = "unauthorized_request"


class NoData(BGRError):
    """No vehicle-like foreground was found in the image."""

    code = "no_data"


class RequestFailed(BGRError, RuntimeError):
    """The request was valid but could not be served (network, weights, model failure, memory)."""

    code = "request_failed"


class WeightsNotFound(RequestFailed, FileNotFoundError):
    """A weight file or folder is missing; the message names it and every place looked at."""


class FeatureNotAvailable(RequestFailed, NotImplementedError):
    """A valid parameter whose stage is not part of this version yet."""
