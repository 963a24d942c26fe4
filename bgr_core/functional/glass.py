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

Correction (torch, (B, C, H, W), following the input's device and dtype):
`glass_tone` (a dark neutral glass colour with a vertical gradient per window),
`background_likeness` (which glass pixels show the outside world rather than the
vehicle's interior), `tint_glass` and `see_through_alpha`.
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
    "glass_tone",
    "background_likeness",
    "tint_glass",
    "see_through_alpha",
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
    feats = np.stack(base + ctx + [side * 4, row_width, v_edges], -1).astype(np.float32)
    return feats, r


# A 16-unit tanh layer and a logistic output over the standardised cues above.
# _MODEL_NOTE explains where the numbers come from; `glass_probability` applies them.
_MODEL_NOTE = (
    "provisional: fitted on VehicleMatte mattes, even carparts ids"
)
# fmt: off
_W1: np.ndarray = np.array([
    -0.352, -0.2414, 0.415, -0.05582, -0.2355, -3.241, -0.0962, -0.1097,
    0.327, -0.1236, -2.281, -0.259, 0.3593, -0.754, -1.62, 0.3192,
    -0.3547, -0.3691, -0.2763, -0.3045, 0.06569, -2.128, -0.4224, 0.1043,
    0.2409, 0.08715, -0.222, 0.07772, 0.5442, -0.5474, -1.081, 0.2452,
    0.06128, -0.1165, 0.2482, 0.5182, -0.201, 0.002916, -0.1346, -0.1516,
    0.07025, -0.1368, -1.546, -0.2047, -0.0651, -0.347, -0.1715, 0.08826,
    -0.1555, -0.2153, -0.2645, 0.07361, 0.06396, -0.5497, -0.2687, 0.06912,
    0.1096, 0.05478, -0.1347, 0.07311, 0.2533, -0.297, -0.2998, 0.114,
    -0.4531, -0.358, -0.06576, 0.2149, 0.05585, -0.7112, -1.159, 0.07573,
    0.02239, 0.122, 0.2432, 0.1165, 0.2087, -0.8077, -0.08138, -0.0565,
    0.07477, 0.1784, 0.1701, 0.461, 0.02896, -0.44, -0.1771, -0.03215,
    -0.04824, -0.05764, -2.388, 0.06983, -0.1901, -0.07282, 0.3877, 0.16,
    0.07469, 0.1477, -0.1794, -0.5618, 0.0558, -0.06543, -0.3519, 0.02758,
    0.04303, 0.04438, -0.4148, 0.05355, -0.0491, 0.1126, 0.2345, -0.1631,
    0.964, -0.06785, -0.3177, 0.7754, 0.1437, -0.1377, -0.06754, 0.07948,
    0.1193, 0.06473, 0.1259, 0.1553, -0.09801, -0.06826, -0.5336, 0.1749,
    -0.369, 1.081, -0.3013, 0.3494, 0.5387, 0.02614, 0.967, 0.4637,
    0.02719, 0.3343, -0.1976, 0.4467, 1.044, -0.7229, -0.1894, 0.07367,
    -0.1156, 0.6155, -0.4968, -0.02431, -0.2413, -0.6065, -0.4203, -0.2614,
    0.03907, -0.0517, 0.2012, -0.2022, -0.2465, 0.14, -0.06575, 0.07855,
    0.03022, 0.3149, -0.6695, 0.5977, -0.1069, 0.175, 0.2936, -0.07711,
    -0.1034, -0.01401, -0.03097, -0.1238, -0.4703, -0.08735, 1.035, -0.03332,
    0.03182, -0.1217, 0.2892, 0.03874, 0.1499, 0.1694, -0.03567, 0.112,
    0.0561, 0.07817, 0.126, 0.1261, 0.2774, 0.03302, 0.241, -0.06777,
    -0.1903, -0.2521, -0.2417, -0.05307, -0.03228, 0.2378, 0.1903, 0.2496,
    0.07683, 0.00407, -0.147, -0.1094, 0.05012, -0.468, 0.04346, 0.09457,
    -0.0005861, -0.08988, -0.1685, 0.3384, 0.1293, 0.02676, 0.02673, 0.3128,
    0.04025, 0.09011, 0.2614, 0.05654, -0.08099, -0.325, 0.4941, 0.04561,
    0.464, 0.1481, 0.03361, -0.5873, -0.03748, 0.01639, -0.1452, 0.05158,
    -0.2103, 0.01425, 0.3035, -0.07094, -0.3492, -0.1344, -0.2682, -0.3911,
    -0.07074, -0.2403, -0.3082, -0.3204, 0.2003, -0.096, 0.5523, 0.1657,
    -0.1803, 0.09919, 0.2581, 0.1611, -0.0208, 0.1043, 0.1602, -0.251,
    0.07385, 0.138, -0.2291, -1.098, 0.0221, -0.179, -0.3421, 0.03672,
    0.0324, 0.03403, -0.02088, 0.032, 0.1153, 0.01894, 0.1721, -0.24,
    0.8122, 0.01359, 0.06242, 0.7904, 0.2299, -0.1353, -0.08679, 0.1316,
    0.01075, 0.1193, 0.3854, 0.2385, 0.04736, 0.1062, -0.406, 0.04039,
    0.05493, 0.2563, -0.6398, 0.5724, -0.03805, -0.1168, -0.003979, 0.003481,
    -0.109, 0.007541, -0.07256, -0.0532, -0.4598, -0.06479, 0.9564, -0.06439,
    0.06892, -0.1223, 0.2859, 0.1276, 0.1255, 0.2611, 0.06589, 0.09735,
    0.01189, 0.06736, 0.1299, 0.09676, 0.2316, 0.1114, 0.2167, -0.09049,
    -0.6725, -0.344, -0.3503, 0.1818, -0.01195, 0.4072, 0.3759, 0.09908,
    0.1597, -0.00937, -0.3926, -0.0808, 0.07304, -0.5424, -0.3746, 0.1875,
    -0.137, -0.1917, -0.4684, -0.1049, 0.1005, -0.03665, 0.4662, 0.07843,
    -0.07839, 0.02932, 0.07371, 0.05669, -0.03485, -0.05998, 0.1204, -0.1879,
    -0.05887, 0.1631, 0.04679, -0.4979, 0.001222, 0.03997, -0.1931, -0.04241,
    0.1637, -0.01326, -0.7236, 0.009145, 0.096, 0.1514, 0.5672, -0.00199,
    0.3065, 0.2233, -0.2592, -0.002319, 0.2819, -0.01244, 0.1834, 0.1745,
    -0.1565, 0.1439, -0.3133, 0.2598, 0.1935, 0.037, -0.2081, -0.05472,
    -0.009609, -0.158, -0.5559, 0.3995, -0.09494, 0.2681, -0.4299, -0.02016,
    -0.0592, -0.03418, -0.1335, -0.09194, -0.3591, -0.2978, 0.4455, -0.008415,
    0.13, -0.086, 0.2697, 0.1913, 0.07665, 0.373, 0.217, 0.07003,
    -0.002804, 0.03944, 0.07945, 0.03723, 0.1324, 0.1077, 0.01964, -0.09576,
    0.01329, -0.09181, -1.547, 0.7012, -0.02374, 0.1437, 0.1007, 0.03719,
    0.08022, 0.05883, 0.269, -0.1076, -0.2959, -0.8654, 0.0206, 0.1707,
    0.1778, -0.07874, -0.5456, -0.001602, -0.07307, 0.1026, 0.4582, -0.06519,
    -0.03671, -0.08469, -0.2441, -0.1473, 0.1287, -0.1984, 0.4015, -0.0984,
    0.3403, 0.2127, 0.3762, -0.5674, -0.152, -0.1948, 0.4151, -0.1009,
    -0.1423, -0.04533, -0.1006, -0.2157, -0.3238, 0.06532, -1.108, 0.05247,
    -1.001, 0.08646, -0.1443, 0.6307, 0.2833, 0.2672, -0.497, 0.183,
    -0.1566, 0.1926, -0.998, 0.2821, 0.3284, 0.8374, 0.1363, 0.2134,
    0.1899, -0.03047, 0.1439, -0.001455, 0.1438, 0.028, -0.006301, 0.1324,
    -0.4091, 0.1227, -0.05497, 0.1798, -0.04242, 0.1113, -0.1416, -0.1942,
    0.3255, -0.6551, -0.5404, 0.3769, -0.1729, -0.2335, 0.03596, -0.102,
    -0.4541, -0.09695, 0.1641, -0.1604, -0.07337, 0.4914, 0.7415, -0.5283,
    0.1351, -0.4495, 0.4554, -0.1527, 0.1194, 0.0522, 0.2063, 0.02555,
    -0.0214, 0.0909, 0.2898, 0.1412, -0.533, -0.5522, -0.04056, -0.2951,
    -0.05368, 0.1027, 0.5212, 0.3135, 0.07498, 1.181, -0.1485, -0.02702,
    0.1595, 0.07221, 0.6033, 0.0946, 0.4691, -0.009592, -0.2395, 0.1131,
    -0.122, -0.5275, -0.6514, 0.167, -0.07583, 0.06827, 0.009995, 0.08506,
    -0.1416, -0.02116, 0.08225, -0.07856, -0.787, -0.03137, 0.3611, 0.2227,
    0.6542, -0.2362, 0.06665, -0.2697, 0.105, -0.3078, -0.1348, -0.1193,
    0.06592, 0.07473, -0.1735, 0.1971, 0.3757, 0.6188, -0.01574, -0.2559,
    0.1581, -0.3462, 0.1507, 0.1459, 0.1504, 0.1641, 0.03391, 0.3613,
    0.1736, 0.08654, -0.1075, 0.05732, 0.3246, 0.1043, -0.1482, 0.3074,
    -0.01838, -0.292, -0.4933, -0.112, 0.009416, -0.09956, -0.2256, -0.09144,
    0.1622, -0.0106, 0.05517, 0.01863, -0.1756, -0.009248, 1.153, 0.06578,
    0.9472, -0.2145, 0.01093, -0.3382, -0.07794, -0.3688, -0.2239, 0.138,
    -0.2045, 0.01092, -0.07859, -0.1398, 0.3789, 0.01292, -0.0399, -0.2683,
    0.03243, -0.01849, -0.009692, 0.02302, 0.1296, 0.1516, -0.1341, -0.08414,
    -0.0004588, 0.1688, 0.03341, 0.212, 0.02003, -0.1782, 0.0316, 0.07774,
    -0.3895, -0.713, -0.5561, -0.3391, 0.238, 0.1634, -0.367, 0.1349,
    -0.001949, 0.1954, -0.2605, 0.2531, -0.1127, 0.215, -0.1194, 0.03263,
    -0.4487, 0.4624, 0.9072, -0.3096, 0.1722, -1.919, 1.09, 0.1776,
    0.02337, 0.1263, 0.16, 0.0974, -0.5968, -0.8465, 0.3379, -0.0463,
    0.08491, -0.03377, 0.01192, -0.005811, 0.006667, -0.01246, -0.0449, -0.0002549,
    0.347, 0.00185, 0.02414, 0.01596, -0.008086, -0.07406, 0.004497, -0.5371,
], np.float32).reshape(43, 16)
_B1: np.ndarray = np.array([
    -0.1402, 0.008153, 0.1015, 0.4807, 0.04169, 1.593, -0.01999, -0.00647,
    0.2281, 0.01673, -0.1589, 0.01547, 0.3202, -0.1132, -0.118, 0.1554,
], np.float32)
_W2: np.ndarray = np.array([
    1.805, 2.138, 2.782, 2.682, -1.112, 4.652, 2.499, -1.061,
    -1.117, -0.8817, -3.81, -1.112, -1.968, 2.48, 2.891, -1.073,
], np.float32)
_B2: float = -0.8362
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
    low: float = 0.15,
    high: float = 0.5,
    sure: float = 0.9,
    iterations: int = 3,
    keep_min: float = 0.25,
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
    image: Tensor, alpha: Tensor, work_size: int, refine: bool, threshold: float, edge_radius: int
) -> Tensor:
    """(3, H, W), (1, H, W) → (1, H, W) soft glass, on image's device, float32."""
    H, W = image.shape[-2:]
    out = torch.zeros(1, H, W, device=image.device, dtype=torch.float32)
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
    return out


def detect_glass(
    image: Tensor,
    alpha: Tensor,
    *,
    work_size: int = WORK_SIZE,
    refine: bool = True,
    threshold: float = 0.5,
    edge_radius: int | None = None,
) -> Tensor:
    """Soft glass mask of each vehicle: windscreen, rear window and side windows.

    Args:
        image: (B, 3, H, W) RGB in [0, 1].
        alpha: (B, 1, H, W) vehicle matte in [0, 1] on the same canvas.
        work_size: long side of the vehicle crop on which glass is searched.
        refine: GrabCut refinement of the per-pixel probability (off: threshold it).
        threshold: level of the probability that counts as glass when `refine` is off.
        edge_radius: guided-filter radius (full-resolution pixels) of the upsampling;
            default ~0.4 % of the image diagonal; 0 = bilinear only.
    Returns:
        (B, 1, H, W) in [0, 1], image's device and dtype; 0 wherever the matte (with
        its enclosed holes filled) is 0.
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
            _detect_one(image[b], alpha[b], int(work_size), refine, threshold, int(edge_radius))
            for b in range(image.shape[0])
        ]
    return torch.stack(outs).to(image.dtype)


# -- correction (torch, full resolution) -------------------------------------------------

GLASS_TOP = (0.25, 0.27, 0.30)
GLASS_BOTTOM = (0.05, 0.055, 0.065)


def glass_tone(
    glass: Tensor,
    top: tuple[float, float, float] = GLASS_TOP,
    bottom: tuple[float, float, float] = GLASS_BOTTOM,
    *,
    level: float = 0.5,
    gamma: float = 0.8,
) -> Tensor:
    """A clean glass colour, (B, 3, H, W): `top` at the top edge of each window, `bottom`
    at its lower edge (per column, from where ``glass >= level``), smooth in between.

    Columns without glass get the mid colour (they are masked out by the caller anyway).
    """
    b, _, h, w = glass.shape
    dtype = glass.dtype if glass.is_floating_point() else torch.float32
    work = torch.promote_types(dtype, torch.float32)
    mask = glass[:, 0] >= level
    rows = torch.arange(h, device=glass.device, dtype=work)[None, :, None].expand(b, h, w)
    big = torch.tensor(float(h), device=glass.device, dtype=work)
    first = torch.where(mask, rows, big).amin(1)  # (B, W)
    last = torch.where(mask, rows, -big).amax(1)
    has = last >= first
    # smooth the window outline along x so the gradient has no jaggies
    k = max(1, w // 100)
    weight = has.to(work)[:, None]
    def smooth(x: Tensor) -> Tensor:
        num = F.avg_pool1d((x * weight[:, 0])[:, None], 2 * k + 1, 1, k, count_include_pad=False)
        den = F.avg_pool1d(weight, 2 * k + 1, 1, k, count_include_pad=False)
        return (num / den.clamp_min(1e-6))[:, 0]
    first, last = smooth(torch.where(has, first, 0)), smooth(torch.where(has, last, 0))
    span = (last - first).clamp_min(1.0)
    t = ((rows - first[:, None]) / span[:, None]).clamp(0, 1) ** gamma
    t = torch.where(has[:, None].expand(b, h, w), t, torch.full_like(t, 0.5))[:, None]
    top_t = torch.tensor(top, device=glass.device, dtype=work).view(1, 3, 1, 1)
    bottom_t = torch.tensor(bottom, device=glass.device, dtype=work).view(1, 3, 1, 1)
    return torch.lerp(top_t, bottom_t, t).to(dtype)


def _likeness_small(rgb: np.ndarray, aw: np.ndarray, glass: Tensor) -> np.ndarray | None:
    """`background_likeness` on one vehicle's small canvas; None when it has no glass."""
    size = aw.shape
    g = F.interpolate(glass.float(), size=size, mode="area" if glass.shape[-2] > size[0] else "bilinear")
    gl = g[0, 0].cpu().numpy() >= 0.5
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
            like = _likeness_small(rgb, aw, glass[i : i + 1, :, y0:y1, x0:x1])
            if like is None:
                continue
            up = F.interpolate(torch.from_numpy(like)[None, None].to(image.device), size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
            out[i, :, y0:y1, x0:x1] = torch.maximum(out[i, :, y0:y1, x0:x1], up[0].clamp(0, 1))
    return out.to(image.dtype)


def tint_glass(
    image: Tensor,
    glass: Tensor,
    *,
    strength: float = 1.0,
    tone: Tensor | None = None,
    keep: Tensor | None = None,
) -> Tensor:
    """The image with its glass replaced by a clean glass tone, (B, 3, H, W).

    ``out = lerp(image, tone, glass * strength * (1 - keep))``: `tone` defaults to
    `glass_tone`; `keep` (B, 1, H, W) in [0, 1] is how much of the original to keep per
    pixel (e.g. the vehicle's interior). Pixels where ``glass == 0`` are returned
    bit-identical.
    """
    if tone is None:
        tone = glass_tone(glass)
    weight = glass.to(image.dtype) * float(strength)
    if keep is not None:
        weight = weight * (1 - keep.to(image.dtype))
    out = torch.lerp(image, tone.to(image.dtype).expand_as(image), weight.clamp(0, 1).expand_as(image))
    return torch.where(glass > 0, out, image)


def see_through_alpha(alpha: Tensor, glass: Tensor, opacity: float = 0.4) -> Tensor:
    """The matte with its glass made semi-transparent: ``lerp(alpha, opacity, glass)``.

    Inside fully detected glass the alpha becomes `opacity` (also where the matte had a
    hole); pixels where ``glass == 0`` are returned bit-identical.
    """
    target = torch.full_like(alpha, float(opacity))
    out = torch.lerp(alpha, target, glass.to(alpha.dtype))
    return torch.where(glass > 0, out, alpha)
