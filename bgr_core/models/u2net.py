"""U²-NetP (Qin et al., "U²-Net: Going Deeper with Nested U-Structure for
Salient Object Detection", Pattern Recognition 2020) in PyTorch.

Only modules live here; loading weights is the job of :mod:`bgr_core.weights`
and the segment stage. The shipped weights (``weights/u2netp.safetensors``) are
converted from the ONNX release by ``tools/convert_u2netp.py``. That release has
batch norm folded into the convolutions, so every REBNCONV here is a single
``Conv2d(bias=True)`` followed by ReLU.

Layout of the network (U2NetP: in_ch=3, mid=16, out=64 in every block)::

    x ─ stage1 RSU7 ─ pool ─ stage2 RSU6 ─ pool ─ stage3 RSU5 ─ pool ─ stage4 RSU4
          │                    │                    │                    │
          │                    │                    │                  pool ─ stage5 RSU4F ─ pool ─ stage6 RSU4F
          │                    │                    │                    │        │                     │
        stage1d ◀─ up ◀─ stage2d ◀─ up ◀─ stage3d ◀─ up ◀─ stage4d ◀─ up ◀─ stage5d ◀────── up ◀─────────┘
          │                │                │                │                │           │
        side1            side2            side3            side4            side5       side6   (3x3 conv → 1 channel)
          └──────── all upsampled to the input size, concatenated ──────▶ outconv (1x1) → d0

Pooling is 2x2 max pooling, stride 2, ``ceil_mode=True``; every upsampling is
bilinear with ``align_corners=False`` to the exact spatial size of the tensor it
is joined with, so any input size (odd ones included) works.

The declaration order of the convolutions (``Module.modules()`` order) is the
order in which they run, which is also the order of the Conv nodes in the ONNX
graph; the converter relies on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConvReLU",
    "SideConv",
    "RSU",
    "RSU7",
    "RSU6",
    "RSU5",
    "RSU4",
    "RSU4F",
    "U2NetP",
    "U2NetPHalfTop",
]


def _pool(x: Tensor) -> Tensor:
    """2x2 max pooling, stride 2, ceil_mode: (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)).

    Without autograd, a large map is pooled as the maximum of its four strided 2x2
    phases (an odd edge padded with -inf): the same values, 2.5x faster than the CPU's
    `max_pool2d` (which also computes the argmax indices) on a (1, 64, 288, 288)
    bfloat16 channels-last map; on small maps the single op is faster."""
    if x.requires_grad or x.numel() < 1 << 18:
        return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    return torch.maximum(top, torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def _upsample_like(x: Tensor, ref: Tensor) -> Tensor:
    """Bilinear resize (align_corners=False) of x (B, C, h, w) to ref's (H, W)."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _fused_conv():
    """oneDNN's convolution with the ReLU fused into it (the op torch's own CPU compiler
    emits), or None: in builds without oneDNN, and on CPUs where oneDNN has no bfloat16
    kernels (AVX2-only ones: it refuses the call there, while autocast's plain convolution
    still runs, emulated)."""
    ops = getattr(torch.ops, "mkldnn", None)
    op = getattr(ops, "_convolution_pointwise", None)
    try:
        bf16 = bool(ops._is_mkldnn_bf16_supported())
    except Exception:  # a build without the probe: assume no
        bf16 = False
    return op if bf16 else None


# set to None, `ConvReLU` runs the plain pair
FUSED_CONV = _fused_conv()
# set to False, `SideConv` runs the plain convolution (its taps path needs the same
# bfloat16 kernels as the fused one)
SIDE_TAPS = FUSED_CONV is not None


def _cpu_bfloat16(x: Tensor, weight: Tensor) -> bool:
    """Whether a convolution of `weight` over `x` runs the CPU's bfloat16 fast paths
    (`ConvReLU`'s fused op, `SideConv`'s taps): without autograd, on a 4-D channels-last
    CPU tensor (as the pipeline runs the net: on NCHW inputs oneDNN reorders memory and is
    slower than the plain ops), in bfloat16 or under its CPU autocast. bfloat16 only:
    there the fused op gives the plain pair's values bit for bit and saves most; in
    float32 it picks other kernels (1e-9 apart) and saves ~5 %."""
    if x.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if x.dim() != 4 or x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return dtype == torch.bfloat16


