"""Load heavy models once per (weights file, device): on CPU, strictly, then moved."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from pathlib import Path

import torch
from torch import nn

from . import weights
from .weights import DEFAULT_MATTE_MODEL, MATTE_MODELS
from .errors import RequestFailed, WeightsNotFound

__all__ = [
    "load_u2netp",
    "load_matte_net",
    "MATTE_MODELS",
    "DEFAULT_MATTE_MODEL",
    "load_sam",
    "sam_available",
    "load_sd_inpaint",
    "build_sam",
    "sam_model_type",
    "SAM_TYPES",
    "resolve_device",
    "cpu_native_bfloat16",
    "load_plate_scorer",
    "load_plate_logistic",
    "load_matte_confidence",
    "load_glass_cues",
    "load_edge_refiner",
    "clear_cache",
]

_CACHE: dict[tuple, object] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def _loading():
    """The cache's lock, with torch's inference mode off: a net built inside a caller's
    ``torch.inference_mode()`` would hold inference tensors, cached for every later call,
    and their version counters (which `models.u2net.ConvReLU`'s kept weight copies read)
    cannot be read."""
    with _LOCK, torch.inference_mode(False):
        yield


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without CUDA → `RequestFailed`."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RequestFailed("device 'cuda' was asked for but CUDA is not available here")
    return dev


def cpu_native_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (Intel AMX or AVX512-BF16),
    so that bfloat16 autocast makes the net faster (about 2.5x for U2NetP on 2 cores);
    without them oneDNN emulates bfloat16 and it is slower than float32."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    except Exception:  # a torch without these probes: assume no
        return False


def load_glass_cues(path: str | os.PathLike | None = None):
    """The window correction's glass cue model (`bgr_core.models.glass_cues.GlassCueNet`,
    ``weights/glass_cues.safetensors``): loaded on the CPU, strictly, once per file; eval
    mode, no gradients (its numpy parameters feed `functional.glass.glass_probability`)."""
    from safetensors.torch import load_file

    from .models.glass_cues import GlassCueNet

    file = weights.resolve("glass_cues", path)
    key = ("glass_cues", str(file))
    with _loading():
        net = _CACHE.get(key)
        if net is None:
            net = GlassCueNet()
            net.load_state_dict(load_file(str(file), device="cpu"), strict=True)
            net.eval().requires_grad_(False)
            _CACHE[key] = net
    return net


def load_edge_refiner(device: str | torch.device = "cpu", path: str | os.PathLike | None = None) -> nn.Module:
    """The vehicle matte's edge refiner (`bgr_core.models.edge_refiner.EdgeRefinerNet`,
    ``weights/edge_refiner.safetensors``): built from the file's metadata (patch side,
    hidden sizes, band radius, patch dilations), loaded on the CPU, strictly, then moved to `device`;
    eval mode, no gradients; once per file and device."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .models.edge_refiner import EdgeRefinerNet

    file = weights.resolve("edge_refiner", path)
    dev = torch.device(device)
    key = ("edge_refiner", str(Path(file).resolve()), str(dev))
    with _loading():
        net = _CACHE.get(key)
        if net is None:
            try:
                with safe_open(str(file), framework="pt", device="cpu") as f:
                    meta = f.metadata() or {}
                net = EdgeRefinerNet(
                    patch=int(meta["patch"]),
                    hidden=tuple(int(v) for v in meta["hidden"].split(",")),
                    radius=int(meta["radius"]),
                    dilations=tuple(int(v) for v in meta.get("dilations", "1").split(",")),
                )
                net.load_state_dict(load_file(str(file), device="cpu"), strict=True)
            except Exception as err:  # corrupt or foreign file, or metadata missing
                raise RequestFailed(f"could not load edge_refiner weights from '{file}': {err}") from err
            net = net.eval().requires_grad_(False).to(dev)
            _CACHE[key] = net
    return net


def _json_weights(kind: str, path: str | os.PathLike | None, parse):
    """A JSON weights file of `KNOWN_WEIGHTS` key `kind`, parsed by ``parse(data, file)``
    (which raises ValueError for a file of another form), once per file."""
    import json

    file = weights.resolve(kind, path)
    key = (kind, str(file))
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            cached = parse(json.loads(Path(file).read_text(encoding="utf-8")), file)
            _CACHE[key] = cached
    return cached


