"""Edge refinement of a vehicle alpha: the pixels of a band around the outline are
re-estimated by a per-pixel patch model (`bgr_core.models.edge_refiner.EdgeRefinerNet`);
every other pixel keeps its alpha, so the refinement can move the edge by a few pixels
but never add or remove a region. A photo whose edges are blurred over several pixels (an
enlarged or soft large photo) is refined on a reduced copy where they are about a pixel
wide, as in the net's training photos (`edge_reduction`), and the change is carried up."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import grown_bounds
from .guided_filter import box_filter

__all__ = ["edge_band", "edge_reduction", "gather_patches", "refine_edges"]

# An edge blurred over b >= 2 pixels looks twice as steep (per pixel) on a copy halved in
# size, a sharp one (b <= 1) no steeper: halving pays while the steepness grows by more
# than the geometric middle of the two.
SHARPER = 2**0.5


def edge_band(alpha: Tensor, radius: int, soft: tuple[float, float] | None = None) -> Tensor:
    """(1, H, W) alpha in [0, 1] → (H, W) bool: pixels within `radius` pixels (a square
    window) of the 0.5 level and, with `soft` (low, high), every pixel whose alpha lies
    strictly between them."""
    inside = (alpha >= 0.5).to(torch.float32)[None]
    # a window holds pixels of both sides iff its mean is strictly between 0 and 1 (a
    # running-sum box filter: far cheaper than two max-pools on a CPU)
    half_pixel = 0.5 / (2 * int(radius) + 1) ** 2
    mean = box_filter(inside, int(radius))[0, 0]
    band = (mean > half_pixel) & (mean < 1.0 - half_pixel)
    if soft is None:
        return band
    return band | ((alpha[0] > soft[0]) & (alpha[0] < soft[1]))


def _block_means(x: Tensor, factor: int = 2) -> Tensor:
    """(C, H, W) → mean over factor x factor blocks, (C, ceil(H / f), ceil(W / f)) (the
    last row and column of blocks over what is left)."""
    return F.avg_pool2d(x[None], factor, ceil_mode=True)[0] if factor > 1 else x


def _steepness(lum: Tensor, alpha: Tensor) -> float:
    """Mean of the steepest quarter of the luminance's one-pixel steps on the alpha's
    outline (its 0.5 level, 1 px either side); 0 without an outline."""
    ys, xs = torch.nonzero(edge_band(alpha, 1), as_tuple=True)
    if ys.numel() == 0:
        return 0.0
    h, w = lum.shape[-2:]
    here = lum[0, ys, xs]
    right = (lum[0, ys, (xs + 1).clamp(max=w - 1)] - here).abs()
    down = (lum[0, (ys + 1).clamp(max=h - 1), xs] - here).abs()
    steps = torch.maximum(right, down)
    return float(steps.topk(max(1, steps.numel() // 4)).values.mean())


def edge_reduction(image: Tensor, alpha: Tensor, max_factor: int = 8) -> int:
    """The factor (1, 2, 4, ... up to `max_factor`) by which to reduce a photo so that its
    edges along the alpha's outline are about a pixel wide, as in the edge refiner's
    training photos.

    image: (3, H, W) float RGB in [0, 1]; alpha: (1, H, W) in [0, 1]. The photo's
    luminance and the alpha are halved (block means) while the outline's steepest steps
    grow by more than `SHARPER` per halving: a sharp photo stays at 1 however large; one
    enlarged 3x (or as soft as that) gets 2-4. On such a photo the refiner, which moves an
    outline by a few of the pixels it was trained on, sees only a slope inside its patch
    and scatters its decisions.
    """
    box = grown_bounds(alpha[0] >= 0.5, 2 * max_factor)
    if box is None:
        return 1
    y0, y1, x0, x1 = box
    lum = image[:, y0:y1, x0:x1].float().mean(dim=0, keepdim=True)
    a = alpha[:, y0:y1, x0:x1].float()
    factor, steep = 1, _steepness(lum, a)
    while factor < max_factor and min(lum.shape[-2:]) >= 16 and steep > 0:
        lum, a = _block_means(lum), _block_means(a)
        half = _steepness(lum, a)
        if half <= SHARPER * steep:
            break
        factor, steep = factor * 2, half
    return factor


def gather_patches(image: Tensor, alpha: Tensor, ys: Tensor, xs: Tensor, patch: int, dilation: int = 1) -> Tensor:
    """Square patches around pixels.

    image: (3, H, W) float in [0, 1]; alpha: (1, H, W) float in [0, 1]; ys, xs: (N,) long
    pixel rows and columns (origin top left); patch: odd side; dilation: the step between
    a patch's samples, taken from a (2 (dilation // 2) + 1)-pixel box mean of the image
    and alpha so that they do not alias (1: the pixels themselves). Returns
    (N, 4, patch, patch) (RGB then alpha), contiguous, in float32 or image's wider float
    dtype, the borders replicated.
    """
    dtype = torch.promote_types(image.dtype, torch.float32)
    stack = torch.cat([image.to(dtype), alpha.to(dtype)], dim=0)[None]
    if dilation > 1:
        stack = box_filter(stack, dilation // 2)
    span = (patch - 1) * dilation + 1
    r = span // 2
    padded = F.pad(stack, (r, r, r, r), mode="replicate")[0]
    # every window as a strided view (H, W, 4, patch, patch), no copy; indexing it copies
    # only the N patches asked for, already in (N, 4, patch, patch) order (about 2.5x
    # faster than gathering by flat offsets, and a quarter faster than indexing the
    # (4, H, W, ...) view and reordering the copy)
    windows = padded.unfold(1, span, 1).unfold(2, span, 1)[..., ::dilation, ::dilation].permute(1, 2, 0, 3, 4)
    return windows[ys.to(image.device), xs.to(image.device)]


def refine_edges(image: Tensor, alpha: Tensor, net: nn.Module, radius: int | None = None, smooth: int = 1,
                 chunk: int = 32768, reduce: int = 1) -> Tensor:
    """Re-estimate the alpha on the band around its outline.

    image: (3, H, W) float RGB in [0, 1]; alpha: (1, H, W) in [0, 1]; net: an
    `EdgeRefinerNet` (its ``patch`` attribute gives the patch side) on any device; radius:
    the band's half-width around the 0.5 level in pixels (`edge_band`; None: the net's own
    ``radius``); smooth: radius of a box mean of the refined alpha, taken over the band's
    pixels (0: none): each pixel is decided on its own, and on low-contrast edges (a dark
    car on dark ground) the decisions scatter; chunk: pixels per net call (bounds
    memory). Wide soft regions of the coarse alpha (a shadow's ramp) away from the 0.5
    level keep their alpha: a per-pixel decision there is speckle; reduce: refine on a
    copy of photo and alpha reduced by this factor (block means; `edge_reduction` picks it)
    and add the change of the alpha, resized back (bilinear), to the full-size one.
    Returns a new (1, H, W) alpha in alpha's dtype on alpha's device.
    """
    if reduce > 1:
        return _refine_reduced(image, alpha, net, radius, smooth, chunk, reduce)
    band = edge_band(alpha, net.radius if radius is None else radius)
    ys, xs = torch.nonzero(band, as_tuple=True)
    out = alpha.clone()
    if ys.numel() == 0:
        return out
    param = next(iter(net.parameters()))
    values = []
    for s in range(0, ys.numel(), chunk):
        yc, xc = ys[s : s + chunk], xs[s : s + chunk]
        parts = [gather_patches(image, alpha, yc, xc, net.patch, d) for d in net.dilations]
        p = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (a copy saved with one)
        values.append(net(p.to(param.device, param.dtype)).to(alpha.device, alpha.dtype))
    out[0, ys, xs] = torch.cat(values)
    if smooth > 0:
        out[0, ys, xs] = box_filter(out[None], smooth)[0, 0, ys, xs]
    return out


def _refine_reduced(image: Tensor, alpha: Tensor, net: nn.Module, radius: int | None, smooth: int, chunk: int,
                    factor: int) -> Tensor:
    """`refine_edges` on block means of photo and alpha around the vehicle, its change of
    the alpha enlarged (bilinear, exactly `factor`) where it is not zero and added."""
    out = alpha.clone()
    # what a patch, the band and the smoothing can reach around the vehicle, in blocks
    reach = net.patch * max(net.dilations) + 2 * smooth + 2 * (net.radius if radius is None else radius) + 4
    # (the guided upsampling leaves traces of ~1e-8 far from the vehicle: not an edge)
    box = grown_bounds(alpha[0] > 1e-3, reach * factor)
    if box is None:
        return out
    y0, y1, x0, x1 = box
    y0, x0 = y0 - y0 % factor, x0 - x0 % factor  # blocks on the photo's own grid
    small = _block_means(alpha[:, y0:y1, x0:x1], factor)
    change = refine_edges(_block_means(image[:, y0:y1, x0:x1], factor), small, net, radius, smooth, chunk) - small
    moved = grown_bounds(change[0] != 0, 2)  # bilinear enlargement of zeros beyond it: zeros
    if moved is None:
        return out
    cy0, cy1, cx0, cx1 = moved
    up = F.interpolate(change[None, :, cy0:cy1, cx0:cx1], scale_factor=factor, mode="bilinear", align_corners=False)[0]
    ty0, tx0 = y0 + cy0 * factor, x0 + cx0 * factor
    ty1, tx1 = min(y1, y0 + cy1 * factor), min(x1, x0 + cx1 * factor)
    out[:, ty0:ty1, tx0:tx1] += up[:, : ty1 - ty0, : tx1 - tx0]
    return out.clamp_(0.0, 1.0)
