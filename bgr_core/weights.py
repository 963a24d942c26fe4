"""Where weights come from.

Weight sources are data (`KNOWN_WEIGHTS`) resolved in one documented order; the
first place that exists wins:

1. an explicit path given by the caller (file or folder) — when given, it must exist;
2. ``$BGR_WEIGHTS_DIR/<name>``;
3. ``weights/<name>`` in a source checkout (next to the ``bgr_core`` package);
4. the user's data folder, ``$XDG_DATA_HOME/bgr_core/weights/<name>`` (by default
   ``~/.local/share/bgr_core/weights``): where an installed wheel's optional weights
   (SAM, Stable Diffusion) go;
5. the copy packaged in the wheel (``bgr_core/_weights/<name>``, shipped weights only).

Nothing is ever downloaded. When nothing is found, `WeightsNotFound` lists every
place tried and says where to put the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsNotFound

__all__ = ["WeightSpec", "KNOWN_WEIGHTS", "MATTE_MODELS", "DEFAULT_MATTE_MODEL", "candidates", "resolve", "user_dir", "ENV_VAR"]

ENV_VAR = "BGR_WEIGHTS_DIR"
_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent / "weights"
_PACKAGED_DIR = _PACKAGE_DIR / "_weights"  # filled by the wheel build, see pyproject.toml


@dataclass(frozen=True)
class WeightSpec:
    key: str
    filename: str
    description: str
    is_dir: bool = False
    shipped: bool = False
    hint: str = ""


KNOWN_WEIGHTS: dict[str, WeightSpec] = {
    spec.key: spec
    for spec in (
        WeightSpec(
            "u2netp",
            "u2netp.safetensors",
            "generic U2NetP salient-object net (shipped, matte_model='u2netp')",
            shipped=True,
        ),
        WeightSpec(
            "u2netp_vehicle",
            "u2netp_vehicle.safetensors",
            "U2NetP trained on vehicle masks (shipped; the teacher of the default matte net)",
            shipped=True,
        ),
        WeightSpec(
            "u2netp_vehicle_half",
            "u2netp_vehicle_half.safetensors",
            "the vehicle net distilled into U2NetP with its last decoder block at half size (shipped, the default matte net)",
            shipped=True,
        ),
        WeightSpec(
            "edge_refiner",
            "edge_refiner.safetensors",
            "the vehicle matte's edge refiner (shipped)",
            shipped=True,
        ),
        WeightSpec(
            "plate_scorer",
            "plate_scorer.safetensors",
            "learned re-scorer of licence-plate candidates (shipped)",
            shipped=True,
        ),
        WeightSpec(
            "glass_cues",
            "glass_cues.safetensors",
            "the window correction's glass cue model (shipped)",
            shipped=True,
        ),
        WeightSpec(
            "plate_logistic",
            "plate_logistic.json",
            "fitted weights of the licence-plate candidates' gated logistic score (shipped)",
            shipped=True,
        ),
        WeightSpec(
            "matte_confidence",
            "matte_confidence.json",
            "the vehicle nets' confidence test: NoData below it (shipped)",
            shipped=True,
        ),
        WeightSpec(
            "sam",
            "sam_vit_b_01ec64.pth",
            "Segment Anything checkpoint for refine='sam' (optional)",
            hint="download it once from github.com/facebookresearch/segment-anything#model-checkpoints; "
            "sam_vit_l_0b3195.pth or sam_vit_h_4b8939.pth are found under their own names too",
        ),
        WeightSpec(
            "sd_inpaint",
            "stable-diffusion-inpainting",
            "Stable Diffusion inpainting model, diffusers folder layout (optional)",
            is_dir=True,
            hint="a diffusers-format inpainting model folder (model_index.json, unet/, vae/, ...), "
            "e.g. stable-diffusion-2-inpainting saved with save_pretrained",
        ),
    )
}


# Matte nets by name; a name is both its builder in `bgr_core.models.MODEL_BUILDERS` and
# its key in `KNOWN_WEIGHTS`.
MATTE_MODELS: tuple[str, ...] = (
    "u2netp_vehicle_half",  # the default: the vehicle net distilled, its last decoder block at half size
    "u2netp_vehicle",  # trained on vehicle masks: the same cut, at 1.5-2x the cost
    "u2netp",  # the generic salient-object net
)
# the distilled net: held out, the same figures as u2netp_vehicle within 0.001 (README, Quality)
DEFAULT_MATTE_MODEL = "u2netp_vehicle_half"


def user_dir() -> Path:
    """The user's weights folder: ``$XDG_DATA_HOME/bgr_core/weights`` (default
    ``~/.local/share/bgr_core/weights``); looked in whether or not it exists."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "bgr_core" / "weights"


def _in_checkout() -> bool:
    return (_PACKAGE_DIR.parent / "pyproject.toml").is_file() and _CHECKOUT_DIR.is_dir()


def candidates(key_or_name: str, explicit: str | os.PathLike | None = None) -> list[Path]:
    """Every place looked at for a weight, in resolution order."""
    spec = KNOWN_WEIGHTS.get(key_or_name)
    name = spec.filename if spec else key_or_name
    places: list[Path] = []
    if explicit is not None:
        places.append(Path(explicit).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        places.append(Path(env).expanduser() / name)
    if _in_checkout():
        places.append(_CHECKOUT_DIR / name)
    places.append(user_dir() / name)
    if (spec is None or spec.shipped) and _PACKAGED_DIR.is_dir():
        places.append(_PACKAGED_DIR / name)
    return places


def resolve(key_or_name: str, explicit: str | os.PathLike | None = None) -> Path:
    """The first existing place for a weight, or `WeightsNotFound` listing all places tried.

    `key_or_name` is a key of `KNOWN_WEIGHTS` (``"u2netp"``, ``"sam"``, ``"sd_inpaint"``)
    or a file name looked up in the same places.
    """
    spec = KNOWN_WEIGHTS.get(key_or_name)
    name = spec.filename if spec else key_or_name
    if explicit is not None:  # a path the caller names is the only place looked at
        path = Path(explicit).expanduser()
        if path.is_dir() if (spec and spec.is_dir) else path.is_file():
            return path
        raise WeightsNotFound(f"{spec.description if spec else name}: '{path}' does not exist (given explicitly)")
    places = candidates(key_or_name)
    for place in places:
        if place.is_dir() if (spec and spec.is_dir) else place.is_file():
            return place
    what = spec.description if spec else name
    tried = "; ".join(str(p) for p in places) or f"nowhere (${ENV_VAR} is not set)"
    if _in_checkout():
        where = f"put '{name}' in {_CHECKOUT_DIR} or in the folder named by ${ENV_VAR}, or pass its path"
    else:
        where = f"put '{name}' in {user_dir()} or in a folder named by ${ENV_VAR}, or pass its path"
    hint = f" ({spec.hint})" if spec and spec.hint else ""
    raise WeightsNotFound(f"{what}: '{name}' not found; tried: {tried}. To fix: {where}{hint}.")
