"""Pure pieces of the vehicle matte: net input, main-vehicle selection, holes, crop
box for a second pass, merging of passes, edge-aware upsampling.

Dense work is torch on (B, C, H, W) / (1, H, W) tensors and follows the input's device
and dtype; connected components run with OpenCV on small (working-resolution) boolean
maps, as numpy arrays on the CPU.

Conventions: images are float RGB in [0, 1]; probabilities / mattes are float in
[0, 1]; boxes are XYXY in pixels of the map they refer to, origin top-left, x1 / y1
exclusive for integer crop boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .guided_filter import guided_upsample

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalize",
    "net_input",
    "crop_input",
    "work_size",
    "Selection",
    "select_vehicle",
    "fill_holes",
    "keep_region",
    "unsure_share",
    "crop_box",
    "paste_pass",
    "dilate",
    "soft_threshold",
    "soft_range",
    "refine_alpha",
    "mask_box",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# -- net input -----------------------------------------------------------------------


def normalize(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] → ImageNet-normalised (mean 0.485 0.456 0.406, std
    0.229 0.224 0.225), same device and dtype."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _resize(img: Tensor, size: tuple[int, int], antialias: bool) -> Tensor:
    """(B, C, H, W) bilinear resize to `size` (h, w); antialiased when shrinking."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    shrink = img.shape[-2] > size[0] or img.shape[-1] > size[1]
    return F.interpolate(
        img, size=size, mode="bilinear", align_corners=False, antialias=antialias and shrink
    )


def net_input(images: list[Tensor], size: int, antialias: bool = True) -> Tensor:
    """Stack images of any sizes into the net's input.

    images: list of (3, H_i, W_i) float RGB in [0, 1] on one device; size: the net's
    square input side. Each image is resized (not padded: the aspect is squashed, as
    the net was trained) to (size, size), bilinear, antialiased when shrinking, and
    normalised. Returns (B, 3, size, size) float32 (or the images' dtype when wider).
    """
    dtype = torch.promote_types(images[0].dtype, torch.float32)
    out = [_resize(img[None].to(dtype), (size, size), antialias) for img in images]
    return normalize(torch.cat(out, dim=0))


def crop_input(image: Tensor, box: tuple[int, int, int, int], size: int, antialias: bool = True) -> Tensor:
    """(3, H, W) image, integer box (x0, y0, x1, y1) → (1, 3, size, size) normalised crop."""
    x0, y0, x1, y1 = box
    crop = image[None, :, y0:y1, x0:x1]
    dtype = torch.promote_types(image.dtype, torch.float32)
    return normalize(_resize(crop.to(dtype), (size, size), antialias))


