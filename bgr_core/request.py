"""Parse and validate the API's parameters into a `Request`.

Everything here is cheap and happens before any image is decoded or model loaded.
Messages name the parameter and what is allowed, e.g.
"`layout` must be one of 'center', 'crop', 'none' but is 'wide'".
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import InvalidInput
from .limits import show
from .vocabulary import (BACKGROUNDS, EFFECTS, IMAGE_PARAMS, LAYOUTS, OUTPUT_FORMATS, PLATE_MODES, REFINE_MODES,
                         WINDOW_MODES)

__all__ = [
    "Request",
    "parse_request",
    "BACKGROUNDS",
    "LAYOUTS",
    "EFFECTS",
    "PLATE_MODES",
    "WINDOW_MODES",
    "REFINE_MODES",
    "OUTPUT_FORMATS",
    "IMAGE_PARAMS",
]


_ALIASES = {  # alias -> canonical parameter, as the seed API accepts them
    "custom_background": "background_file",
    "license_plate_input": "plate_base64",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Request:
    """A validated request. Image sources are kept raw; `imageio` decodes them later.

    `image_param` / `background_param` / `plate_param` name the parameter each source
    came from, so decoding errors can name it too.
    """

    image: Any
    image_param: str
    key: str | None = None
    background: str = "white_background"
    background_source: Any = None
    background_param: str | None = None
    layout: str = "none"
    effect: str = "shadow"
    background_prompt: str | None = None
    background_negative_prompt: str | None = None
    plate_replacement: str = "none"
    plate_source: Any = None
    plate_param: str | None = None
    window_correction: str = "tint"
    refine: str = "auto"
    seed: int | None = None
    output_format: str = "auto"
    shadow_strength: float = 0.8
    shadow_softness: float = 1.0
    margin: float | None = None
    output_size: tuple[int, int] | None = None
    aspect_ratio: str | None = None

    @property
    def extension(self) -> str:
        """File extension of the output: png for transparent output unless asked otherwise."""
        if self.output_format != "auto":
            return self.output_format
        return "png" if self.background == "transparent_background" else "jpg"


_KNOWN = (
    set(IMAGE_PARAMS)
    | set(_ALIASES)
    | {
        "key",
        "background",
        "background_url",
        "background_file",
        "layout",
        "effect",
        "background_prompt",
        "background_negative_prompt",
        "plate_replacement",
        "replace_license_plate",
        "plate_base64",
        "window_correction",
        "refine",
        "seed",
        "output_format",
        "shadow_strength",
        "shadow_softness",
        "margin",
        "output_size",
        "aspect_ratio",
    }
)


def _enum(params: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(
            f"`{name}` must be one of {_quoted(allowed)} but is {show(value, 60, quoted=True)} ({type(value).__name__})"
        )
    norm = value.strip().lower()
    if norm not in allowed:
        raise InvalidInput(f"`{name}` must be one of {_quoted(allowed)} but is {show(value, 60, quoted=True)}")
    return norm


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string, not {type(value).__name__}")
    return value


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value == "")


def parse_request(params: Mapping[str, Any]) -> Request:
    """Validate API parameters (aliases accepted) and return a `Request`.

    Raises `InvalidInput` for unknown parameters, missing or duplicate images, unknown
    enum values and combinations the API forbids.
    """
    unknown = sorted(show(u, 40, quoted=True) for u in set(params) - _KNOWN)
    if unknown:
        raise InvalidInput(
            f"unknown parameter(s) {', '.join(unknown[:10])}{', ...' if len(unknown) > 10 else ''}; "
            f"known: {', '.join(sorted(_KNOWN))}"
        )
    params = dict(params)
    for alias, canonical in _ALIASES.items():
        if _given(params.get(alias)):
            if _given(params.get(canonical)):
                raise InvalidInput(f"give either `{canonical}` or its alias `{alias}`, not both")
            params[canonical] = params.pop(alias)

    images = [p for p in IMAGE_PARAMS if _given(params.get(p))]
    if not images:
        raise InvalidInput("no image given: pass exactly one of image_url, image_base64, image_file")
    if len(images) > 1:
        raise InvalidInput(f"give exactly one image, got {', '.join(images)}")
    image_param = images[0]

    background = _enum(params, "background", BACKGROUNDS, "white_background")
    layout = _enum(params, "layout", LAYOUTS, "none")
    effect = _enum(params, "effect", EFFECTS, "shadow")
    window = _enum(params, "window_correction", WINDOW_MODES, "tint")
    refine = _enum(params, "refine", REFINE_MODES, "auto")
    output_format = _enum(params, "output_format", OUTPUT_FORMATS, "auto")

    plate = _plate_mode(params)
    plate_param = "plate_base64" if _given(params.get("plate_base64")) else None
    if plate == "image" and plate_param is None:
        raise InvalidInput("`plate_replacement` is 'image' but no `plate_base64` (or `license_plate_input`) was given")

    bg_param = None
    if background == "custom_background":
        # url wins when both are given, as in the web API
        for name in ("background_url", "background_file"):
            if _given(params.get(name)):
                bg_param = name
                break
        if bg_param is None:
            raise InvalidInput(
                "`background` is 'custom_background' but neither `background_url` nor "
                "`background_file` (alias `custom_background`) was given"
            )

    if background == "generative_background":
        if layout != "none":
            raise InvalidInput(f"`layout` must be 'none' with generative_background but is '{layout}'")
        if effect != "none":
            raise InvalidInput(f"`effect` must be 'none' with generative_background but is '{effect}'")
    if output_format == "jpg" and background == "transparent_background":
        raise InvalidInput("`output_format` 'jpg' cannot hold transparency; use 'png' or 'webp'")

    seed = params.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, str)):
            raise InvalidInput(f"`seed` must be an integer, not {type(seed).__name__}")
        try:
            seed = int(seed)
        except ValueError:
            raise InvalidInput(f"`seed` must be an integer but is {show(seed, 60, quoted=True)}") from None
        if not 0 <= seed < 2**63:
            raise InvalidInput(f"`seed` must be in [0, 2**63) but is {show(seed, 60, quoted=True)}")

    key = _text(params, "key")
    if key is not None:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("`key` must be valid text (it has unpaired surrogate characters)") from None

    generative = background == "generative_background"
    return Request(
        shadow_strength=_number(params, "shadow_strength", 0.8, 0.0, 1.0),
        shadow_softness=_number(params, "shadow_softness", 1.0, 0.1, 10.0),
        margin=_number(params, "margin", None, 0.0, 0.49),
        output_size=_size(params.get("output_size")),
        aspect_ratio=_aspect(params.get("aspect_ratio")),
        image=params[image_param],
        image_param=image_param,
        key=key,
        background=background,
        background_source=params[bg_param] if bg_param else None,
        background_param=bg_param,
        layout=layout,
        effect=effect,
        background_prompt=_text(params, "background_prompt") if generative else None,
        background_negative_prompt=_text(params, "background_negative_prompt") if generative else None,
        plate_replacement=plate,
        plate_source=params.get("plate_base64") if plate == "image" else None,
        plate_param=plate_param if plate == "image" else None,
        window_correction=window,
        refine=refine,
        seed=seed,
        output_format=output_format,
    )


def _number(params: Mapping[str, Any], name: str, default: float | None, low: float, high: float) -> float | None:
    value = params.get(name)
    if value is None:
        return default
    problem = f"`{name}` must be a number in [{low}, {high}] but is {show(value, 60, quoted=True)}"
    if isinstance(value, (bool, bytes, bytearray)):
        raise InvalidInput(problem)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(problem) from None
    if not low <= number <= high:  # NaN fails too
        raise InvalidInput(problem)
    return number


def _size(value: Any) -> tuple[int, int] | None:
    """``(width, height)``, ``[w, h]`` or ``"1600x1200"``."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace(" ", "").split("x")
    elif isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        parts = []
    try:
        if any(isinstance(p, (bool, bytes, bytearray)) or (isinstance(p, float) and p != int(p)) for p in parts):
            raise TypeError
        w, h = (int(p) for p in parts)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(
            f"`output_size` must be (width, height) integers or 'WxH' but is {show(value, 60, quoted=True)}"
        ) from None
    if not (16 <= w <= 10000 and 16 <= h <= 10000):
        raise InvalidInput(f"`output_size` sides must be 16..10000 pixels but is {show(value, 60, quoted=True)}")
    return w, h


def _aspect(value: Any) -> str | None:
    if value is None:
        return None
    from .stages.layout import parse_aspect

    problem = f"`aspect_ratio` must look like '4:3' or '16:9' (between 1:10 and 10:1) but is {show(value, 60, quoted=True)}"
    if isinstance(value, tuple) and not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value
    ):
        raise InvalidInput(problem)
    try:
        parse_aspect(value)
    except ValueError as err:
        raise InvalidInput(show(str(err).replace("`aspect`", "`aspect_ratio`"), 200)) from None
    except (TypeError, ArithmeticError):  # (4, 0), "4:0", huge numbers
        raise InvalidInput(problem) from None
    return value


def _plate_mode(params: Mapping[str, Any]) -> str:
    if params.get("plate_replacement") is not None:
        return _enum(params, "plate_replacement", PLATE_MODES, "none")
    flag = params.get("replace_license_plate")
    if flag is None:
        return "none"
    text = str(flag).strip().lower()
    if isinstance(flag, bool) or text in _TRUE + _FALSE:
        return "image" if (flag is True or text in _TRUE) else "none"
    raise InvalidInput(f"`replace_license_plate` must be '1' or '0' but is {show(flag, 60, quoted=True)}")

