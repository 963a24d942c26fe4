"""bgr_core: local vehicle background removal — the web API's job on your own CPU or GPU."""

from .api import remove_background
from .display import stage_figure
from .errors import (
    BGRError,
    FeatureNotAvailable,
    InvalidInput,
    NoData,
    RequestFailed,
    Unauthorized,
    WeightsNotFound,
)
from .frame import Frame
from .imageio import ImageLimits
from .pipeline import Pipeline
from .result import Result

__version__ = "0.1.0"

__all__ = [
    "remove_background",
    "Pipeline",
    "Result",
    "Frame",
    "stage_figure",
    "ImageLimits",
    "BGRError",
    "InvalidInput",
    "Unauthorized",
    "NoData",
    "RequestFailed",
    "WeightsNotFound",
    "FeatureNotAvailable",
]
