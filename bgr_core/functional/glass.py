"""Glass (window) detection and window correction as pure functions.

Detection (`detect_glass`) finds the windscreen, rear window and side windows of the
vehicle from the image and its alpha matte, as a soft (B, 1, H, W) map in [0, 1]
(1 = glass). It works on a small copy of the vehicle's crop (long side `work_size`,
256 px by default), with NumPy and OpenCV:

1. cues per pixel, all relative to the silhouette so that they hold whatever the
   image size (`glass_features`): position in the vehicle box and below the
   silhouette's top edge, distance to the silhouette's sides and outline, colour
   (CIE Lab, chroma) and its difference from the body paint (the dominant colour of
   the lower body), likeness to the background ring just outside the matte (glass
   continues the outside background), local texture and edges, darkness relative to
   the neighbourhood, and the same cues blurred at two scales and sampled above,
   below, left and right of the pixel (glass sits between roof and belt line, between
   pillars; `bgr_core.functional.glass_features`);
2. a per-pixel glass probability from these cues (`glass_probability`): a logistic
   layer over 16 tanh units (`bgr_core.models.glass_cues.GlassCueNet`, its weights the
   file ``weights/glass_cues.safetensors``, calibrated on half of the Car Parts photos:
   its metadata says how), passed in as `cues`;
3. a per-image refinement (`refine_glass`): GrabCut (Rother et al. 2004) seeded by the
   probability learns this car's glass and body colours and snaps the region to the
   window frames;
4. back at full resolution (torch, on the input's device and dtype): bilinear
   upsampling and a guided filter on the image, limited to the vehicle silhouette
   (enclosed holes of the matte included: windows that the matte saw through).

Glass is never marked outside the silhouette: ``glass <= support`` where support is
the alpha matte with its enclosed holes filled.

`background_likeness` (torch, (B, 1, H, W)) tells which glass pixels show the outside
world rather than the vehicle's interior. The correction itself (tint, see-through) is
`bgr_core.functional.glass_finish`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .glass_features import BAND, FEATURE_NAMES, glass_features, lab_colours, ring_likeness
from .grabcut import grab_cut
from .guided_filter import guided_upsample, resize_window, upsample_window
from .matte import fill_holes

__all__ = [
    "WORK_SIZE",
    "FEATURE_NAMES",
    "glass_features",
    "glass_probability",
    "refine_glass",
    "detect_glass",
    "vehicle_crops",
    "BAND",
    "background_likeness",
]

WORK_SIZE = 256
def glass_probability(features: np.ndarray, cues: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """(..., n_features) cues → (...) probability that the pixel is glass, with the cue
    model's parameters `cues` ((W1, b1, w2, b2) float32: `GlassCueNet.numpy_params()`,
    from `bgr_core.loaders.load_glass_cues`)."""
    # Torch's matrix product, not NumPy's: NumPy's OpenBLAS keeps its own worker threads
    # spinning for a while after each product, and on a small CPU they take the cores
    # from torch's threads in the stages that follow (a one-call photo 224-235 -> 172-183
    # ms on 2 cores, README Throughput).
    w1, b1, w2, b2 = (torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)) for c in cues)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    hidden = torch.tanh(x @ w1 + b1)
    return torch.sigmoid(hidden @ w2 + b2).numpy()


def refine_glass(
    prob: np.ndarray,
    rgb: np.ndarray,
    domain: np.ndarray,
    *,
    low: float = 0.25,
    high: float = 0.85,  # 0.6 marked more: glass recall 0.881 but 10.1 % outside the glass
    sure: float = 0.9,
    # 3: glass recall / outside share 0.873 / 0.091 held out, 0.885 / 0.083 on the fit
    # half; 2: 0.871 / 0.089 and 0.883 / 0.082, and the window stage 79.6 -> 69.1 ms
    iterations: int = 2,
    keep_min: float = 0.1,
) -> np.ndarray:
    """GrabCut seeded by the glass probability: (h, w) bool glass.

    GrabCut's colour models start from k-means over a sample of each class
    (`bgr_core.functional.grabcut`: 7 of its 31 ms saved, the glass figures unchanged).

    Pixels of `domain` with ``prob >= high`` start as probable glass (``>= sure``:
    certain), those with ``low <= prob < high`` as probable body, everything else is
    certainly not glass. Pixels outside `domain` are painted with the body colour so
    that the background does not enter the "not glass" colour model (glass often
    looks like the background). When GrabCut keeps less than `keep_min` of the
    probable glass, the colours could not tell glass from body and the probable glass
    itself is returned.
    """
    mask = np.full(prob.shape, cv2.GC_BGD, np.uint8)
    mask[domain & (prob >= low)] = cv2.GC_PR_BGD
    mask[domain & (prob >= high)] = cv2.GC_PR_FGD
    mask[domain & (prob >= sure)] = cv2.GC_FGD
    n_glass = int(((mask == cv2.GC_PR_FGD) | (mask == cv2.GC_FGD)).sum())
    if n_glass < 10:
        return np.zeros(prob.shape, bool)
    work = rgb.copy()
    body = domain & (prob < low)
    fill = np.median(rgb[body], 0) if body.sum() > 10 else np.median(rgb[domain], 0)
    work[~domain] = fill.astype(np.uint8)
    cv2.setRNGSeed(0)
    try:
        mask = grab_cut(work, mask, iterations)
    except cv2.error:  # degenerate colour models (e.g. a flat image): keep the seeds
        return prob >= high
    glass = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    seeds = domain & (prob >= high)
    if glass.sum() < keep_min * seeds.sum():
        # glass and body too alike in colour (dark glass on a dark car): GrabCut lost
        # the windows, trust the per-pixel probability
        return seeds
    return glass


# -- detection ------------------------------------------------------------------------


def _crop(mask: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) around the True pixels of `mask`, grown by `margin` x the larger side."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))  # cheaper than np.nonzero
    if len(rows) == 0:
        return None
    h, w = mask.shape
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pad = int(math.ceil(margin * max(y1 - y0, x1 - x0)))
    return max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)


def _vehicles(inside: np.ndarray, min_share: float = 0.15) -> list[np.ndarray]:
    """Split a silhouette into vehicles: (h, w) bool → one (h, w) bool mask per vehicle.

    Cars side by side often touch in the matte through a thin bridge (a shadow, a gap
    seen between them); an opening of ~4 % of the silhouette's height breaks it. Parts
    with at least `min_share` of the largest one's area count as vehicles; each gets the
    pixels of `inside` near it. One vehicle: the silhouette itself.

    The opening runs on the silhouette at half size (above 64 px), where its elliptical
    kernel has a quarter of the elements and the image a quarter of the pixels: about
    3.5 of 4.2 ms a photo saved; the parts' labels come back at full size (nearest).
    """
    rows = np.flatnonzero(inside.any(1))
    k = max(1, round(0.04 * (rows[-1] - rows[0] + 1)))
    mask = inside.astype(np.uint8)
    h, w = mask.shape
    half = min(h, w) > 64
    if half:  # a pixel of the half-size silhouette is inside where most of its 2x2 block is
        mask = cv2.resize(mask, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    kh = max(1, round(k / 2)) if half else k
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * kh + 1, 2 * kh + 1))
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if n <= 2:
        return [inside]
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = [i + 1 for i in np.flatnonzero(areas >= min_share * areas.max())]
    if len(big) <= 1:
        return [inside]
    if half:
        labels = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * k + 3, 4 * k + 3))
    return [cv2.dilate((labels == i).astype(np.uint8), grow).astype(bool) & inside for i in big]


def vehicle_crops(image: Tensor, alpha: Tensor, work_size: int) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]]:
    """Each vehicle's crop (with an 8 % margin) on a small canvas.

    Returns one ``(rgb, a_small, (y0, y1, x0, x1))`` per vehicle (none when the matte
    is empty): (h, w, 3) uint8 RGB and (h, w) float32 matte of that vehicle only, long
    side <= `work_size`, and the crop in full-resolution pixels.
    """
    H, W = image.shape[-2:]
    scale0 = min(1.0, 2 * work_size / max(H, W))
    small = (max(1, round(H * scale0)), max(1, round(W * scale0)))
    if small == (H, W):  # "area" to the same size is a copy
        a_small = alpha[0].float().cpu().numpy()
    else:
        a_small = F.interpolate(alpha[None].float(), size=small, mode="area")[0, 0].cpu().numpy()
    inside = a_small > 0.5
    if inside.sum() < 16:
        return []
    sy, sx = H / small[0], W / small[1]
    result = []
    regions = _vehicles(inside)
    for region in regions:
        box = _crop(region, 0.08)
        if box is None:
            continue
        cy0, cy1 = int(box[0] * sy), min(H, int(math.ceil(box[1] * sy)))
        cx0, cx1 = int(box[2] * sx), min(W, int(math.ceil(box[3] * sx)))
        ch, cw = cy1 - cy0, cx1 - cx0
        s = min(1.0, work_size / max(ch, cw))
        size = (max(8, round(ch * s)), max(8, round(cw * s)))
        mode = {"mode": "area"} if s < 1 else {"mode": "bilinear", "align_corners": False}
        rgb_t = F.interpolate(image[None, :, cy0:cy1, cx0:cx1].float(), size=size, **mode)
        a_t = F.interpolate(alpha[None, :, cy0:cy1, cx0:cx1].float(), size=size, **mode)
        a_np = a_t[0, 0].cpu().numpy()
        if len(regions) > 1:  # this vehicle only
            own = region[box[0] : box[1], box[2] : box[3]].astype(np.float32)
            own = cv2.resize(own, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0.25
            a_np = a_np * own
        rgb = (rgb_t[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        result.append((rgb, a_np.astype(np.float32), (cy0, cy1, cx0, cx1)))
    return result


def _detect_one(
    image: Tensor, alpha: Tensor, cues, work_size: int, refine: bool, threshold: float, edge_radius: int, likeness: bool
) -> tuple[Tensor, Tensor | None]:
    """(3, H, W), (1, H, W) → (1, H, W) soft glass (and background likeness), float32."""
    H, W = image.shape[-2:]
    out = torch.zeros(1, H, W, device=image.device, dtype=torch.float32)
    like_out = torch.zeros_like(out) if likeness else None
    for rgb, aw, (cy0, cy1, cx0, cx1) in vehicle_crops(image, alpha, work_size):
        inside = aw > 0.5
        if inside.sum() < 64:
            continue
        support = fill_holes(inside, max_frac=math.inf)  # every hole: the windows
        lab = lab_colours(rgb)  # for the cues and the likeness alike
        feats, r = glass_features(rgb, support, lab)
        domain = support & (r < BAND)
        prob = np.zeros(support.shape, np.float32)
        prob[domain] = glass_probability(feats[domain], cues)
        glass = refine_glass(prob, rgb, domain) if refine else prob >= threshold
        if not glass.any():
            continue
        ch, cw = cy1 - cy0, cx1 - cx0
        crop_img = image[None, :, cy0:cy1, cx0:cx1].float()
        holes = (support & ~inside).astype(np.float32)
        # back to full resolution: edge-aware (coefficients on the small canvas, applied
        # to the full-resolution image as guide), or bilinear; only on the window that
        # the glass can reach (its box on the small canvas grown by the filter's two box
        # means and the bilinear step): elsewhere the upsampled glass is 0
        wy0, wy1, wx0, wx1 = upsample_window(glass, (ch, cw), edge_radius)
        win = (wy0, wy1, wx0, wx1)
        g_small = torch.from_numpy(glass.astype(np.float32))[None, None].to(image.device)
        if edge_radius > 0:
            glass_full = guided_upsample(crop_img.mean(1, keepdim=True), g_small, edge_radius, 1e-3, window=win)
        else:
            glass_full = resize_window(g_small, (ch, cw), win)
        holes_full = resize_window(torch.from_numpy(holes)[None, None].to(image.device), (ch, cw), win)
        # never outside the silhouette (its enclosed holes count as inside)
        crop_a = alpha[None, :, cy0 + wy0 : cy0 + wy1, cx0 + wx0 : cx0 + wx1].float()
        support_full = torch.maximum(crop_a, holes_full.clamp(0, 1))
        glass_full = torch.minimum(glass_full.clamp(0, 1), support_full)
        ys, xs = slice(cy0 + wy0, cy0 + wy1), slice(cx0 + wx0, cx0 + wx1)
        out[:, ys, xs] = torch.maximum(out[:, ys, xs], glass_full[0])
        if like_out is not None:  # only read where there is glass
            like = _likeness_small(rgb, aw, glass, lab)
            if like is not None:
                up = resize_window(torch.from_numpy(like)[None, None].to(image.device), (ch, cw), win)
                like_out[:, ys, xs] = torch.maximum(like_out[:, ys, xs], up[0].clamp(0, 1))
    return out, like_out


def detect_glass(
    image: Tensor,
    alpha: Tensor,
    cues: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    work_size: int = WORK_SIZE,
    refine: bool = True,
    threshold: float = 0.5,
    edge_radius: int | None = None,
    likeness: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Soft glass mask of each vehicle: windscreen, rear window and side windows.

    Args:
        image: (B, 3, H, W) RGB in [0, 1].
        alpha: (B, 1, H, W) vehicle matte in [0, 1] on the same canvas.
        cues: the cue model's parameters (`glass_probability`): ``
            bgr_core.loaders.load_glass_cues().numpy_params()``.
        work_size: long side of the vehicle crop on which glass is searched.
        refine: GrabCut refinement of the per-pixel probability (off: threshold it).
        threshold: level of the probability that counts as glass when `refine` is off.
        edge_radius: guided-filter radius (full-resolution pixels) of the upsampling;
            default ~0.4 % of the image diagonal; 0 = bilinear only.
        likeness: also return `background_likeness` of the glass (computed on the same
            small canvases, cheaper than calling it afterwards).
    Returns:
        (B, 1, H, W) in [0, 1], image's device and dtype; 0 wherever the matte (with
        its enclosed holes filled) is 0. With `likeness`: (glass, likeness).
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    if alpha.ndim != 4 or alpha.shape[1] != 1 or alpha.shape[-2:] != image.shape[-2:] or alpha.shape[0] != image.shape[0]:
        raise ValueError(f"alpha must be (B, 1, H, W) matching the image, got {tuple(alpha.shape)}")
    H, W = image.shape[-2:]
    if edge_radius is None:
        edge_radius = max(1, round(0.004 * math.hypot(H, W)))
    with torch.no_grad():
        outs = [
            _detect_one(image[b], alpha[b], cues, int(work_size), refine, threshold, int(edge_radius), likeness)
            for b in range(image.shape[0])
        ]
    glass = torch.stack([g for g, _ in outs]).to(image.dtype)
    if likeness:
        return glass, torch.stack([lk for _, lk in outs]).to(image.dtype)
    return glass


# -- what shows through the glass -----------------------------------------------------


def _likeness_small(rgb: np.ndarray, aw: np.ndarray, gl: np.ndarray, lab: np.ndarray | None = None) -> np.ndarray | None:
    """`background_likeness` on one vehicle's small canvas (`gl`: its glass, bool);
    None when it has no glass."""
    size = aw.shape
    inside = aw > 0.5
    if gl.sum() < 10:
        return None
    lab = lab_colours(rgb) if lab is None else lab
    k = max(2, int(0.04 * max(size)))
    grown = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    ring = grown.astype(bool) & ~inside
    rows = np.nonzero(gl)[0]
    ring[: max(0, rows.min() - 2 * k)] = False
    ring[rows.max() + 2 * k :] = False
    L = lab[..., 0]
    dark = gl & (L <= np.percentile(L[gl], 25))
    colour = ring_likeness(lab, ring, dark)
    light = np.clip((L - 18.0) / 25.0, 0, 1)
    like = np.clip(0.5 * colour + 0.5 * light, 0, 1).astype(np.float32)
    return cv2.GaussianBlur(like, (0, 0), max(1.0, 0.01 * max(size)))


def background_likeness(image: Tensor, alpha: Tensor, glass: Tensor, *, work_size: int = WORK_SIZE) -> Tensor:
    """How much each glass pixel looks like the outside world rather than the vehicle's
    interior, (B, 1, H, W) in [0, 1] (0 outside the vehicle's crop).

    On a small copy of the vehicle's crop, the colours of the glass are compared (Lab
    histograms) with the background ring just outside the matte, level with the glass,
    and with the darkest quarter of the glass (interiors are dark); the result is mixed
    with lightness (the outside seen or mirrored in glass is rarely as dark as an
    interior) and blurred, so it can weight a blend.
    """
    b, _, h, w = image.shape
    out = torch.zeros(b, 1, h, w, device=image.device, dtype=torch.float32)
    for i in range(b):
        for rgb, aw, (y0, y1, x0, x1) in vehicle_crops(image[i], alpha[i], work_size):
            size = aw.shape
            crop = glass[i : i + 1, :, y0:y1, x0:x1].float()
            g = F.interpolate(crop, size=size, mode="area" if crop.shape[-2] > size[0] else "bilinear")
            like = _likeness_small(rgb, aw, g[0, 0].cpu().numpy() >= 0.5)
            if like is None:
                continue
            up = F.interpolate(torch.from_numpy(like)[None, None].to(image.device), size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
            out[i, :, y0:y1, x0:x1] = torch.maximum(out[i, :, y0:y1, x0:x1], up[0].clamp(0, 1))
    return out.to(image.dtype)