def _plate_logistic(data, file) -> dict[str, dict[str, float]]:
    table = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(table, dict) or set(table) != {"smooth", "text"}:
        raise ValueError(f"'{file}' is not a plate logistic weights file (needs weights.smooth / weights.text)")
    return {part: {str(k): float(v) for k, v in table[part].items()} for part in ("smooth", "text")}


def load_plate_logistic(path: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """The plate score's fitted logistic weights (``weights/plate_logistic.json``:
    ``{"smooth": {...}, "text": {...}}`` over `bgr_core.functional.plate_features.FEATURES`
    and ``bias``), read once per file."""
    cached = _json_weights("plate_logistic", path, _plate_logistic)
    return {part: dict(w) for part, w in cached.items()}  # callers may not change the cache


def _matte_confidence(data, file) -> dict[str, float]:
    table = data.get("min_confidence") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not all(0.0 <= float(v) <= 1.0 for v in table.values()):
        raise ValueError(f"'{file}' is not a matte confidence file (needs min_confidence: {{net: 0..1}})")
    return {str(k): float(v) for k, v in table.items()}


def load_matte_confidence(name: str, path: str | os.PathLike | None = None) -> float:
    """The fast preset's confidence test for matte net `name` (``min_confidence`` of
    `bgr_core.stages.segment.VehicleMatte`) from ``weights/matte_confidence.json``
    (written by ``tools/fit_matte_confidence.py``); 0 (no test) for a net it does not
    list, such as the generic salient-object net. Read once per file."""
    return _json_weights("matte_confidence", path, _matte_confidence).get(name, 0.0)


def load_plate_scorer(path: str | os.PathLike | None = None) -> tuple[nn.Module, dict, Path]:
    """The learned plate scorer (``weights/plate_scorer.safetensors``): its net
    (`bgr_core.models.plate_scorer`: an ensemble of ``members`` nets, or one bare net for
    older files), the config from the file's metadata (width, hidden, patch size, context,
    feature names) and the file. Loaded on the CPU, strictly, once per file; eval mode,
    no gradients (it runs on the CPU in float32)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from .models.plate_scorer import PlateScorerEnsemble, PlateScorerNet

    file = weights.resolve("plate_scorer", path)
    key = ("plate_scorer", str(file))
    with _loading():
        cached = _CACHE.get(key)
        if cached is None:
            with safe_open(str(file), framework="pt", device="cpu") as fh:
                meta = fh.metadata() or {}
            try:
                cfg = json.loads(meta["config"])
            except (KeyError, ValueError) as err:
                raise ValueError(f"'{file}' is not a plate scorer file (no 'config' metadata)") from err
            n_feats = len(cfg["features"])
            kw = dict(width=int(cfg["width"]), size=(int(cfg["size"][0]), int(cfg["size"][1])), hidden=int(cfg["hidden"]))
            members = int(cfg.get("members", 0))  # 0: a single net saved bare (older files)
            net = PlateScorerEnsemble(members, n_feats, **kw) if members else PlateScorerNet(n_feats, **kw)
            net.load_state_dict(load_file(str(file), device="cpu"), strict=True)
            net.eval().requires_grad_(False)
            cached = (net, cfg, Path(file))
            _CACHE[key] = cached
    return cached


def load_matte_net(
    name: str = DEFAULT_MATTE_MODEL, device: str | torch.device = "cpu", path: str | os.PathLike | None = None
) -> nn.Module:
    """A matte net of `MATTE_MODELS` in eval mode on `device`, loaded once per file and
    device: weights read on the CPU, strictly, then moved. Both give (B, 1, H, W): the
    generic ``"u2netp"`` the salient object, ``"u2netp_vehicle"`` and
    ``"u2netp_vehicle_half"`` the vehicle."""
    from safetensors.torch import load_file

    from .models import MODEL_BUILDERS

    if name not in MATTE_MODELS:
        raise ValueError(f"unknown matte model {name!r}; known: {', '.join(MATTE_MODELS)}")
    file = weights.resolve(name, path)
    dev = torch.device(device)
    cache_key = (name, str(Path(file).resolve()), str(dev))
    with _loading():
        net = _CACHE.get(cache_key)
        if net is None:
            net = MODEL_BUILDERS[name]()
            try:
                state = load_file(str(file), device="cpu")
                net.load_state_dict(state, strict=True)
            except Exception as err:  # corrupt or foreign file
                raise RequestFailed(f"could not load {name} weights from '{file}': {err}") from err
            # channels-last: oneDNN's fast convolution paths on CPU (about 1.5x over the
            # default NCHW one, which falls back to slow_conv2d) and tensor cores on CUDA.
            net = net.eval().requires_grad_(False).to(dev).to(memory_format=torch.channels_last)
            _CACHE[cache_key] = net
    return net


def load_u2netp(
    device: str | torch.device = "cpu", path: str | os.PathLike | None = None
) -> nn.Module:
    """The generic U2NetP net in eval mode on `device` (``load_matte_net("u2netp")``)."""
    return load_matte_net("u2netp", device, path)


# -- Segment Anything ------------------------------------------------------------------

# (encoder embed dim, encoder depth) → model type; how a checkpoint tells its type.
SAM_TYPES: dict[tuple[int, int], str] = {
    (768, 12): "vit_b",
    (1024, 24): "vit_l",
    (1280, 32): "vit_h",
    (32, 2): "vit_tiny",  # the tiny random model of `bgr_core.testing.tiny_sam`
}
# Official checkpoint names, found in the same places as the default `sam` weight.
_SAM_FILES = ("sam_vit_l_0b3195.pth", "sam_vit_h_4b8939.pth")


def build_sam(model_type: str) -> nn.Module:
    """An untrained `segment_anything.Sam` of `model_type` (``vit_b``, ``vit_l``,
    ``vit_h`` as in ``sam_model_registry``, or ``vit_tiny``: a 64-pixel, 2-block test
    model), in eval mode on the CPU."""
    from functools import partial

    from segment_anything import sam_model_registry
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if model_type in ("vit_b", "vit_l", "vit_h"):
        return sam_model_registry[model_type](checkpoint=None).eval()
    if model_type != "vit_tiny":
        known = ", ".join(sorted({*SAM_TYPES.values()}))
        raise ValueError(f"`model_type` must be one of {known} but is '{model_type}'")
    size, patch, dim = 64, 8, 16  # image side, patch side, prompt embedding dim
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=size, patch_size=patch, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
            out_chans=dim, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=4, global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(size // patch, size // patch),
            input_image_size=(size, size), mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=32, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=16,
        ),
    )
    return sam.eval()


def sam_model_type(state: dict[str, torch.Tensor]) -> str:
    """The model type of a SAM state dict, told from its image encoder's width and depth."""
    try:
        dim = int(state["image_encoder.patch_embed.proj.weight"].shape[0])
    except KeyError:
        raise ValueError("not a Segment Anything state dict (no 'image_encoder.patch_embed.proj.weight')") from None
    depth = len({k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")})
    if (dim, depth) not in SAM_TYPES:
        raise ValueError(
            f"unknown Segment Anything encoder (embed dim {dim}, {depth} blocks); pass `model_type`"
        )
    return SAM_TYPES[(dim, depth)]


def _resolve_sam(path: str | os.PathLike | None) -> Path:
    """The `sam` weight, or another official SAM checkpoint found under its own name."""
    try:
        return weights.resolve("sam", path)
    except WeightsNotFound as missing:
        if path is not None:
            raise
        for name in _SAM_FILES:
            try:
                return weights.resolve(name)
            except WeightsNotFound:
                pass
        raise missing from None


def sam_available(path: str | os.PathLike | None = None) -> bool:
    """Whether `load_sam` would find a checkpoint (and the ``segment-anything`` package)."""
    if importlib.util.find_spec("segment_anything") is None:
        return False
    try:
        _resolve_sam(path)
    except WeightsNotFound:
        return False
    return True


def load_sam(
    device: str | torch.device = "cpu",
    path: str | os.PathLike | None = None,
    model_type: str | None = None,
) -> nn.Module:
    """A Segment Anything model (`segment_anything.Sam`) in eval mode on `device`.

    The checkpoint (``sam_vit_b_01ec64.pth`` by default, see `weights`) is read on the
    CPU, its type told from the state dict unless `model_type` is given, loaded
    strictly, then moved. Missing checkpoint → `WeightsNotFound`; missing
    ``segment-anything`` package → `RequestFailed` naming the ``sam`` extra.
    """
    _require("segment_anything", "segment-anything", "sam")
    file = _resolve_sam(path)
    dev = torch.device(device)
    key = ("sam", str(Path(file).resolve()), model_type, str(dev))
    with _loading():
        sam = _CACHE.get(key)
        if sam is None:
            try:
                if Path(file).suffix == ".safetensors":
                    from safetensors.torch import load_file

                    state = load_file(str(file), device="cpu")
                else:
                    state = torch.load(str(file), map_location="cpu", weights_only=True)
                if isinstance(state, dict) and isinstance(state.get("model"), dict):
                    state = state["model"]  # training checkpoints wrap the weights
                sam = build_sam(model_type or sam_model_type(state))
                sam.load_state_dict(state, strict=True)
            except Exception as err:  # corrupt, foreign or mismatched file
                raise RequestFailed(f"could not load Segment Anything weights from '{file}': {err}") from err
            sam = sam.eval().requires_grad_(False).to(dev)
            _CACHE[key] = sam
    return sam


# -- Stable Diffusion inpainting ---------------------------------------------------------


def load_sd_inpaint(device: str | torch.device = "cpu", path: str | os.PathLike | None = None):
    """A diffusers inpainting pipeline (``AutoPipelineForInpainting``) on `device`.

    Read from a diffusers-layout folder (``stable-diffusion-inpainting`` by default, see
    `weights`) with ``local_files_only=True``: nothing is downloaded. float16 on CUDA,
    float32 on the CPU. The safety checker is neither loaded nor required
    (``safety_checker=None, requires_safety_checker=False``): the pipeline only paints
    backgrounds behind the user's own photo. Missing folder → `WeightsNotFound`;
    missing packages → `RequestFailed` naming the ``generative`` extra.
    """
    _require("diffusers", "diffusers", "generative")
    _require("transformers", "transformers", "generative")
    folder = weights.resolve("sd_inpaint", path)
    if not (folder / "model_index.json").is_file():
        raise WeightsNotFound(
            f"'{folder}' has no model_index.json: it is not a diffusers model folder "
            "(save one with `pipeline.save_pretrained(folder)`)"
        )
    dev = torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    key = ("sd_inpaint", str(Path(folder).resolve()), str(dev))
    with _loading():
        pipe = _CACHE.get(key)
        if pipe is None:
            import json

            from diffusers import AutoPipelineForInpainting

            index = json.loads((folder / "model_index.json").read_text())
            extra = {}
            if "safety_checker" in index or "requires_safety_checker" in index:  # SD 1.x / 2.x
                extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
            # without accelerate, low_cpu_mem_usage=True is refused with a warning
            extra["low_cpu_mem_usage"] = importlib.util.find_spec("accelerate") is not None
            extra[_diffusers_dtype_arg()] = dtype  # cast while reading, so diffusers keeps its fp32 modules
            try:
                pipe = AutoPipelineForInpainting.from_pretrained(str(folder), local_files_only=True, **extra)
                pipe = pipe.to(dev)
            except Exception as err:  # incomplete or foreign folder
                raise RequestFailed(f"could not load the inpainting model from '{folder}': {err}") from err
            pipe.set_progress_bar_config(disable=True)
            _CACHE[key] = pipe
    return pipe


def _diffusers_dtype_arg() -> str:
    """``dtype`` in the diffusers releases that renamed it (``torch_dtype`` is deprecated
    there), ``torch_dtype`` before."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


def _require(module: str, package: str, extra: str) -> None:
    """`RequestFailed` naming the pip extra when an optional package is missing."""
    if importlib.util.find_spec(module) is None:
        raise RequestFailed(
            f"the '{package}' package is needed for this mode: pip install 'bgr-core[{extra}]'"
        )


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
