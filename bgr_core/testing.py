"""Synthetic car scenes and tiny seeded models for tests and notebooks.

Scenes are drawn with OpenCV so the truth is known exactly: the vehicle mask, its box
and its glass region.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SyntheticScene", "synthetic_car_scene", "tiny_sam", "tiny_sd_inpaint_folder"]


@dataclass
class SyntheticScene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) bool, the whole vehicle (glass included)
    glass: np.ndarray  # (H, W) bool, the windows
    box: tuple[int, int, int, int]  # XYXY of the vehicle, pixels


def synthetic_car_scene(height: int = 240, width: int = 320, seed: int = 0, background=None) -> SyntheticScene:
    """A side-view car-like body on a textured street background.

    The body is a rounded lower box with a cabin on top, two dark wheels and two side
    windows that show a continuation of the background texture (as real glass does).

    Args:
        background: optional (H, W, 3) uint8 image to use instead of the generated one.
    """
    rng = np.random.default_rng(seed)
    h, w = height, width
    if background is None:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        sky = np.stack([150 + 40 * yy / h, 180 + 30 * yy / h, 230 - 20 * yy / h], -1)
        ground = np.stack([110 + 0 * yy, 105 + 0 * yy, 100 + 0 * yy], -1)
        horizon = int(h * 0.62)
        bg = np.where((yy < horizon)[..., None], sky, ground)
        bg += rng.normal(0, 6, size=bg.shape)
        # a few "buildings" and "trees" so glass and background have structure
        # (muted, so the car stays the salient object)
        for _ in range(6):
            x0 = int(rng.integers(0, w - 20))
            bw, bh = int(rng.integers(w // 40, w // 12)), int(rng.integers(h // 10, h // 4))
            colour = np.array([160, 180, 205]) + rng.integers(-25, 25, 3)
            cv2.rectangle(bg, (x0, horizon - bh), (x0 + bw, horizon), colour.tolist(), -1)
        background = np.clip(bg, 0, 255).astype(np.uint8)
    image = background.copy()
    mask = np.zeros((h, w), np.uint8)
    glass = np.zeros((h, w), np.uint8)

    cx = w // 2 + int(rng.integers(-w // 20, w // 20 + 1))
    body_w, body_h = int(w * 0.62), int(h * 0.2)
    ground_y = int(h * 0.8)
    x0, x1 = cx - body_w // 2, cx + body_w // 2
    y1 = ground_y - int(h * 0.05)
    y0 = y1 - body_h
    colour = [int(c) for c in rng.integers(20, 230, 3)]
    cv2.rectangle(mask, (x0 + 8, y0), (x1 - 8, y1), 1, -1)
    cv2.rectangle(mask, (x0, y0 + 8), (x1, y1 - 8), 1, -1)
    for cx_, cy_ in ((x0 + 8, y0 + 8), (x1 - 8, y0 + 8), (x0 + 8, y1 - 8), (x1 - 8, y1 - 8)):
        cv2.circle(mask, (cx_, cy_), 8, 1, -1)
    roof_y = y0 - int(h * 0.16)
    cabin = np.array(
        [[x0 + body_w * 0.18, y0], [x0 + body_w * 0.32, roof_y], [x0 + body_w * 0.7, roof_y], [x0 + body_w * 0.86, y0]],
        np.int32,
    )
    cv2.fillPoly(mask, [cabin], 1)
    inset = max(3, h // 60)
    win1 = np.array(
        [[x0 + body_w * 0.22 + inset, y0 - inset], [x0 + body_w * 0.34, roof_y + inset], [x0 + body_w * 0.5 - inset, roof_y + inset], [x0 + body_w * 0.5 - inset, y0 - inset]],
        np.int32,
    )
    win2 = np.array(
        [[x0 + body_w * 0.5 + inset, y0 - inset], [x0 + body_w * 0.5 + inset, roof_y + inset], [x0 + body_w * 0.68, roof_y + inset], [x0 + body_w * 0.82 - inset, y0 - inset]],
        np.int32,
    )
    cv2.fillPoly(glass, [win1, win2], 1)
    wheel_r = int(h * 0.075)
    wheels = [(x0 + int(body_w * 0.2), ground_y - wheel_r), (x1 - int(body_w * 0.2), ground_y - wheel_r)]
    for wx, wy in wheels:
        cv2.circle(mask, (wx, wy), wheel_r, 1, -1)

    body = mask.astype(bool) & ~glass.astype(bool)
    shade = np.linspace(1.15, 0.75, h)[:, None, None]
    paint = np.clip(np.array(colour, np.float32)[None, None] * shade, 0, 255).astype(np.uint8)
    image[body] = np.broadcast_to(paint, image.shape)[body]
    # glass shows the background, darkened and tinted, as through real windows
    g = glass.astype(bool)
    image[g] = (image[g].astype(np.float32) * 0.55 + 10).astype(np.uint8)
    for wx, wy in wheels:
        cv2.circle(image, (wx, wy), wheel_r, (25, 25, 28), -1)
        cv2.circle(image, (wx, wy), wheel_r // 2, (150, 150, 155), -1)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return SyntheticScene(image=image, mask=mask.astype(bool), glass=g, box=box)


# -- tiny seeded models -------------------------------------------------------------------
# Random weights with the real architectures' code paths: for tests and notebooks that
# exercise loading, prompting and shapes without the real (GB-sized) checkpoints.
# The optional packages are imported here, lazily, never by the core package.


def tiny_sam(seed: int = 0):
    """A tiny random `segment_anything.Sam` (``vit_tiny``: 64-pixel input, 2 encoder
    blocks of width 32, prompt dim 16), seeded, in eval mode on the CPU. Its state dict
    saved with ``torch.save`` loads back through `bgr_core.loaders.load_sam`."""
    import torch

    from .loaders import build_sam

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = build_sam("vit_tiny")
        with torch.no_grad():
            for p in sam.parameters():
                if not p.any():  # zero-initialised (positions, relative positions): exercise them too
                    p.normal_(0.0, 0.02)
    return sam.eval()


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet: one printable character per byte value."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def tiny_sd_inpaint_folder(path, seed: int = 0):
    """Save a tiny random Stable Diffusion inpainting pipeline (diffusers layout) to `path`.

    Components as the real model's, scaled down: UNet2DConditionModel with 9 input
    channels (latent, mask, masked-image latent), block widths (32, 64); AutoencoderKL
    with 2 blocks (latent = image / 2); CLIPTextModel of width 32 and 2 layers with a
    byte-level CLIPTokenizer (514 tokens, no merges, written as vocab.json + merges.txt);
    DDIMScheduler; no safety checker. Seeded; returns the folder as a `Path`. Load it
    with `bgr_core.loaders.load_sd_inpaint(device, path)`.
    """
    import json
    import tempfile
    from pathlib import Path

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(path)
    chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate([*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"])}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer.from_pretrained(tmp, model_max_length=77, local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=9, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 64), cross_attention_dim=32, attention_head_dim=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        )
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, layer_norm_eps=1e-5,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
