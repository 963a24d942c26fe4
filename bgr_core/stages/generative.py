"""Generated background (``background="generative_background"``, extra ``generative``).

`GenerativeBackground` repaints everything around the vehicle with a Stable Diffusion
inpainting pipeline (diffusers) and pastes the vehicle back over it, so the vehicle's
opaque pixels are exactly the input's. It writes ``Frame.output`` (3, H, W) like
`ComposeBackground` and takes its place in the pipeline.

The model sees the photo scaled so its long side is `size` (512 for SD 1.x / 2.x
inpainting), padded to a multiple of 8; the generated background is brought back to
the photo's own size before the vehicle is pasted, so the vehicle keeps its full
resolution whatever the model's.
"""

from __future__ import annotations

import secrets

import torch

from ..frame import Frame
from ..functional.compose import estimate_foreground
from ..functional.inpaint import background_mask, from_canvas, model_canvas, paste_vehicle, to_canvas
from .background import compose_full_size
from .base import FrameStage

__all__ = ["GenerativeBackground", "DEFAULT_PROMPT", "DEFAULT_NEGATIVE_PROMPT"]

DEFAULT_PROMPT = "an empty modern car showroom, clean floor, soft studio lighting, professional photo"
DEFAULT_NEGATIVE_PROMPT = "car, vehicle, people, text, watermark, logo, blurry, distorted, low quality"


class GenerativeBackground(FrameStage):
    """Inpaint a new background around each frame's vehicle into ``Frame.output``.

    Args:
        pipe: a diffusers inpainting pipeline (``bgr_core.loaders.load_sd_inpaint``),
            called with ``image``, ``mask_image``, ``height``, ``width`` and ``generator``.
        prompt / negative_prompt: what the background should / should not show
            (`DEFAULT_PROMPT` / `DEFAULT_NEGATIVE_PROMPT` when None).
        seed: the generator's seed: the same seed, image and options give the same
            output on the same device (a CPU ``torch.Generator``, as diffusers advises).
            None draws one; either way it is kept in ``meta["seed"]``. Each frame is
            seeded on its own, so its result does not depend on its batch.
        steps: denoising steps; guidance: classifier-free guidance scale (<= 1 turns it
            and the negative prompt off); strength: how much of the old background's
            latent is noised away (1: none of it stays).
        size: long side of the model's canvas; multiple: the canvas is padded to it.
        grow: pixels (on the model's canvas) the repainted region reaches into the
            vehicle, so the new background meets its outline.
        decontaminate: take the old background's colour out of the vehicle's soft edge
            before blending (as `ComposeBackground`).

    Reads ``image`` (3, H, W) and ``alpha`` (1, H, W); frames with ``error`` pass through.
    """

    name = "background"

    def __init__(
        self,
        pipe,
        *,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        steps: int = 30,
        guidance: float = 7.5,
        strength: float = 1.0,
        size: int = 512,
        multiple: int = 8,
        grow: int = 4,
        decontaminate: bool = True,
    ) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`steps` must be >= 1 but is {steps}")
        if guidance < 0:
            raise ValueError(f"`guidance` must be >= 0 but is {guidance}")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"`strength` must be in (0, 1] but is {strength}")
        if multiple < 8 or multiple % 8:
            raise ValueError(f"`multiple` must be a positive multiple of 8 but is {multiple}")
        if size < multiple:
            raise ValueError(f"`size` must be >= {multiple} but is {size}")
        if grow < 0:
            raise ValueError(f"`grow` must be >= 0 but is {grow}")
        if seed is not None and not 0 <= seed < 2**63:
            raise ValueError(f"`seed` must be in [0, 2**63) but is {seed}")
        self.pipe = pipe
        self.prompt = prompt if prompt else DEFAULT_PROMPT
        self.negative_prompt = negative_prompt if negative_prompt else DEFAULT_NEGATIVE_PROMPT
        self.seed = seed
        self.steps = steps
        self.guidance = float(guidance)
        self.strength = float(strength)
        self.size = int(size)
        self.multiple = int(multiple)
        self.grow = int(grow)
        self.decontaminate = decontaminate

    def __repr__(self) -> str:
        return (
            f"GenerativeBackground(prompt={self.prompt!r}, seed={self.seed}, steps={self.steps}, "
            f"guidance={self.guidance}, size={self.size})"
        )

    def process(self, frame: Frame) -> Frame:
        if frame.alpha is None:
            raise ValueError("GenerativeBackground needs `alpha` on the frame: run the segment stage first")
        h, w = frame.size
        image = frame.image[None].float()  # (1, 3, H, W)
        alpha = frame.alpha[None].float().clamp(0.0, 1.0)  # (1, 1, H, W)
        size, padded = model_canvas(h, w, self.size, self.multiple)
        canvas = to_canvas(image, size, padded).clamp(0.0, 1.0)
        mask = background_mask(to_canvas(alpha, size, padded, fill=0.0), self.grow)

        seed = self.seed if self.seed is not None else secrets.randbelow(2**63)
        device = getattr(self.pipe, "device", torch.device("cpu"))
        generated = self.pipe(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            image=canvas.to(device),
            mask_image=mask.to(device),
            height=padded[0],
            width=padded[1],
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            strength=self.strength,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="pt",
        ).images  # (1, 3, ph, pw) in [0, 1]
        background = from_canvas(generated.to(image.device, torch.float32), size, (h, w)).clamp(0.0, 1.0)

        if frame.source is not None:  # at the working resolution: the output at full size
            output = compose_full_size(frame, background[0], self.decontaminate)
            return frame.replace(output=output, meta={**frame.meta, "seed": seed})
        fg = estimate_foreground(image, alpha) if self.decontaminate else image
        output = paste_vehicle(image, fg, alpha, background)[0].to(frame.image.dtype)
        return frame.replace(output=output, meta={**frame.meta, "seed": seed})
