"""Box filter and guided filter (He, Sun, Tang, "Guided Image Filtering", TPAMI 2013;
He, Sun, "Fast Guided Filter", arXiv 1505.00996) as pure tensor functions.

Every function takes (B, C, H, W) tensors and returns tensors on the input's device
and in the input's dtype. Half-precision inputs are computed in float32 inside (the
running sums of the box filter need it) and cast back.

- `box_sum` / `box_filter`: sum / mean over a (2r+1)x(2r+1) window, clipped at the
  borders (the mean divides by the number of pixels really inside the image), with
  separable cumulative sums: O(1) per pixel whatever the radius. float32 tensors on the
  CPU go through OpenCV's running-sum box filter instead (4-5x faster than the cumsums
  there, same sums within float32 rounding); CUDA keeps the cumsums.
- `guided_filter`: edge-preserving smoothing of ``src`` guided by ``guide`` (gray or
  colour); used here to snap a low-resolution matte to the image's edges.
- `fast_guided_filter`: the same with the linear coefficients computed on a
  subsampled copy and upsampled bilinearly, for large images; also the natural way to
  upsample a low-resolution matte to a high-resolution guide (`guided_upsample`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "guided_coefficients_on_tiles",
    "box_sum",
    "box_filter",
    "guided_filter",
    "guided_coefficients",
    "fast_guided_filter",
    "guided_upsample",
    "resize_window",
    "upsample_window",
]


def _work_dtype(x: Tensor) -> torch.dtype:
    """float32 for half / bfloat16 / integer inputs, else the input's own float dtype."""
    if x.dtype in (torch.float32, torch.float64):
        return x.dtype
    return torch.float32


def _check4(name: str, x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) tensor, got shape {tuple(x.shape)}")


def _cumsum_window(x: Tensor, radius: int, dim: int) -> Tensor:
    """Sum over [i - r, i + r] along `dim` (zeros outside), same length as the input."""
    n = x.shape[dim]
    pad = [0, 0] * (x.dim() - dim - 1) + [radius + 1, radius]
    # F.pad pads from the last dim backwards: build the list for `dim` only.
    c = torch.cumsum(F.pad(x, pad), dim=dim)
    hi = c.narrow(dim, 2 * radius + 1, n)
    lo = c.narrow(dim, 0, n)
    return hi - lo


# planes of at most this many pixels count as small (see `_window_sum`)
SMALL_PLANE = 64 * 64