def work_size(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(h', w') with the aspect of (h, w) and long side at most `long_side` (never enlarged)."""
    scale = min(1.0, long_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


# -- main vehicle selection --------------------------------------------------------------


@dataclass
class Selection:
    """Main-vehicle components of a binary map (numpy, on the CPU).

    keep: (h, w) bool, the components kept (main vehicle and its split-off pieces);
    main_area: pixels of the main component; n_components: components seen;
    box: (x0, y0, x1, y1) of `keep` in map pixels (x1, y1 exclusive);
    apart: (h, w) bool or None, the components above or below the main one (sharing less
    than half of their rows with it): not this vehicle, nor is the soft haze that joins them;
    confidence: the main component's mean probability (how sure the net is that it is a
    vehicle: 0.96-0.99 on real vehicles, lower on objects it half takes for one).
    """

    keep: np.ndarray
    main_area: int
    n_components: int
    box: tuple[int, int, int, int]
    apart: np.ndarray | None = None
    confidence: float = 1.0


def select_vehicle(
    prob: np.ndarray,
    threshold: float = 0.5,
    min_area: float = 0.002,
    centre_weight: float = 0.5,
    keep_frac: float = 0.1,
    keep_gap: float = 0.03,
) -> Selection | None:
    """Pick the main vehicle among the connected components of ``prob >= threshold``.

    prob: (h, w) float32 numpy in [0, 1] (a working-resolution probability map).
    The main component maximises its probability mass times a centre weight
    ``1 - centre_weight * d`` (d: distance of its centroid from the map centre, 0 at the
    centre, 1 at a corner), so the big, central object wins over a big one at the edge.
    Another component is kept as a piece of the same vehicle (split by a pole, a
    lamp post, a thin low-confidence band) when its area is at least `keep_frac` of the
    main one, it lies within `keep_gap` of the map diagonal from it, and it shares at
    least half of its height with the main one's rows (pieces side by side; a sign or
    lettering above the car does not). Everything else (stray blobs: signs, text,
    fragments of other cars) is dropped; those that fail the row test whatever their
    size (a tree or a sign above the car, lettering or markings on the floor below it)
    are also marked `apart`, so that `keep_region` does not let them back in through the
    soft haze that joins them to the vehicle. Small or far pieces beside the car are not
    (a door mirror that the net sees apart from the body, a few px beyond the gap).
    Returns None when nothing is found or the main component covers less than
    `min_area` of the map.
    """
    h, w = prob.shape
    mask = (prob >= threshold).astype(np.uint8)
    n, labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    mass = np.bincount(labels.ravel(), weights=prob.ravel().astype(np.float64), minlength=n)[1:]
    cx = (cents[1:, 0] + 0.5) / w - 0.5
    cy = (cents[1:, 1] + 0.5) / h - 0.5
    dist = np.sqrt(cx * cx + cy * cy) / np.sqrt(0.5)
    score = mass * (1.0 - centre_weight * dist)
    main = int(np.argmax(score))
    if areas[main] < min_area * h * w:
        return None
    keep_ids = [main + 1]
    apart_ids = []
    if n > 2:
        my0 = stats[1 + main, cv2.CC_STAT_TOP]
        my1 = my0 + stats[1 + main, cv2.CC_STAT_HEIGHT]
        gap = keep_gap * float(np.hypot(h, w))
        far = None
        for j in range(n - 1):
            if j == main:
                continue
            y0, bh = stats[1 + j, cv2.CC_STAT_TOP], stats[1 + j, cv2.CC_STAT_HEIGHT]
            shared = max(0, min(my1, y0 + bh) - max(my0, y0))
            if shared < 0.5 * bh:  # above or below the car, whatever its size
                apart_ids.append(j + 1)
            elif areas[j] >= keep_frac * areas[main]:
                if far is None:
                    far = cv2.distanceTransform((labels != main + 1).astype(np.uint8), cv2.DIST_L2, 3)
                if float(far[labels == j + 1].min()) <= gap:
                    keep_ids.append(j + 1)
            # pieces beside it that are small or far (a door mirror split off by a soft
            # band, a fragment of the next car) are neither kept nor apart: as before,
            # `keep_region` takes them when the soft matte joins them
    lut = np.zeros(n, dtype=bool)
    lut[keep_ids] = True
    keep = lut[labels]
    ks = stats[keep_ids]
    box = (
        int(ks[:, 0].min()),
        int(ks[:, 1].min()),
        int((ks[:, 0] + ks[:, 2]).max()),
        int((ks[:, 1] + ks[:, 3]).max()),
    )
    apart = None
    if apart_ids:
        lut_apart = np.zeros(n, dtype=bool)
        lut_apart[apart_ids] = True
        apart = lut_apart[labels]
    return Selection(keep=keep, main_area=int(areas[main]), n_components=n - 1, box=box, apart=apart,
                     confidence=float(mass[main] / areas[main]))


def fill_holes(mask: np.ndarray, max_frac: float = 1.0) -> np.ndarray:
    """(h, w) bool → the same with its holes (background not connected to the map's
    border) filled, for holes up to `max_frac` of the mask's area. Windows that come
    out as holes in the silhouette are closed this way."""
    m = mask.astype(np.uint8)
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if len(rows) == 0:
        return mask.astype(bool)
    # holes lie inside the mask's box: the components are labelled on that box with a
    # ring of background around it, which joins whatever reaches the box's edge to the
    # outside as the whole map would (the same holes, a fraction of the pixels)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    inv = np.pad(1 - m[y0:y1, x0:x1], 1, constant_values=1)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    if n <= 1:
        return mask.astype(bool)
    h, w = inv.shape
    x, y, bw, bh = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    touches = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    small = stats[:, cv2.CC_STAT_AREA] <= max_frac * max(int(m.sum()), 1)
    hole = ~touches & small
    hole[0] = False  # label 0 is the mask itself
    out = mask.astype(bool)  # a copy
    out[y0:y1, x0:x1] |= hole[labels[1:-1, 1:-1]]
    return out


def keep_region(
    prob: np.ndarray, keep: np.ndarray, low: float = 0.1, reach: int | None = None, apart: np.ndarray | None = None
) -> np.ndarray:
    """(h, w) bool: the components of ``prob >= low`` that touch `keep`, plus `keep`.

    Multiplying a soft matte by this removes stray blobs with their soft halo while the
    soft fringe of the kept vehicle (``low <= prob < threshold``) stays. With `reach`
    (pixels), only the soft pixels within `reach` of `keep` stay: a vehicle's own fringe
    is a few pixels wide, while an unsure haze that the net spreads over what stands
    behind the car (the roof rails of a car parked behind it, a hedge) joins the fringe
    at ``low`` and would come out as a translucent ghost beside the vehicle.
    With `apart` ((h, w) bool, `Selection.apart`: components judged not this vehicle),
    those and every soft pixel nearer to them than to `keep` are left out: a tree or a
    sign above the car that the haze joins at ``low`` stays out, with its halo.
    """
    m = (prob >= low).astype(np.uint8)
    n, labels = cv2.connectedComponents(m, connectivity=8)
    hit = np.zeros(n, dtype=bool)
    hit[np.unique(labels[keep])] = True
    hit[0] = False
    region = hit[labels] | keep
    if apart is not None and (region & apart).any():
        to_keep = cv2.distanceTransform((~keep).astype(np.uint8), cv2.DIST_L2, 3)
        to_apart = cv2.distanceTransform((~apart).astype(np.uint8), cv2.DIST_L2, 3)
        region &= to_keep < to_apart
        region |= keep
    if reach is not None:
        region &= dilate(keep, int(reach))
    return region


def unsure_share(prob: np.ndarray, keep: np.ndarray, low: float = 0.5, high: float = 0.8) -> float:
    """Share of the kept vehicle pixels whose probability lies in ``[low, high)``.

    prob: (h, w) float numpy in [0, 1]; keep: (h, w) bool (`Selection.keep`). A confident
    vehicle is mostly above `high` with a thin fringe; a large unsure share means the net
    hesitated over a whole region (at small input sizes: lettering or a wall joined to
    the car), which is what `VehicleMatte`'s recheck looks for.
    """
    n = int(keep.sum())
    if n == 0:
        return 0.0
    p = prob[keep]
    return float(((p >= low) & (p < high)).sum()) / n


# -- second pass on a crop ---------------------------------------------------------------


def crop_box(
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    margin: float = 0.15,
    square: bool = True,
) -> tuple[int, int, int, int]:
    """Integer crop (x0, y0, x1, y1) around `box` for a second pass of the net.

    box: XYXY of the vehicle in image pixels; size: the image's (H, W); margin: added
    on each side as a share of the box's larger side. With `square`, the crop is made
    square (the net input is square, so the vehicle is not squashed) and shifted to lie
    inside the image; it is clipped only when the image is too small on that axis.
    """
    h, w = size
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    pad = margin * max(bw, bh)
    if square:
        side = max(bw, bh) + 2 * pad
        cw, ch = min(side, w), min(side, h)
    else:
        cw, ch = min(bw + 2 * pad, w), min(bh + 2 * pad, h)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    nx0 = min(max(cx - cw / 2, 0.0), w - cw)
    ny0 = min(max(cy - ch / 2, 0.0), h - ch)
    ix0, iy0 = int(np.floor(nx0)), int(np.floor(ny0))
    ix1, iy1 = min(w, int(np.ceil(nx0 + cw))), min(h, int(np.ceil(ny0 + ch)))
    return ix0, iy0, max(ix1, ix0 + 1), max(iy1, iy0 + 1)


def paste_pass(
    base: Tensor,
    crop_prob: Tensor,
    box: tuple[int, int, int, int],
    image_size: tuple[int, int],
    mode: str = "max",
    feather: float = 0.05,
    limit: Tensor | None = None,
) -> Tensor:
    """Merge a second-pass probability on a crop into the first-pass map.

    base: (1, h, w) first-pass probability on the working canvas (the image scaled to
    (h, w)); crop_prob: (1, s, s) the net's output on the crop; box: the crop in image
    pixels; image_size: the image's (H, W). mode: "max" (union: the crop pass adds
    detail and thin parts, the first pass keeps what the crop missed), "mean", or
    "crop" (the crop pass replaces the first one inside the crop). The crop's border
    band of width `feather` (share of the crop side) blends linearly into `base`, so no
    seam shows where the crop does not reach the image border. limit: optional (1, h, w)
    bool; the crop pass is used only there (e.g. near the first pass's vehicle), so it
    refines the vehicle without adding objects that only stand out on the crop (a sign
    or lettering behind the car). Returns (1, h, w).
    """
    h, w = base.shape[-2:]
    big_h, big_w = image_size
    sx, sy = w / big_w, h / big_h
    x0, y0, x1, y1 = box
    cx0, cy0 = int(round(x0 * sx)), int(round(y0 * sy))
    cx1, cy1 = max(cx0 + 1, int(round(x1 * sx))), max(cy0 + 1, int(round(y1 * sy)))
    ch, cw = cy1 - cy0, cx1 - cx0
    crop = F.interpolate(crop_prob[None].to(base.dtype), size=(ch, cw), mode="bilinear", align_corners=False)[0]
    region = base[:, cy0:cy1, cx0:cx1]
    if mode == "max":
        merged = torch.maximum(region, crop)
    elif mode == "mean":
        merged = 0.5 * (region + crop)
    elif mode == "crop":
        merged = crop
    else:
        raise ValueError(f"unknown merge mode {mode!r}")
    # Feather weights: 1 inside, ramping to 0 at crop edges that are not image edges.
    wy = torch.ones(ch, device=base.device, dtype=base.dtype)
    wx = torch.ones(cw, device=base.device, dtype=base.dtype)
    band_y = max(1, int(round(feather * ch)))
    band_x = max(1, int(round(feather * cw)))
    ramp_y = (torch.arange(band_y, device=base.device, dtype=base.dtype) + 0.5) / band_y
    ramp_x = (torch.arange(band_x, device=base.device, dtype=base.dtype) + 0.5) / band_x
    if cy0 > 0:
        wy[:band_y] = torch.minimum(wy[:band_y], ramp_y)
    if cy1 < h:
        wy[-band_y:] = torch.minimum(wy[-band_y:], ramp_y.flip(0))
    if cx0 > 0:
        wx[:band_x] = torch.minimum(wx[:band_x], ramp_x)
    if cx1 < w:
        wx[-band_x:] = torch.minimum(wx[-band_x:], ramp_x.flip(0))
    weight = (wy[:, None] * wx[None, :])[None]
    if limit is not None:
        weight = weight * limit[:, cy0:cy1, cx0:cx1].to(weight.dtype)
    out = base.clone()
    out[:, cy0:cy1, cx0:cx1] = weight * merged + (1 - weight) * region
    return out


# -- matte refinement --------------------------------------------------------------------


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """(h, w) bool dilated by a disc of `radius` pixels (numpy / OpenCV)."""
    if radius <= 0:
        return mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def soft_threshold(prob: Tensor, low: float = 0.35, high: float = 0.65) -> Tensor:
    """Contrast stretch: 0 below `low`, 1 above `high`, linear in between; same shape,
    device and dtype. Sharpens the net's blurry fringe without moving the ``0.5``
    level when ``low + high == 1``."""
    return ((prob - low) / max(high - low, 1e-6)).clamp(0.0, 1.0)


def soft_range(name: str, value: tuple[float, float] | None) -> tuple[float, float] | None:
    """Check a (low, high) range for `soft_threshold` given as a stage option: None stays
    None, else two floats with ``0 <= low < high <= 1`` (ValueError naming `name`)."""
    if value is None:
        return None
    bad = ValueError(f"{name} must be None or (low, high) with 0 <= low < high <= 1, got {value!r}")
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise bad from None
    if not 0.0 <= low < high <= 1.0:
        raise bad
    return low, high


def refine_alpha(
    image: Tensor,
    prob: Tensor,
    radius: int = 8,
    eps: float = 1e-3,
    guided: bool = True,
) -> Tensor:
    """Upsample a working-resolution matte to the image with an edge-aware filter.

    image: (3, H, W) float RGB in [0, 1] (the guide); prob: (1, h, w) float in [0, 1];
    radius: guided-filter window radius in full-resolution pixels; eps: its
    regularisation. With `guided` False, plain bilinear upsampling. Returns (1, H, W)
    clamped to [0, 1], in prob's dtype, on image's device.
    """
    h, w = image.shape[-2:]
    if not guided:
        if tuple(prob.shape[-2:]) == (h, w):
            return prob.clamp(0.0, 1.0)
        up = F.interpolate(prob[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        return up.clamp(0.0, 1.0)
    # the matte is 0 away from the vehicle (`keep_region`): filter only around it
    out = guided_upsample(image[None], prob[None], radius, eps, sparse=True)[0]
    return out.clamp(0.0, 1.0).to(prob.dtype)


def mask_box(mask: Tensor) -> Tensor | None:
    """(1, H, W) or (H, W) bool → (4,) float XYXY box (x1, y1 exclusive) of the True
    pixels, on the mask's device; None when the mask is empty."""
    m = mask.reshape(mask.shape[-2], mask.shape[-1])
    rows = m.any(dim=1)
    cols = m.any(dim=0)
    if not bool(rows.any()):
        return None
    ys = torch.nonzero(rows).flatten()
    xs = torch.nonzero(cols).flatten()
    return torch.stack([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]).to(torch.float32)