class ConvReLU(nn.Module):
    """REBNCONV with batch norm folded in: 3x3 conv (dilated, same padding) + ReLU.

    (B, in_ch, H, W) -> (B, out_ch, H, W)

    Without autograd, on the CPU, in bfloat16 (or its autocast) and channels-last, the
    ReLU runs inside oneDNN's convolution (`FUSED_CONV`) instead of a second pass over
    the output: the same values bit for bit, 12-22 % of the net's time saved on 2 cores.
    """

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=dilation, dilation=dilation, bias=True)
        self._cast: tuple | None = None  # the fused path's weights in its dtype (`_fused_params`)

    def _fused_dtype(self, x: Tensor) -> torch.dtype | None:
        if FUSED_CONV is None or not _cpu_bfloat16(x, self.conv.weight):
            return None
        return torch.bfloat16

    def forward(self, x: Tensor) -> Tensor:
        dtype = self._fused_dtype(x)
        if dtype is None:
            return F.relu(self.conv(x), inplace=True)
        c = self.conv
        w, b = self._fused_params(dtype)
        return FUSED_CONV(x.to(dtype), w, b, list(c.padding), list(c.stride), list(c.dilation),
                          c.groups, "relu", [], "")

    def _fused_params(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Weight (channels-last) and bias cast to `dtype`, as autocast casts them, kept
        between calls: casting the net's 112 convolutions' weights on every call is
        about 2-3 ms of a photo on 2 cores. The copy is made again when a tensor is
        replaced or changed in place (its storage or version counter moves); tensors made
        in inference mode have no version counter, so theirs are cast on every call."""
        w, b = self.conv.weight, self.conv.bias
        if w.is_inference() or b.is_inference():
            return w.detach().to(dtype, memory_format=torch.channels_last), b.detach().to(dtype)
        key = (dtype, w.device, w.data_ptr(), w._version, b.data_ptr(), b._version)
        cast = self._cast  # one read: another thread may replace it meanwhile
        if cast is None or cast[0] != key:
            cast = (key, w.detach().to(dtype, memory_format=torch.channels_last), b.detach().to(dtype))
            self._cast = cast
        return cast[1], cast[2]


class SideConv(nn.Conv2d):
    """A side output: 3x3 convolution (same padding), (B, in_ch, H, W) -> (B, out_ch, H, W).

    To one channel, where `ConvReLU` fuses its ReLU (`_cpu_bfloat16`: no autograd, CPU,
    bfloat16 or its autocast, channels-last), it runs as one matrix product to the 9 taps,
    (B H W, in_ch) x (in_ch, 9) in bfloat16, and their shifted sum in float32: oneDNN's
    convolution to a single channel is slow (about 1.1 ms for a 64-channel 144 x 144 map
    on 2 cores, 0.33 ms this way; 2.3 of the half-top net's 84 ms), and the sum is closer
    to float32's than autocast's bfloat16 output (its logits come back in float32).
    """

    def __init__(self, in_ch: int, out_ch: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if not (SIDE_TAPS and self.out_channels == 1 and _cpu_bfloat16(x, self.weight)):
            return super().forward(x)
        b, c, h, w = x.shape
        taps_w = self.weight[0].permute(1, 2, 0).reshape(9, c).t().to(torch.bfloat16)
        # channels-last: (B, H, W, C) is x's own memory, a view
        taps = (x.to(torch.bfloat16).permute(0, 2, 3, 1).reshape(-1, c) @ taps_w).float().view(b, h, w, 9)
        taps = F.pad(taps, (0, 0, 1, 1, 1, 1))
        out = self.bias.float().view(1, 1, 1).expand(b, h, w).clone()
        for k in range(9):  # out[y, x] += tap k of the pixel at (y + ky - 1, x + kx - 1)
            ky, kx = divmod(k, 3)
            out += taps[:, ky : ky + h, kx : kx + w, k]
        return out[:, None]


class RSU(nn.Module):
    """Residual U-block of the given height.

    ``RSU(L)`` (L = 4..7) is a small U-Net: an input conv (in_ch -> out_ch),
    L-1 encoder convs separated by max pooling, a dilation-2 bottom conv, and
    L-1 decoder convs that each take the upsampled previous decoder output
    concatenated with the matching encoder output; the result is added to the
    input conv's output.

    With ``dilated=True`` (RSU-4F) there is no pooling or upsampling: the
    encoder uses dilations 1, 2, 4, the bottom 8 and the decoder 4, 2, 1.

    (B, in_ch, H, W) -> (B, out_ch, H, W)
    """

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int, dilated: bool = False) -> None:
        super().__init__()
        if height < 2:
            raise ValueError(f"RSU height must be >= 2, got {height}")
        self.height = height
        self.dilated = dilated
        n = height - 1
        enc_dil = [2**i for i in range(n)] if dilated else [1] * n
        bottom_dil = 2**n if dilated else 2
        self.conv_in = ConvReLU(in_ch, out_ch)
        self.encoder = nn.ModuleList(
            ConvReLU(out_ch if i == 0 else mid_ch, mid_ch, enc_dil[i]) for i in range(n)
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, bottom_dil)
        # decoder[0] is the deepest (conv{L-1}d), decoder[-1] is conv1d.
        self.decoder = nn.ModuleList(
            ConvReLU(2 * mid_ch, out_ch if i == n - 1 else mid_ch, enc_dil[n - 1 - i]) for i in range(n)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_ch, H, W) -> (B, out_ch, H, W)."""
        hx_in = self.conv_in(x)
        skips: list[Tensor] = []
        h = hx_in
        for i, conv in enumerate(self.encoder):
            if i > 0 and not self.dilated:
                h = _pool(h)
            h = conv(h)
            skips.append(h)
        d = self.bottom(h)
        for conv, skip in zip(self.decoder, reversed(skips)):
            if not self.dilated:
                d = _upsample_like(d, skip)
            d = conv(torch.cat((d, skip), dim=1))
        return d + hx_in


class RSU7(RSU):
    """RSU of height 7. (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__(7, in_ch, mid_ch, out_ch)


class RSU6(RSU):
    """RSU of height 6. (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__(6, in_ch, mid_ch, out_ch)


class RSU5(RSU):
    """RSU of height 5. (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__(5, in_ch, mid_ch, out_ch)


class RSU4(RSU):
    """RSU of height 4. (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__(4, in_ch, mid_ch, out_ch)


class RSU4F(RSU):
    """Dilated RSU of height 4 (no pooling). (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__(4, in_ch, mid_ch, out_ch, dilated=True)


class U2NetP(nn.Module):
    """The small U²-Net (about 1.1 M parameters).

    Input: (B, in_ch, H, W) float, an RGB image scaled to 0..1 then
    ImageNet-normalised (mean 0.485 0.456 0.406, std 0.229 0.224 0.225). The
    released weights were trained at 320x320, but any H, W >= 1 runs.

    Output: ``forward(x)`` gives the fused saliency map d0, (B, out_ch, H, W)
    in [0, 1] (sigmoid applied). ``forward(x, return_sides=True)`` gives the
    tuple (d0, d1, ..., d6), each (B, out_ch, H, W) in [0, 1]: d1..d6 are the
    side outputs of stage1d, stage2d, stage3d, stage4d, stage5d, stage6
    upsampled to the input size, d0 is their 1x1-conv fusion.
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 1, mid_ch: int = 16, block_ch: int = 64) -> None:
        super().__init__()
        m, c = mid_ch, block_ch
        # Declaration order == execution order (the converter depends on it).
        self.stage1 = RSU7(in_ch, m, c)
        self.stage2 = RSU6(c, m, c)
        self.stage3 = RSU5(c, m, c)
        self.stage4 = RSU4(c, m, c)
        self.stage5 = RSU4F(c, m, c)
        self.stage6 = RSU4F(c, m, c)
        self.stage5d = RSU4F(2 * c, m, c)
        self.stage4d = RSU4(2 * c, m, c)
        self.stage3d = RSU5(2 * c, m, c)
        self.stage2d = RSU6(2 * c, m, c)
        self.stage1d = RSU7(2 * c, m, c)
        self.side1 = SideConv(c, out_ch)
        self.side2 = SideConv(c, out_ch)
        self.side3 = SideConv(c, out_ch)
        self.side4 = SideConv(c, out_ch)
        self.side5 = SideConv(c, out_ch)
        self.side6 = SideConv(c, out_ch)
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def features(self, x: Tensor, sides: bool = True) -> tuple[Tensor, tuple[Tensor, ...]]:
        """x: (B, in_ch, H, W) normalised -> (hx1d, logits): the last decoder block's
        features (B, block_ch, H, W) and the fused and side logits (d0, d1, ..., d6),
        each (B, out_ch, H, W); with ``sides=False`` the logits may hold d0 alone."""
        if x.dim() != 4:
            raise ValueError(f"U2NetP expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        return self.top(x, self.trunk(x), sides)

    def trunk(self, x: Tensor) -> tuple[Tensor, ...]:
        """Everything but the last decoder block: x (B, in_ch, H, W) -> (hx1, hx2d, hx3d,
        hx4d, hx5d, hx6), stage1's features at the input size, then the decoder's from
        half the size down (each (B, block_ch, h, w))."""
        hx1 = self.stage1(x)
        hx2 = self.stage2(_pool(hx1))
        hx3 = self.stage3(_pool(hx2))
        hx4 = self.stage4(_pool(hx3))
        hx5 = self.stage5(_pool(hx4))
        hx6 = self.stage6(_pool(hx5))
        hx5d = self.stage5d(torch.cat((_upsample_like(hx6, hx5), hx5), dim=1))
        hx4d = self.stage4d(torch.cat((_upsample_like(hx5d, hx4), hx4), dim=1))
        hx3d = self.stage3d(torch.cat((_upsample_like(hx4d, hx3), hx3), dim=1))
        hx2d = self.stage2d(torch.cat((_upsample_like(hx3d, hx2), hx2), dim=1))
        return hx1, hx2d, hx3d, hx4d, hx5d, hx6

    def top(self, x: Tensor, trunk: tuple[Tensor, ...], sides: bool = True) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The last decoder block and the side outputs over `trunk(x)`: see `features`
        (here every side is needed for the fusion, so `sides` changes nothing)."""
        hx1, hx2d, hx3d, hx4d, hx5d, hx6 = trunk
        hx1d = self.stage1d(torch.cat((_upsample_like(hx2d, hx1), hx1), dim=1))
        # Side outputs (logits), all at the input size, and their fusion.
        d1 = self.side1(hx1d)
        d2 = _upsample_like(self.side2(hx2d), d1)
        d3 = _upsample_like(self.side3(hx3d), d1)
        d4 = _upsample_like(self.side4(hx4d), d1)
        d5 = _upsample_like(self.side5(hx5d), d1)
        d6 = _upsample_like(self.side6(hx6), d1)
        d0 = self.outconv(torch.cat((d1, d2, d3, d4, d5, d6), dim=1))
        return hx1d, (d0, d1, d2, d3, d4, d5, d6)

    def forward(self, x: Tensor, return_sides: bool = False) -> Tensor | tuple[Tensor, ...]:
        """x: (B, in_ch, H, W) normalised -> d0 (B, out_ch, H, W) in [0, 1],
        or (d0, d1, ..., d6) when ``return_sides`` is true."""
        _, logits = self.features(x, sides=return_sides)
        if not return_sides:
            return torch.sigmoid(logits[0])
        return tuple(torch.sigmoid(d) for d in logits)


class U2NetPHalfTop(U2NetP):
    """U2NetP whose last decoder block (stage1d) and fusion run at half the input size.

    Two thirds of U2NetP's arithmetic is at the input size, and most of it is stage1d
    (its 128 -> 64 input convolution alone is a third of the net). Here stage1d takes
    stage2d's output as it is, beside stage1's features average-pooled 2x2, the side
    outputs are fused at that size, and the logits (one channel each) are resized
    bilinearly to the input size: about half the net's time on a CPU. The encoder
    (stage1 included) still sees the full input. Same parameters and state_dict keys as
    `U2NetP`; its weights are distilled from a `U2NetP` (`tools/distill_half_top.py`).

    Input and output as `U2NetP`: (B, in_ch, H, W) -> (B, out_ch, H, W).
    """

    def top(self, x: Tensor, trunk: tuple[Tensor, ...], sides: bool = True) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The last decoder block at half size: (hx1d, logits) with stage1d's features
        (B, block_ch, ceil(H/2), ceil(W/2)) and the logits (d0, ..., d6) each
        (B, out_ch, H, W), resized from half size; with ``sides=False`` (d0,) alone: the
        side logits are then not resized, which only training reads."""
        hx1, hx2d, hx3d, hx4d, hx5d, hx6 = trunk
        # stage2d's size is ceil(H/2) x ceil(W/2), which 2x2 average pooling with
        # ceil_mode gives for stage1's features too (edge windows average what they hold)
        hx1d = self.stage1d(torch.cat((hx2d, F.avg_pool2d(hx1, 2, ceil_mode=True)), dim=1))
        d1 = self.side1(hx1d)
        d2 = self.side2(hx2d)
        d3 = _upsample_like(self.side3(hx3d), d1)
        d4 = _upsample_like(self.side4(hx4d), d1)
        d5 = _upsample_like(self.side5(hx5d), d1)
        d6 = _upsample_like(self.side6(hx6), d1)
        d0 = self.outconv(torch.cat((d1, d2, d3, d4, d5, d6), dim=1))
        return hx1d, tuple(_upsample_like(d, x) for d in ((d0, d1, d2, d3, d4, d5, d6) if sides else (d0,)))