def _window_sum(x: Tensor, radius: int) -> Tensor:
    """(B, C, H, W) float32/float64 → sums over the (2r+1)^2 window, zeros outside."""
    # OpenCV's running sums per plane on the CPU, except for many small planes (the tiles
    # of `compose.estimate_foreground`), where a call per plane costs more than the sums
    small = x.shape[-2] * x.shape[-1] <= SMALL_PLANE and x.shape[0] * x.shape[1] > 16
    if x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad and not small:
        planes = x.detach().reshape(-1, *x.shape[-2:]).contiguous().numpy()
        out = np.empty_like(planes)
        k = 2 * radius + 1
        for i, plane in enumerate(planes):
            # BORDER_CONSTANT: zeros outside, like the padded cumsums.
            out[i] = cv2.boxFilter(plane, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
        return torch.from_numpy(out).view(x.shape)
    return _cumsum_window(_cumsum_window(x, radius, 2), radius, 3)


def box_sum(x: Tensor, radius: int) -> Tensor:
    """Sum of `x` over a (2r+1)x(2r+1) window around every pixel, zeros outside the image.

    x: (B, C, H, W) any float dtype; radius: int >= 0 (any size, also larger than the
    image). Returns (B, C, H, W), same device and dtype. Cost O(1) per pixel in `radius`.
    """
    _check4("x", x)
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0:
        return x.clone()
    work = x.to(_work_dtype(x))
    return _window_sum(work, radius).to(x.dtype)


def _counts(h: int, w: int, radius: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(1, 1, H, W) number of image pixels inside each (2r+1)^2 window."""
    def line(n: int) -> Tensor:
        i = torch.arange(n, device=device, dtype=dtype)
        return (torch.clamp(i + radius, max=n - 1) - torch.clamp(i - radius, min=0) + 1)

    return (line(h)[:, None] * line(w)[None, :])[None, None]


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean of `x` over a (2r+1)x(2r+1) window around every pixel, clipped at the borders.

    x: (B, C, H, W) float, any range; radius: int >= 0. Returns (B, C, H, W), same
    device and dtype; a constant image stays exactly constant (up to rounding), also at
    the borders, because each window is divided by the count of pixels inside the image.
    """
    _check4("x", x)
    radius = int(radius)
    if radius == 0:
        return x.clone()
    work = x.to(_work_dtype(x))
    h, w = x.shape[-2:]
    summed = _window_sum(work, radius)  # a new tensor: divided in place
    return summed.div_(_counts(h, w, radius, x.device, work.dtype)).to(x.dtype)


def _solve_sym(var: list[list[Tensor]], cov: list[Tensor]) -> list[Tensor]:
    """Solve var @ a = cov per pixel for a symmetric 1x1 or 3x3 `var` (lists of maps).

    var[i][j]: (B, 1, H, W); cov[i]: (B, C, H, W). Returns a[i]: (B, C, H, W).
    """
    k = len(cov)
    if k == 1:
        return [cov[0] / var[0][0]]
    if k == 3:
        a, b, c = var[0][0], var[0][1], var[0][2]
        d, e = var[1][1], var[1][2]
        f = var[2][2]
        # Adjugate of the symmetric matrix [[a b c] [b d e] [c e f]].
        i00 = d * f - e * e
        i01 = c * e - b * f
        i02 = b * e - c * d
        i11 = a * f - c * c
        i12 = b * c - a * e
        i22 = a * d - b * b
        det = a * i00 + b * i01 + c * i02
        inv = 1.0 / det
        x0 = (i00 * cov[0] + i01 * cov[1] + i02 * cov[2]) * inv
        x1 = (i01 * cov[0] + i11 * cov[1] + i12 * cov[2]) * inv
        x2 = (i02 * cov[0] + i12 * cov[1] + i22 * cov[2]) * inv
        return [x0, x1, x2]
    # General case: batched solve on (B, H, W, k, k).
    mat = torch.stack([torch.cat(row, dim=1) for row in var], dim=1)  # (B, k, k, H, W)
    rhs = torch.stack(cov, dim=1)  # (B, k, C, H, W)
    sol = torch.linalg.solve(mat.permute(0, 3, 4, 1, 2), rhs.permute(0, 3, 4, 1, 2))
    sol = sol.permute(0, 3, 4, 1, 2)  # (B, k, C, H, W)
    return [sol[:, i] for i in range(k)]


def guided_coefficients(guide: Tensor, src: Tensor, radius: int, eps: float) -> tuple[Tensor, Tensor]:
    """The linear coefficients (A, b) of the guided filter, already box-averaged.

    guide: (B, G, H, W) float (G = 1 gray or 3 colour, any G works), values in [0, 1]
    for the usual `eps`; src: (B, C, H, W) float (a matte in [0, 1]). Returns
    A: (B, G, C, H, W) and b: (B, C, H, W) in the working dtype (float32 / float64) so
    that ``q = sum_g A[:, g] * guide[:, g] + b``. `eps` regularises: larger → smoother,
    ~1e-4..1e-2 for images in [0, 1].
    """
    _check4("guide", guide)
    _check4("src", src)
    if guide.shape[0] != src.shape[0] or guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(f"guide {tuple(guide.shape)} and src {tuple(src.shape)} differ in batch or size")
    dtype = torch.promote_types(_work_dtype(guide), _work_dtype(src))
    g = guide.to(dtype)
    p = src.to(dtype)
    k = g.shape[1]
    mean_i = box_filter(g, radius)  # (B, k, H, W)
    mean_p = box_filter(p, radius)  # (B, C, H, W)
    chans = [g[:, i : i + 1] for i in range(k)]
    means = [mean_i[:, i : i + 1] for i in range(k)]
    cov = [box_filter(chans[i] * p, radius) - means[i] * mean_p for i in range(k)]
    # Second moments of the guide, all pairs in one box-filter call.
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    prods = box_filter(torch.cat([chans[i] * chans[j] for i, j in pairs], dim=1), radius)
    var: list[list[Tensor]] = [[None] * k for _ in range(k)]  # type: ignore[list-item]
    for n, (i, j) in enumerate(pairs):
        v = prods[:, n : n + 1] - means[i] * means[j]
        if i == j:
            v = v + eps
        var[i][j] = v
        var[j][i] = v
    a = _solve_sym(var, cov)  # k maps of (B, C, H, W)
    b = mean_p - sum(a[i] * means[i] for i in range(k))
    stacked = torch.stack(a, dim=1)  # (B, k, C, H, W)
    bsz, _, c, h, w = stacked.shape
    mean_a = box_filter(stacked.reshape(bsz, k * c, h, w), radius).reshape(bsz, k, c, h, w)
    mean_b = box_filter(b, radius)
    return mean_a, mean_b


def _shifted_sum(x: Tensor, radius: int) -> Tensor:
    """`box_sum` as 2 (2 radius + 1) shifted adds: for the small radii and tiles of
    `guided_coefficients_on_tiles` several times cheaper than cumulative sums."""
    n = 2 * radius + 1
    h, w = x.shape[-2:]
    pad = F.pad(x, (radius, radius, radius, radius))
    rows = pad[..., 0:h, :].clone()
    for i in range(1, n):
        rows += pad[..., i : i + h, :]
    out = rows[..., 0:w].clone()
    for i in range(1, n):
        out += rows[..., i : i + w]
    return out


def guided_coefficients_on_tiles(guide: Tensor, src: Tensor, radius: int, eps: float, ty: Tensor, tx: Tensor,
                                 tile: int) -> tuple[Tensor, Tensor]:
    """`guided_coefficients` of a one-channel `src` on some square tiles only.

    guide: (G, H, W) float; src: (1, H, W) float; ty, tx: (N,) long, the tiles' row and
    column in a grid of `tile`-pixel squares from the top-left corner (a last row or
    column may reach past the arrays: those pixels come out as 0). Returns A (N, G, tile,
    tile) and b (N, 1, tile, tile) in float32 (float64 for float64 inputs): on each tile
    what `guided_coefficients(guide[None], src[None], radius, eps)` gives there (its
    windows clipped at the arrays' edges likewise), from the tile and the 2 * radius
    pixels around it only. The sums are taken in float64: over a smooth photo and a
    small `eps`, A reaches ~10 and float32 moments lose it to cancellation.
    """
    out_dtype = torch.promote_types(_work_dtype(guide), _work_dtype(src))
    dtype = torch.float64
    k, (h, w), r = guide.shape[0], guide.shape[-2:], int(radius)
    offsets = torch.arange(tile + 4 * r, device=guide.device) - 2 * r
    ys, xs = ty[:, None] * tile + offsets, tx[:, None] * tile + offsets  # (N, P)
    valid = (((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :])[:, None].to(dtype)
    ys, xs = ys.clamp(0, h - 1), xs.clamp(0, w - 1)
    g = guide[:, ys[:, :, None], xs[:, None, :]].transpose(0, 1).to(dtype) * valid  # (N, k, P, P)
    p = src[:, ys[:, :, None], xs[:, None, :]].transpose(0, 1).to(dtype) * valid
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    # window sums (zeros outside the arrays) over counts = box_filter's clipped means
    sums = _shifted_sum(torch.cat([valid, g, p, g * p, *[g[:, i:i + 1] * g[:, j:j + 1] for i, j in pairs]], dim=1), r)
    count = sums[:, 0:1].clamp_min(1.0)
    mean_i, mean_p = sums[:, 1:1 + k] / count, sums[:, 1 + k:2 + k] / count
    means = [mean_i[:, i:i + 1] for i in range(k)]
    cov = [sums[:, 2 + k + i:3 + k + i] / count - means[i] * mean_p for i in range(k)]
    var: list[list[Tensor]] = [[None] * k for _ in range(k)]  # type: ignore[list-item]
    for n, (i, j) in enumerate(pairs):
        v = sums[:, 2 + 2 * k + n:3 + 2 * k + n] / count - means[i] * means[j]
        var[i][j] = var[j][i] = v + eps if i == j else v
    a = _solve_sym(var, cov)
    b = mean_p - sum(a[i] * means[i] for i in range(k))
    # second pass: the means of A and b over the windows of the tile's own pixels
    second = _shifted_sum(torch.cat([valid, *[x * valid for x in a], b * valid], dim=1), r)
    core = slice(2 * r, 2 * r + tile)
    second = second[..., core, core]
    inside = valid[..., core, core]
    second = (second[:, 1:] / second[:, 0:1].clamp_min(1.0) * inside).to(out_dtype)
    return second[:, :k], second[:, k:]


def _apply(coef_a: Tensor, coef_b: Tensor, guide: Tensor) -> Tensor:
    """q = sum_g A[:, g] * guide[:, g] + b. A: (B, G, C, H, W), b / guide: (B, *, H, W)."""
    g = guide.to(coef_a.dtype)
    # accumulated in place, in the order of a sum over the guide's channels (the same
    # values within float rounding: a fused multiply-add rounds once), so no
    # (B, G, C, H, W) product is ever held
    out = coef_a[:, 0] * g[:, 0:1]
    for i in range(1, coef_a.shape[1]):
        out.addcmul_(coef_a[:, i], g[:, i : i + 1])
    return out.add_(coef_b)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float = 1e-3) -> Tensor:
    """Guided filter of `src` with `guide` (He et al.): edge-preserving smoothing.

    guide: (B, G, H, W) float, G = 1 (gray) or 3 (colour RGB), values in [0, 1];
    src: (B, C, H, W) float on the same (H, W), e.g. an alpha matte in [0, 1];
    radius: window radius in pixels; eps: regularisation (in guide-variance units).
    Returns (B, C, H, W) in src's dtype and device. The output is not clamped: a matte
    should be clamped to [0, 1] by the caller. A constant `src` stays constant; where
    the guide has a strong edge the output follows it.
    """
    coef_a, coef_b = guided_coefficients(guide, src, radius, eps)
    return _apply(coef_a, coef_b, guide).to(src.dtype)


def fast_guided_filter(
    guide: Tensor, src: Tensor, radius: int, eps: float = 1e-3, scale: int = 4
) -> Tensor:
    """Fast guided filter: coefficients on a copy subsampled by `scale`, upsampled bilinearly.

    guide: (B, G, H, W) float in [0, 1]; src: (B, C, H, W) float; radius in full-res
    pixels (divided by `scale` inside, at least 1); scale: int >= 1 (1 = `guided_filter`).
    Returns (B, C, H, W) in src's dtype. Cost ~ 1/scale^2 of the full filter plus one
    bilinear upsampling; the result is visually the same for mattes.
    """
    _check4("guide", guide)
    _check4("src", src)
    scale = max(int(scale), 1)
    if scale == 1:
        return guided_filter(guide, src, radius, eps)
    h, w = guide.shape[-2:]
    size = (max(1, round(h / scale)), max(1, round(w / scale)))
    return guided_upsample(guide, src, radius, eps, low_size=size)


def _low_radius(radius: int, low: tuple[int, int], full: tuple[int, int]) -> int:
    """`radius` (full-resolution pixels) on the low-resolution canvas: the mean of both
    axis scales, at least 1."""
    factor = 0.5 * (low[0] / full[0] + low[1] / full[1])
    return max(1, int(round(radius * factor)))


def _grown_box(nonzero: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) around the True pixels of (h, w) `nonzero`, grown by `margin`
    and clipped to it; None when there are none."""
    rows, cols = np.nonzero(nonzero.any(1))[0], np.nonzero(nonzero.any(0))[0]
    if len(rows) == 0:
        return None
    h, w = nonzero.shape
    return (max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin),
            max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin))


def _axis_weights(n_in: int, n_out: int, lo: int, hi: int, device: torch.device, dtype: torch.dtype):
    """Source indices and weights of output positions lo..hi-1 of a bilinear resize
    (align_corners=False) from n_in to n_out samples, as `F.interpolate` places them."""
    scale = n_in / n_out
    src = ((torch.arange(lo, hi, device=device, dtype=dtype) + 0.5) * scale - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (src - i0.to(dtype)).clamp(0, 1)


def resize_window(x: Tensor, size: tuple[int, int], window: tuple[int, int, int, int]) -> Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)[..., y0:y1, x0:x1]``
    computed for the window (y0, y1, x0, x1) only (equal within float rounding).
    x: (B, C, h, w) float → (B, C, y1 - y0, x1 - x0)."""
    y0, y1, x0, x1 = window
    h, w = x.shape[-2:]
    r0, r1, wr = _axis_weights(h, size[0], y0, y1, x.device, x.dtype)
    c0, c1, wc = _axis_weights(w, size[1], x0, x1, x.device, x.dtype)
    # columns first, on the few low-resolution rows; then whole rows are gathered
    cols = torch.lerp(x.index_select(-1, c0), x.index_select(-1, c1), wc)
    return torch.lerp(cols.index_select(-2, r0), cols.index_select(-2, r1), wr[:, None])


def guided_upsample(
    guide: Tensor,
    src: Tensor,
    radius: int,
    eps: float = 1e-3,
    low_size: tuple[int, int] | None = None,
    window: tuple[int, int, int, int] | None = None,
    sparse: bool = False,
) -> Tensor:
    """Edge-aware upsampling of a low-resolution `src` to the resolution of `guide`.

    guide: (B, G, H, W) float in [0, 1], full resolution; src: (B, C, h, w) float at
    any resolution (e.g. a (B, 1, 320, 320) matte); radius: in full-resolution pixels;
    low_size: the (h', w') on which the coefficients are computed (default: src's own
    size). The guide is area-downsampled and src bilinearly resized to `low_size`, the
    guided-filter coefficients are computed there, upsampled bilinearly to (H, W) and
    applied to the full-resolution guide (He & Sun's fast guided filter).
    window: (y0, y1, x0, x1) in full-resolution pixels: only that part of the output is
    computed and returned (the coefficients still see the whole canvas; the same values
    within float rounding), for a caller that knows the rest is of no use.
    sparse: `src` is zero outside part of the canvas (a matte around one vehicle): the
    filter runs only on the box around its nonzero pixels, grown by three radii (the
    coefficients' two box means and the clipped window counts), and the output is 0
    elsewhere, as the full filter gives there (a window without any `src` has zero
    coefficients). The same values within float rounding, at the cost of that box.
    Returns (B, C, H, W) (or the window) in src's dtype, not clamped.
    """
    if sparse and window is not None:
        raise ValueError("guided_upsample: give `window` or `sparse`, not both")
    _check4("guide", guide)
    _check4("src", src)
    h, w = guide.shape[-2:]
    if low_size is None:
        low_size = (int(src.shape[-2]), int(src.shape[-1]))
    lh, lw = low_size
    dtype = torch.promote_types(_work_dtype(guide), _work_dtype(src))
    g = guide.to(dtype)
    if (lh, lw) == (h, w):
        g_low = g
    elif lh <= h and lw <= w:
        g_low = F.interpolate(g, size=(lh, lw), mode="area")
    else:
        g_low = F.interpolate(g, size=(lh, lw), mode="bilinear", align_corners=False)
    p = src.to(dtype)
    if p.shape[-2:] != (lh, lw):
        p = F.interpolate(p, size=(lh, lw), mode="bilinear", align_corners=False)
    r_low = _low_radius(radius, (lh, lw), (h, w))
    if sparse:
        out = _sparse_upsample(g, g_low, p, radius, r_low, eps)
        if out is not None:
            return out.to(src.dtype)
    coef_a, coef_b = guided_coefficients(g_low, p, r_low, eps)
    bsz, k, c = coef_a.shape[:3]
    if window is not None:
        y0, y1, x0, x1 = window
        wh, ww = y1 - y0, x1 - x0
        coef_a = resize_window(coef_a.reshape(bsz, k * c, lh, lw), (h, w), window).reshape(bsz, k, c, wh, ww)
        coef_b = resize_window(coef_b, (h, w), window)
        return _apply(coef_a, coef_b, g[..., y0:y1, x0:x1]).to(src.dtype)
    if (lh, lw) != (h, w):
        coef_a = F.interpolate(
            coef_a.reshape(bsz, k * c, lh, lw), size=(h, w), mode="bilinear", align_corners=False
        ).reshape(bsz, k, c, h, w)
        coef_b = F.interpolate(coef_b, size=(h, w), mode="bilinear", align_corners=False)
    return _apply(coef_a, coef_b, g).to(src.dtype)


def _sparse_upsample(g: Tensor, g_low: Tensor, p: Tensor, radius: int, r_low: int, eps: float) -> Tensor | None:
    """`guided_upsample` of a `p` that is zero outside a box (see its `sparse`); None
    when the box is most of the canvas (the plain filter is as cheap)."""
    bsz, c, lh, lw = p.shape
    h, w = g.shape[-2:]
    box = _grown_box((p != 0).flatten(0, 1).any(0).cpu().numpy(), 3 * r_low + 2)
    if box is None:
        return torch.zeros(bsz, c, h, w, dtype=p.dtype, device=p.device)
    y0, y1, x0, x1 = box
    if (y1 - y0) * (x1 - x0) > 0.8 * lh * lw:
        return None
    ca, cb = guided_coefficients(g_low[..., y0:y1, x0:x1], p[..., y0:y1, x0:x1], r_low, eps)
    k = ca.shape[1]
    if (lh, lw) == (h, w):
        out = torch.zeros(bsz, c, h, w, dtype=p.dtype, device=p.device)
        out[..., y0:y1, x0:x1] = _apply(ca, cb, g[..., y0:y1, x0:x1])
        return out
    # the upsampling itself stays whole: OpenCV-free bilinear resizing of a window
    # (`resize_window`) is slower than torch's resize of the canvas when the box is large
    coef_a = torch.zeros(bsz, k * c, lh, lw, dtype=ca.dtype, device=ca.device)
    coef_b = torch.zeros(bsz, c, lh, lw, dtype=cb.dtype, device=cb.device)
    coef_a[..., y0:y1, x0:x1] = ca.reshape(bsz, k * c, y1 - y0, x1 - x0)
    coef_b[..., y0:y1, x0:x1] = cb
    coef_a = F.interpolate(coef_a, size=(h, w), mode="bilinear", align_corners=False).reshape(bsz, k, c, h, w)
    coef_b = F.interpolate(coef_b, size=(h, w), mode="bilinear", align_corners=False)
    return _apply(coef_a, coef_b, g)


def upsample_window(src: np.ndarray, full: tuple[int, int], radius: int) -> tuple[int, int, int, int]:
    """Where `guided_upsample` can put anything: (y0, y1, x0, x1) on the full-resolution
    canvas of size `full` that holds every output pixel reached by the nonzero pixels of
    the low-resolution `src` ((h, w) numpy, not all zero), with `radius` in
    full-resolution pixels (0: plain bilinear upsampling). The reach is the nonzero box
    grown by the low-resolution radius twice (the box means of the coefficients and of
    their average) and one pixel for the bilinear step, plus one for rounding."""
    sh, sw = src.shape
    fh, fw = full
    r_low = _low_radius(radius, (sh, sw), full) if radius > 0 else 0
    y0, y1, x0, x1 = _grown_box(src != 0, 2 * r_low + 2)
    return (math.floor(y0 * fh / sh), math.ceil(y1 * fh / sh) if y1 < sh else fh,
            math.floor(x0 * fw / sw), math.ceil(x1 * fw / sw) if x1 < sw else fw)
