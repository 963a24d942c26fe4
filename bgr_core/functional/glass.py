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
   pillars);
2. a per-pixel glass probability from these cues (`glass_probability`): a logistic
   layer over 16 tanh units whose coefficients are constants below, calibrated on
   half of the Car Parts photos (see `_MODEL_NOTE`);
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

from .guided_filter import guided_upsample

__all__ = [
    "WORK_SIZE",
    "FEATURE_NAMES",
    "fill_holes",
    "glass_features",
    "glass_probability",
    "refine_glass",
    "detect_glass",
    "background_likeness",
]

WORK_SIZE = 256
# glass is searched above this share of the vehicle box's height (from the top)
_BAND = 0.6

# -- small maps (NumPy / OpenCV) -------------------------------------------------------


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool → the same with every hole (background not connected to the border) filled."""
    m = mask.astype(np.uint8)
    inv = 1 - m
    n, labels = cv2.connectedComponents(inv, connectivity=4)
    if n <= 1:
        return mask.astype(bool)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    hole = np.ones(n, bool)
    hole[edge] = False
    hole[0] = False  # label 0: the mask itself
    return mask.astype(bool) | hole[labels]


def _nblur(x: np.ndarray, m: np.ndarray, k: float) -> np.ndarray:
    """Mean of `x` over the pixels of weight `m` in a k x k box (normalised convolution)."""
    k = max(3, int(k) | 1)
    return cv2.blur(x * m, (k, k)) / np.maximum(cv2.blur(m, (k, k)), 1e-3)


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`x` moved by (dy, dx): out[y, x] = x[y - dy, x - dx], zeros where nothing comes in."""
    out = np.zeros_like(x)
    h, w = x.shape
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = x[
        max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    return out


def _paint_colour(lab: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """The body paint: centre of the largest of 3 k-means clusters of the Lab colours in `sel`."""
    x = lab[sel].astype(np.float32)
    if len(x) < 30:
        return np.median(lab.reshape(-1, 3), 0)
    if len(x) > 20000:
        x = x[:: len(x) // 20000 + 1]
    cv2.setRNGSeed(0)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(x, 3, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    return centres[np.bincount(labels.ravel(), minlength=3).argmax()]


_LAB_RANGE = [0, 100, -60, 60, -60, 60]


def _ring_likeness(lab: np.ndarray, ring: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """P(ring | colour): how much each pixel's colour looks like the background just
    outside the matte rather than the vehicle's lower body (8x8x8 Lab histograms)."""
    h, w = ring.shape
    if ring.sum() < 20 or inside.sum() < 20:
        return np.full((h, w), 0.5, np.float32)
    bins = [8, 8, 8]
    hr = cv2.calcHist([lab], [0, 1, 2], ring.astype(np.uint8), bins, _LAB_RANGE) + 0.5
    hs = cv2.calcHist([lab], [0, 1, 2], inside.astype(np.uint8), bins, _LAB_RANGE) + 0.5
    hr /= hr.sum()
    hs /= hs.sum()
    ratio = (hr / (hr + hs)).astype(np.float32)
    return cv2.calcBackProject([lab], [0, 1, 2], ratio, _LAB_RANGE, scale=1)


FEATURE_NAMES = (
    # position and shape
    "r", "r2", "d", "d2", "u_centre", "outline_dist",
    # colour
    "L", "chroma", "dL_paint", "abs_dL_paint", "dE_paint", "ring", "texture", "gradient", "rel_dark", "b",
    # the same, blurred at 4 % and 12 % of the vehicle's size
    *(f"{n}@{s}" for s in (4, 12) for n in ("L", "chroma", "dE_paint", "ring", "texture", "b")),
    # blurred paint distance, lightness and silhouette above / below / left / right
    *(f"{n}{d}" for d in ("^", "v", "<", ">") for n in ("dE_paint", "L", "inside")),
    # distance to the row's sides, width of the row, vertical edges
    "side_dist", "row_width", "v_edges",
)  # fmt: skip


def glass_features(rgb: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel glass cues on a small crop around the vehicle.

    Args:
        rgb: (h, w, 3) uint8 RGB, the vehicle with some margin, long side ~`WORK_SIZE`.
        support: (h, w) bool, the vehicle silhouette with its holes filled (not empty).
    Returns:
        features (h, w, len(FEATURE_NAMES)) float32 and r (h, w), the height in the
        vehicle box (0 at its top, 1 at its bottom).
    """
    S = support
    h, w = S.shape
    ys, xs = np.nonzero(S)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    hb, wb = y1 - y0, x1 - x0
    size = max(hb, wb)
    yy = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    xx = np.arange(w, dtype=np.float32)[None].repeat(h, 0)
    r = (yy - y0) / hb
    u = (xx - x0) / wb
    top = np.where(S.any(0), S.argmax(0), h).astype(np.float32)
    d = (yy - top[None]) / hb
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    L = lab[..., 0]
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    paint = _paint_colour(lab, S & (r > 0.3) & (r < 0.8))
    dL = L - paint[0]
    dE = np.linalg.norm(lab - paint, axis=-1)
    outline = cv2.distanceTransform(np.pad(S, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1] / size
    k = max(2, int(0.05 * size))
    grown = cv2.dilate(S.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    ring = grown.astype(bool) & ~S & (r < _BAND)
    ringp = _ring_likeness(lab, ring, S & (r > 0.45))
    Lm = cv2.blur(L, (5, 5))
    texture = np.sqrt(np.maximum(cv2.blur(L * L, (5, 5)) - Lm**2, 0))
    gradient = np.hypot(cv2.Sobel(L, cv2.CV_32F, 1, 0), cv2.Sobel(L, cv2.CV_32F, 0, 1))
    m = S.astype(np.float32)
    local_L = _nblur(L, m, 0.15 * size)
    base = [
        r, r * r, d, d * d, np.abs(u - 0.5) * 2, outline * 5,
        L / 100, chroma / 30, dL / 100, np.abs(dL) / 100, dE / 100, ringp,
        texture / 20, gradient / 200, (L - local_L) / 50, lab[..., 2] / 30,
    ]  # fmt: skip
    blurred = [L / 100, chroma / 30, dE / 100, ringp, texture / 20, lab[..., 2] / 30]
    ctx = [_nblur(x, m, s * size) for s in (0.04, 0.12) for x in blurred]
    dE_b, L_b = _nblur(dE / 100, m, 0.04 * size), _nblur(L / 100, m, 0.04 * size)
    o = int(0.08 * size)
    for dy, dx in ((o, 0), (-o, 0), (0, o), (0, -o)):  # the values above, below, left, right
        ctx += [_shift(dE_b, dy, dx), _shift(L_b, dy, dx), _shift(m, dy, dx)]
    has = S.any(1)
    left = np.where(has, S.argmax(1), 0).astype(np.float32)
    right = np.where(has, w - S[:, ::-1].argmax(1), w).astype(np.float32)
    side = np.clip(np.minimum(xx - left[:, None], right[:, None] - xx) / wb, 0, 1)
    row_width = ((right - left) / wb)[:, None].repeat(w, 1)
    v_edges = _nblur(np.abs(cv2.Sobel(L, cv2.CV_32F, 0, 1)), m, 0.03 * size) / 5
    # stacked as planes (a contiguous copy each) and viewed as (h, w, n): stacking on the
    # last axis directly costs 10x more (14 ms a photo)
    maps = base + ctx + [side * 4, row_width, v_edges]
    feats = np.stack([x.astype(np.float32, copy=False) for x in maps], 0).transpose(1, 2, 0)
    return feats, r


# A 16-unit tanh layer and a logistic output over the standardised cues above.
# _MODEL_NOTE explains where the numbers come from; `glass_probability` applies them.
_MODEL_NOTE = (
    "Fitted (cross-entropy, L-BFGS, weight decay 1e-4) on 4000 pixels per photo of the "
    "photos with an odd COCO image id in the Car Parts dataset (Pasupa et al. 2021, "
    "../shared/data/carparts; 159 of them show front or back glass), mattes from "
    "VehicleMatte (U2NetP) as of this writing: "
    "front_glass / back_glass and the top 35 % of each door polygon (side windows) as "
    "glass; the rest of the silhouette above 60 % of its height, and the lower half of "
    "the doors, as not glass. Photos with an even id are held out: "
    "benchmarks/glass_quality.py reports both halves. The dataset states no licence; "
    "these 721 numbers are statistics of it, not a copy."
)
# fmt: off
_W1: np.ndarray = np.array([
    0.01141, 0.5164, -0.4562, -0.1707, -0.1868, -0.159, -0.2109, -0.1971,
    0.7934, 0.08491, -2.432, -0.3812, -0.2234, -0.802, -3.545, -0.01222,
    -0.07681, 0.7558, -0.3135, -0.1661, 0.5301, -0.5559, -0.3623, 0.1832,
    0.6447, 0.463, -0.1028, -0.2961, -0.4759, -0.5439, -2.445, -0.2186,
    0.03042, 0.2013, -0.1487, -0.06035, -0.2217, 0.2643, 0.1581, -0.1677,
    -0.193, -0.3303, -1.672, -0.122, -0.08027, -0.223, -0.2253, 0.1,
    -0.03184, 0.3435, -0.1436, -0.07965, 0.2461, -0.1938, -0.1143, 0.08773,
    0.0924, 0.1386, -0.1123, -0.1399, -0.2488, -0.207, -0.6833, -0.08233,
    -0.09802, -0.623, -0.4525, -0.1933, 0.09979, 0.3618, 0.05847, 0.1655,
    0.1989, -0.2942, 0.4948, -0.249, -1.199, -0.2515, -0.515, -0.06684,
    0.02705, 0.3211, 0.03119, -0.09334, -0.1578, 0.2927, 0.5837, -0.3364,
    -0.3361, -0.2651, -2.425, -0.008872, -0.1004, -0.3404, -0.4042, 0.1894,
    -0.01129, 0.1403, 0.005951, -0.03919, 0.006334, 0.1485, -0.112, -0.07399,
    0.5091, -0.3347, -0.1572, -0.09412, 0.35, 0.03462, 0.04327, 0.007159,
    -0.03067, -0.192, -0.07059, -0.07301, 0.5964, -0.1995, -0.1485, -0.05536,
    -0.6601, 0.008475, -0.02294, -0.1325, 0.0335, -0.6121, -0.04303, -0.04102,
    0.06147, 0.4899, -0.1868, -0.05532, -0.3614, -0.4948, 0.1418, 0.02214,
    -0.306, 0.848, -0.1797, -0.1124, 0.0686, -0.05845, -0.06604, 0.0496,
    -0.04568, 0.1457, -0.08967, -0.01455, 0.08061, 0.341, -0.7015, -0.2219,
    -0.03369, 0.113, 0.01711, -0.1516, 0.6876, 0.02608, -0.5293, -0.05916,
    -0.04438, -0.2592, 0.1167, 0.005899, -0.6722, -0.1076, -0.06888, -0.1204,
    -0.8223, 0.09898, 0.09755, 0.07503, 0.1586, 0.4672, 0.2545, -0.01842,
    -0.06088, -0.06154, -0.03598, -0.04162, 0.2605, -0.01888, -0.1684, -0.01042,
    -0.1399, 0.2487, -0.07789, 0.01035, 0.04764, 0.2828, 0.01163, -0.02952,
    0.03432, 0.06787, -0.1683, 0.03703, 0.2195, 0.2424, -0.1851, -0.1846,
    0.1576, 0.1064, -0.07695, -0.04012, -0.4606, 0.08848, 0.1925, 0.1086,
    0.02147, -0.05571, -0.06544, 0.04114, 0.1743, 0.2129, 0.2456, -0.04126,
    -0.5254, 0.05882, 0.276, 0.009503, -0.3671, 0.1126, -0.07419, 0.1411,
    -0.001275, -0.543, 0.2554, -0.02511, 0.1521, -0.1527, -0.5525, -0.1581,
    0.8805, -0.1145, 0.1974, 0.07342, -0.26, 0.3619, 0.1701, 0.03567,
    0.0346, 0.02918, 0.06595, 0.01027, -0.11, 0.3281, 0.1212, 0.05333,
    0.2645, 0.4178, 0.2397, 0.1127, -0.2827, 0.04309, 0.01438, 0.00836,
    -0.05078, 0.4653, -0.03059, -0.06367, -0.06059, -0.8048, -0.3362, -0.06677,
    0.8348, -0.4072, 0.1541, -0.1303, -0.02986, 0.03983, -0.02381, -0.05675,
    -0.004233, -0.1445, 0.06729, 0.004225, 0.6205, 0.3241, -0.04883, -0.09648,
    -0.7056, -0.02777, 0.151, -0.001153, 0.1234, -0.2196, -0.1248, 0.02613,
    -0.05016, -0.1164, 0.1166, 0.0001347, -0.5075, 0.07824, -0.1221, -0.0855,
    -0.6572, 0.02876, 0.1177, 0.0593, 0.06416, 0.5684, -0.2477, 0.007737,
    -0.06975, -0.07409, -0.01244, -0.03954, 0.2194, -0.02214, -0.1837, 0.02431,
    -0.1353, 0.2394, -0.0002465, 0.02419, 0.05354, 0.2739, -0.06259, -0.05304,
    -0.02626, -0.07303, -0.3101, -0.1093, 0.8488, 0.9936, -0.3476, -0.01409,
    0.3783, 0.1599, -0.1857, -0.2289, -0.5137, -0.07244, 0.4303, -0.03451,
    0.05535, 0.02043, -0.0266, -0.001945, -0.1933, 0.4465, 0.04574, -0.06035,
    0.07317, 0.3379, 0.1693, 0.0337, -0.1477, 0.09737, 0.05032, 0.05571,
    -0.002613, 0.3423, -0.1281, -0.02228, -0.1444, 0.01904, 0.109, -0.07015,
    0.2277, -0.4005, -0.4182, -0.1358, 0.4643, -0.1163, 0.05153, 0.02141,
    0.01258, 0.2503, 0.1014, 0.0206, 0.3975, 0.2076, 0.1008, -0.06385,
    0.2074, 0.395, -0.227, 0.08743, 0.1273, 0.02147, -0.006697, -0.00582,
    -0.09597, -0.09788, 0.0427, -0.07919, -0.4075, 0.05914, -0.1723, 0.04187,
    -0.4303, -0.02084, -0.1062, -0.02186, -0.1636, 0.3832, 0.003782, -0.07109,
    -0.07938, -0.05998, -0.005717, -0.04513, 0.1822, 0.04978, -0.2393, 0.01254,
    -0.1197, 0.1762, -0.08443, 0.0172, 0.03818, 0.2037, -0.09325, -0.05633,
    -0.06288, -0.1293, -0.3097, -0.1301, 0.7776, 0.5093, -1.073, -0.1361,
    -1.082, -0.216, 0.3652, -0.2831, -0.624, 0.008376, 0.03927, -0.02926,
    0.1179, -0.4371, -0.09785, 0.05194, 0.2565, -0.1517, 0.22, -0.03013,
    -0.1652, 0.6304, -0.4292, 0.05615, -0.1047, 0.2767, -0.06369, 0.1141,
    0.0203, -0.4628, 0.01733, 0.07194, 0.4003, -0.389, -0.323, -0.06326,
    0.7141, 0.3148, -0.2604, 0.07187, 0.004299, -0.282, 0.2053, 0.03643,
    -0.02975, 1.566, 0.3602, 0.08949, -0.02128, 1.146, -0.152, 0.1261,
    -0.1663, -0.0464, -0.4051, 0.1447, 0.5231, 0.02965, 0.03535, -0.03709,
    -0.0905, 0.6107, 0.391, 0.09478, -0.06135, 0.2443, 0.4074, 0.2426,
    -0.05271, -0.1179, -0.06548, 0.4505, -0.1866, 0.01121, 0.1394, -0.07031,
    -0.1364, 0.1362, 0.4549, 0.01605, -0.01929, -0.3613, 0.5247, 0.3215,
    -0.4526, 0.07326, -0.01045, 0.378, 0.05838, 0.8905, -0.2222, -0.1349,
    -0.0008151, -0.2509, -0.3099, -0.01629, -0.6958, -0.1168, 0.4991, 0.3951,
    -0.006943, 0.2103, 0.2798, -0.1175, -0.2656, 0.1413, 0.1983, -0.08893,
    -0.1567, -0.0905, -0.2178, -0.133, -0.4321, 0.3838, -0.257, 0.1279,
    -0.3411, 0.03139, 0.4776, -0.1944, 0.1609, -0.06066, 1.217, -0.1626,
    -0.06297, 0.1099, 0.08658, 0.01263, -0.5182, 0.07272, 0.07463, 0.08039,
    -0.4564, 0.3366, -0.00247, 0.123, -0.4084, -0.1472, 0.03666, -0.05184,
    -0.03189, 0.3092, 0.2076, 0.04537, -0.02421, -0.7623, 0.4607, 0.4204,
    0.002898, -0.1446, -0.3267, 0.1261, 0.2852, 0.2036, -0.1561, -0.1634,
    -0.1336, -0.1012, -0.03398, -0.02682, 0.01296, 0.04494, 0.01475, 0.1659,
    0.06727, -0.2089, 0.08028, -0.02165, -0.3183, -0.2626, 0.1284, 0.06951,
    -0.07863, -0.2021, -0.1562, -0.06369, -0.9236, -0.003969, 0.04387, 0.1607,
    -0.119, -0.09229, 0.358, -0.1712, -0.1122, 0.3609, -0.1664, -0.03272,
    -0.006724, 0.2978, 0.2665, 0.1211, 0.02164, -0.9878, -0.1734, -0.08571,
    -0.1482, -0.5255, -0.234, 0.2033, -0.2448, 0.3596, -0.1573, 0.1727,
    -0.2202, -0.06303, -0.1044, -0.2113, -0.1728, 0.2242, 0.2652, 0.6006,
    0.05653, 0.1588, 0.09678, -0.0949, 0.09639, -0.1502, 0.2027, -0.416,
    -0.2037, -0.2084, 0.1169, -0.1556, 0.01622, -0.2513, -0.1424, 0.3307,
    0.4046, 0.4171, 0.002148, 0.03803, -0.4157, 0.08917, 0.2419, -0.3038,
    0.01929, -0.9813, -0.208, -0.04062, 0.03268, -0.06057, -0.4422, -0.209,
    0.4232, 0.8833, -0.4319, -0.01652, -0.185, -0.15, -1.676, 0.01108,
    -0.02302, -0.004004, -0.2463, -0.05304, -0.003371, -0.06482, 0.02685, 0.01357,
    -0.03373, -0.02286, -0.003234, -0.1472, -0.03984, 0.3151, -0.005334, -0.02227,
], np.float32).reshape(43, 16)
_B1: np.ndarray = np.array([
    -0.1088, -0.1795, -0.2463, -0.1606, -0.2631, 0.479, -0.1641, -0.04758,
    -0.3186, -0.005353, 0.1896, -0.2298, 0.05388, -0.1007, 1.796, -0.04352,
], np.float32)
_W2: np.ndarray = np.array([
    0.9741, -1.943, 1.459, 1.007, -1.767, 2.255, 1.917, -1.416,
    -2.522, -1.97, -4.184, 1.221, 2.154, 1.774, 4.813, 1.183,
], np.float32)
_B2: float = -1.08
# fmt: on


def glass_probability(features: np.ndarray) -> np.ndarray:
    """(..., n_features) cues → (...) probability that the pixel is glass."""
    hidden = np.tanh(features @ _W1 + _B1)
    return 1.0 / (1.0 + np.exp(-(hidden @ _W2 + _B2)))


def refine_glass(
    prob: np.ndarray,
    rgb: np.ndarray,
    domain: np.ndarray,
    *,
    low: float = 0.25,
    high: float = 0.85,  # 0.6 marked more: glass recall 0.881 but 10.1 % outside the glass
    sure: float = 0.9,
    iterations: int = 3,
    keep_min: float = 0.1,
) -> np.ndarray:
    """GrabCut seeded by the glass probability: (h, w) bool glass.

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
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(work, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
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
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    h, w = mask.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad = int(math.ceil(margin * max(y1 - y0, x1 - x0)))
    return max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)


def _vehicles(inside: np.ndarray, min_share: float = 0.15) -> list[np.ndarray]:
    """Split a silhouette into vehicles: (h, w) bool → one (h, w) bool mask per vehicle.

    Cars side by side often touch in the matte through a thin bridge (a shadow, a gap
    seen between them); an opening of ~4 % of the silhouette's height breaks it. Parts
    with at least `min_share` of the largest one's area count as vehicles; each gets the
    pixels of `inside` near it. One vehicle: the silhouette itself.
    """
    ys = np.nonzero(inside)[0]
    k = max(1, round(0.04 * (ys.max() - ys.min() + 1)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    opened = cv2.morphologyEx(inside.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if n <= 2:
        return [inside]
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = [i + 1 for i in np.flatnonzero(areas >= min_share * areas.max())]
    if len(big) <= 1:
        return [inside]
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * k + 3, 4 * k + 3))
    return [cv2.dilate((labels == i).astype(np.uint8), grow).astype(bool) & inside for i in big]


def _prepare(image: Tensor, alpha: Tensor, work_size: int) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]]:
    """Each vehicle's crop (with an 8 % margin) on a small canvas.

    Returns one ``(rgb, a_small, (y0, y1, x0, x1))`` per vehicle (none when the matte
    is empty): (h, w, 3) uint8 RGB and (h, w) float32 matte of that vehicle only, long
    side <= `work_size`, and the crop in full-resolution pixels.
    """
    H, W = image.shape[-2:]
    scale0 = min(1.0, 2 * work_size / max(H, W))
    small = (max(1, round(H * scale0)), max(1, round(W * scale0)))
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
    image: Tensor, alpha: Tensor, work_size: int, refine: bool, threshold: float, edge_radius: int, likeness: bool
) -> tuple[Tensor, Tensor | None]:
    """(3, H, W), (1, H, W) → (1, H, W) soft glass (and background likeness), float32."""
    H, W = image.shape[-2:]
    out = torch.zeros(1, H, W, device=image.device, dtype=torch.float32)
    like_out = torch.zeros_like(out) if likeness else None
    for rgb, aw, (cy0, cy1, cx0, cx1) in _prepare(image, alpha, work_size):
        inside = aw > 0.5
        if inside.sum() < 64:
            continue
        support = fill_holes(inside)
        feats, r = glass_features(rgb, support)
        domain = support & (r < _BAND)
        prob = np.zeros(support.shape, np.float32)
        prob[domain] = glass_probability(feats[domain])
        glass = refine_glass(prob, rgb, domain) if refine else prob >= threshold
        if not glass.any():
            continue
        ch, cw = cy1 - cy0, cx1 - cx0
        crop_img = image[None, :, cy0:cy1, cx0:cx1].float()
        crop_a = alpha[None, :, cy0:cy1, cx0:cx1].float()
        holes = (support & ~inside).astype(np.float32)
        # back to full resolution: edge-aware (coefficients on the small canvas, applied
        # to the full-resolution image as guide), or bilinear
        g_small = torch.from_numpy(glass.astype(np.float32))[None, None].to(image.device)
        if edge_radius > 0:
            glass_full = guided_upsample(crop_img.mean(1, keepdim=True), g_small, edge_radius, 1e-3)
        else:
            glass_full = F.interpolate(g_small, size=(ch, cw), mode="bilinear", align_corners=False)
        holes_full = F.interpolate(
            torch.from_numpy(holes)[None, None].to(image.device), size=(ch, cw), mode="bilinear", align_corners=False
        )
        # never outside the silhouette (its enclosed holes count as inside)
        support_full = torch.maximum(crop_a, holes_full.clamp(0, 1))
        glass_full = torch.minimum(glass_full.clamp(0, 1), support_full)
        region = out[:, cy0:cy1, cx0:cx1]
        out[:, cy0:cy1, cx0:cx1] = torch.maximum(region, glass_full[0])
        if like_out is not None:
            like = _likeness_small(rgb, aw, glass)
            if like is not None:
                up = F.interpolate(torch.from_numpy(like)[None, None].to(image.device), size=(ch, cw), mode="bilinear", align_corners=False)
                like_out[:, cy0:cy1, cx0:cx1] = torch.maximum(like_out[:, cy0:cy1, cx0:cx1], up[0].clamp(0, 1))
    return out, like_out


def detect_glass(
    image: Tensor,
    alpha: Tensor,
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
            _detect_one(image[b], alpha[b], int(work_size), refine, threshold, int(edge_radius), likeness)
            for b in range(image.shape[0])
        ]
    glass = torch.stack([g for g, _ in outs]).to(image.dtype)
    if likeness:
        return glass, torch.stack([lk for _, lk in outs]).to(image.dtype)
    return glass


# -- what shows through the glass -----------------------------------------------------


def _likeness_small(rgb: np.ndarray, aw: np.ndarray, gl: np.ndarray) -> np.ndarray | None:
    """`background_likeness` on one vehicle's small canvas (`gl`: its glass, bool);
    None when it has no glass."""
    size = aw.shape
    inside = aw > 0.5
    if gl.sum() < 10:
        return None
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    k = max(2, int(0.04 * max(size)))
    grown = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    ring = grown.astype(bool) & ~inside
    rows = np.nonzero(gl)[0]
    ring[: max(0, rows.min() - 2 * k)] = False
    ring[rows.max() + 2 * k :] = False
    L = lab[..., 0]
    dark = gl & (L <= np.percentile(L[gl], 25))
    colour = _ring_likeness(lab, ring, dark)
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
        for rgb, aw, (y0, y1, x0, x1) in _prepare(image[i], alpha[i], work_size):
            size = aw.shape
            crop = glass[i : i + 1, :, y0:y1, x0:x1].float()
            g = F.interpolate(crop, size=size, mode="area" if crop.shape[-2] > size[0] else "bilinear")
            like = _likeness_small(rgb, aw, g[0, 0].cpu().numpy() >= 0.5)
            if like is None:
                continue
            up = F.interpolate(torch.from_numpy(like)[None, None].to(image.device), size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
            out[i, :, y0:y1, x0:x1] = torch.maximum(out[i, :, y0:y1, x0:x1], up[0].clamp(0, 1))
    return out.to(image.dtype)
