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

from .guided_filter import guided_filter

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
    "provisional: fitted on raw U2NetP mattes, even carparts ids"
)
# fmt: off
_W1: np.ndarray = np.array([
    0.5572, -0.1134, 0.07375, -0.7255, 0.3894, -3.051, 2.567, -0.09713,
    0.4705, -0.2031, 0.05943, 0.6968, -0.7617, -0.5347, -0.619, 0.5143,
    0.3627, -0.3103, -0.1759, -0.6327, 0.4307, -1.935, 0.2906, 0.1506,
    0.8014, 0.06968, -0.09439, 0.9447, -0.5847, -0.3661, -0.8536, 0.3345,
    0.04056, 0.01734, 0.1779, 0.1059, 0.5169, 0.2484, 1.478, -0.1438,
    -0.535, -0.2084, 0.1219, 0.1868, -0.4304, -0.1303, -0.02419, 0.2662,
    0.09737, -0.1208, -0.05438, -0.06515, 0.3714, -0.1964, 0.1259, 0.0444,
    0.08153, 0.01047, -0.02818, 0.3168, -0.3222, -0.1606, -0.2539, 0.1995,
    0.1563, -0.6106, -0.3068, 0.1615, 0.9895, -0.6351, -0.3708, 0.4211,
    -0.2373, 0.149, -0.08342, 0.3682, -0.3119, -0.234, -0.1615, 0.5071,
    0.3258, -0.2312, 0.2776, 0.6552, -0.2709, -0.4978, 2.207, -0.05298,
    -0.2528, -0.3215, 0.3142, 0.1925, 0.2851, -0.05219, 0.2345, 0.5788,
    0.1333, 0.1636, -0.2686, 0.2671, 0.01283, -0.01892, 0.2266, 0.05167,
    -0.2323, 0.2747, -0.06003, 0.3722, 0.1503, 0.002255, -0.232, -0.4686,
    0.2388, 0.06331, -0.04676, -0.3761, -0.04175, -0.009408, -0.04432, 0.104,
    -0.2968, 0.09079, 0.01829, 0.09224, -0.1207, -0.08834, -0.1201, 0.5966,
    0.06937, -0.07708, -0.5767, 0.2288, -0.2896, 0.1692, 0.1143, 0.1839,
    0.8137, 0.4435, 0.1479, -0.05465, 0.8324, -0.6891, -0.5205, 0.53,
    0.008517, 0.2902, -0.2692, -0.1824, 0.2565, -0.7074, 0.3078, -0.007645,
    0.143, 0.07546, 0.08784, 0.4219, 0.3102, -0.111, 0.4287, -0.137,
    -0.2168, -0.02993, -0.1875, 0.7191, -0.3558, 0.416, -0.1965, 0.1668,
    0.4862, 0.01412, 0.06631, -0.6068, -0.004371, 0.07219, 0.7119, 0.1834,
    -0.09107, 0.1094, 0.09128, -0.01899, 0.1595, 0.2854, -0.1404, -0.06622,
    -0.04664, 0.04059, -0.07869, -0.04375, -0.09461, -0.1236, 0.1204, -0.2411,
    0.1529, -0.2593, -0.2237, 0.1197, -0.2838, 0.2228, 0.1041, 0.1706,
    0.1027, -0.01777, -0.09865, 0.02946, -0.4647, -0.06265, -0.1666, 0.05954,
    0.0455, -0.2572, -0.2804, 0.2624, 0.03982, 0.07068, -0.3088, 0.1991,
    -0.0722, 0.1367, -0.1364, 0.03624, -0.2057, -0.01226, 0.5965, 0.01229,
    -0.2663, -0.01253, -0.4027, -0.2684, -0.3751, -0.00892, -0.02109, 0.1746,
    -0.2529, 0.2547, 0.1063, -0.1053, 0.2845, 0.4699, -0.9471, -0.4858,
    -0.08829, -0.4275, 0.05229, 0.1396, -0.2537, -0.1718, -0.1487, 0.06119,
    0.8874, 0.01016, -0.07701, -0.1667, -0.07252, 0.1937, 0.01929, -0.3544,
    0.06178, -0.07478, -0.1698, 0.2756, 0.003635, -0.319, 0.1759, 0.1212,
    0.2666, 0.1148, -0.09038, 0.6912, 0.1107, -0.01667, -0.945, -1.135,
    0.05021, 0.1673, -0.06482, -0.3725, -0.2338, -0.06899, -0.4876, 0.02873,
    -0.5468, 0.1021, -0.05279, 0.2523, 0.1074, 0.01353, 0.3585, 0.3747,
    -0.318, -0.06086, -0.2548, 1.038, -0.1106, -0.06759, -0.1987, 0.1853,
    0.5399, 0.08782, -0.04792, -0.8086, -0.0003173, 0.1266, 0.2364, 0.07092,
    -0.1311, 0.09719, 0.09793, -0.06667, 0.1389, 0.2718, -0.1081, -0.0537,
    0.03104, 0.0412, -0.07426, -0.1185, -0.03405, -0.05471, 0.1115, -0.2317,
    0.1849, -0.1636, 0.007521, -0.06474, -0.4161, 0.4759, 0.4576, 0.03376,
    0.3517, -0.09745, -0.002222, 0.3309, -0.6489, -0.1924, -0.3735, 0.5589,
    -0.09931, -0.2843, -0.00673, 0.5239, -0.3224, -0.05131, -0.00724, -0.02544,
    0.9894, 0.01762, -0.01393, -0.1337, -0.09049, 0.1452, 0.2349, -0.0479,
    0.2697, 0.2105, -0.003053, 0.5885, 0.1091, -0.04974, 0.4636, -0.08289,
    -0.2241, 0.07891, -0.05096, 0.4331, 0.04293, -0.2599, 0.1962, -0.5784,
    0.05038, 0.2425, 0.03194, -0.2194, -0.4572, -0.01447, 0.2172, -0.1321,
    -0.09109, -0.05762, -0.08916, 0.407, 0.2479, 0.09271, -0.1194, 0.1734,
    -0.3097, -0.236, -0.1091, 0.7904, 0.1969, 0.1253, -0.03909, 0.1931,
    0.4196, -0.02738, -0.02697, -0.7325, -0.1815, 0.1955, -0.3148, 0.04043,
    -0.1531, 0.1143, 0.0808, -0.196, 0.05049, 0.3221, -0.07793, -0.04294,
    0.0805, 0.05557, -0.06555, -0.2066, 0.01652, -0.0252, 0.1611, -0.2496,
    0.08335, -0.2363, -0.3625, 0.3718, -0.4188, 0.267, -0.2502, 0.3057,
    0.5795, 0.2605, 0.01161, 0.5512, -0.6748, -0.2546, 0.6722, 0.822,
    -0.05342, -0.1183, 0.1599, 1.372, -0.2803, 0.155, 0.09843, -0.1736,
    0.696, -0.1231, 0.08954, 0.03326, -0.3172, 0.08126, -0.2116, 0.05642,
    0.26, 0.1918, -0.006908, -0.4207, -0.1242, -0.09546, 0.3008, -0.0898,
    0.2629, 0.009021, 0.1555, -0.5253, 0.1034, 0.1343, -0.9588, 0.1892,
    0.1781, 0.0123, -0.2793, 0.6904, 0.009833, 0.3337, 0.6024, 0.2042,
    0.005623, 0.315, -0.2618, 0.4201, 0.8917, 0.367, 0.2192, 1.009,
    -0.2992, -0.3651, 0.1434, -0.03959, -0.4295, 0.04621, 0.08668, 0.2233,
    -0.4952, 0.05233, 0.3622, 0.4364, 0.2922, 0.6161, -0.1856, 0.3429,
    -0.7198, -0.1841, 0.2495, 0.5008, -0.2882, -0.1316, -0.1384, 0.03222,
    0.2758, -0.1516, 0.01945, 0.1763, 0.007455, 0.6587, -0.08624, -0.1505,
    -0.1921, -0.02943, 0.05204, -0.01301, 0.06883, 0.1103, -0.1522, 0.004554,
    -0.7728, 0.1258, -0.1243, -0.243, -0.8045, -0.1309, -0.397, -0.306,
    0.09127, 0.3432, 0.005525, -0.01283, 0.38, 1.344, -0.5454, -0.08519,
    0.1646, 0.1648, -0.03609, -0.2778, 0.3103, -0.3376, 0.3419, -0.3399,
    -0.02281, -0.2898, 0.05553, 0.5278, -0.2539, 0.1011, -0.1167, 0.06272,
    0.3349, -0.1192, -0.04439, -0.5779, -0.4165, 0.2342, -0.4215, 0.4777,
    -0.3095, 0.3105, 0.2348, 0.02861, 0.1396, -0.3173, 0.09294, -0.1582,
    0.03282, 0.03805, -0.156, 0.3713, 0.2117, 0.3266, -0.2387, -0.3505,
    0.2025, -0.09096, -0.03989, -0.05912, -0.06353, 0.1572, 0.06127, 0.08684,
    -0.1464, 0.1387, -0.2022, 0.1599, -0.3258, 0.02659, 0.09119, 0.05456,
    -0.01945, 0.0488, 0.1818, 1.295, 0.1198, -0.1662, -0.3303, -0.05031,
    0.3545, -0.003909, -0.002851, -0.2873, -0.3421, -0.1746, -0.2999, -0.02168,
    -0.269, -0.1331, -0.2634, -0.2435, 0.3826, -0.276, 0.3051, 0.1341,
    -0.1986, 0.1375, -0.05781, 0.2706, 0.04073, 0.3719, -0.2264, -0.6649,
    0.04771, -0.1594, 0.07748, -0.153, 0.431, 0.1447, 0.05511, 0.04775,
    0.1161, 0.149, -0.1333, 0.09487, 0.07221, -0.1269, 0.31, -0.163,
    0.0865, -0.2955, -0.2769, -0.001313, 0.1348, 0.1848, 0.1755, 0.3697,
    0.2414, 0.3971, -0.4336, 0.3199, -0.3408, 0.1739, -0.2344, -0.1299,
    0.2384, -0.1617, -0.1728, -0.2573, -0.5912, -2.369, -0.05917, 0.1499,
    0.1442, 0.09866, -0.07817, -1.577, -0.3901, -0.1071, 0.7174, -0.5307,
    -0.5849, -0.1038, -0.003476, -0.01548, 0.05632, -0.01545, -0.02988, 0.02283,
    -0.01353, -0.02994, 0.1025, 0.001704, -0.03847, -0.3281, 0.01952, -0.02074,
], np.float32).reshape(43, 16)
_B1: np.ndarray = np.array([
    0.2053, 0.07515, 0.1068, -0.1793, 0.2605, 1.435, 0.3004, -0.08507,
    0.4417, -0.01387, -0.07109, -0.3051, -0.2319, -0.4483, 0.2643, -0.3036,
], np.float32)
_W2: np.ndarray = np.array([
    -1.538, 1.38, 1.303, 2.295, -2.293, 4.257, 3.974, -1.227,
    -2.797, -1.193, 0.9494, -2.607, 2.425, 1.873, 2.345, -2.214,
], np.float32)
_B2: float = -1.054
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
) -> np.ndarray:
    """GrabCut seeded by the glass probability: (h, w) bool glass.

    Pixels of `domain` with ``prob >= high`` start as probable glass (``>= sure``:
    certain), those with ``low <= prob < high`` as probable body, everything else is
    certainly not glass. Pixels outside `domain` are painted with the body colour so
    that the background does not enter the "not glass" colour model (glass often
    looks like the background).
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
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


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


def _prepare(image: Tensor, alpha: Tensor, work_size: int):
    """The vehicle's crop (with an 8 % margin) on a small canvas.

    Returns None when there is no vehicle, else ``(rgb, a_small, (y0, y1, x0, x1))``:
    (h, w, 3) uint8 RGB and (h, w) float32 matte with long side <= `work_size`, and the
    crop in full-resolution pixels.
    """
    H, W = image.shape[-2:]
    scale0 = min(1.0, 2 * work_size / max(H, W))
    small = (max(1, round(H * scale0)), max(1, round(W * scale0)))
    a_small = F.interpolate(alpha[None].float(), size=small, mode="area")[0, 0].cpu().numpy()
    box = _crop(a_small > 0.5, 0.08)
    if box is None:
        return None
    sy, sx = H / small[0], W / small[1]
    cy0, cy1 = int(box[0] * sy), min(H, int(math.ceil(box[1] * sy)))
    cx0, cx1 = int(box[2] * sx), min(W, int(math.ceil(box[3] * sx)))
    ch, cw = cy1 - cy0, cx1 - cx0
    s = min(1.0, work_size / max(ch, cw))
    size = (max(8, round(ch * s)), max(8, round(cw * s)))
    mode = {"mode": "area"} if s < 1 else {"mode": "bilinear", "align_corners": False}
    rgb_t = F.interpolate(image[None, :, cy0:cy1, cx0:cx1].float(), size=size, **mode)
    a_t = F.interpolate(alpha[None, :, cy0:cy1, cx0:cx1].float(), size=size, **mode)
    rgb = (rgb_t[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return rgb, a_t[0, 0].cpu().numpy(), (cy0, cy1, cx0, cx1)


def _detect_one(
    image: Tensor, alpha: Tensor, work_size: int, refine: bool, threshold: float, edge_radius: int
) -> Tensor:
    """(3, H, W), (1, H, W) → (1, H, W) soft glass, on image's device, float32."""
    H, W = image.shape[-2:]
    out = torch.zeros(1, H, W, device=image.device, dtype=torch.float32)
    prepared = _prepare(image, alpha, work_size)
    if prepared is None:
        return out
    rgb, aw, (cy0, cy1, cx0, cx1) = prepared
    ch, cw = cy1 - cy0, cx1 - cx0
    crop_img = image[None, :, cy0:cy1, cx0:cx1].float()
    crop_a = alpha[None, :, cy0:cy1, cx0:cx1].float()
    inside = aw > 0.5
    if inside.sum() < 64:
        return out
    support = fill_holes(inside)
    feats, r = glass_features(rgb, support)
    domain = support & (r < _BAND)
    prob = np.zeros(support.shape, np.float32)
    prob[domain] = glass_probability(feats[domain])
    glass = refine_glass(prob, rgb, domain) if refine else prob >= threshold
    glass_small = glass.astype(np.float32)
    holes = (support & ~inside).astype(np.float32)
    # back to full resolution: bilinear, then edge-aware with the image as guide
    g = torch.from_numpy(np.stack([glass_small, holes]))[None].to(image.device)
    g = F.interpolate(g, size=(ch, cw), mode="bilinear", align_corners=False)
    glass_full, holes_full = g[:, :1], g[:, 1:]
    if edge_radius > 0 and glass_small.any():
        guide = crop_img.mean(1, keepdim=True)
        glass_full = guided_filter(guide, glass_full, edge_radius, 1e-3)
    support_full = torch.maximum(crop_a, holes_full.clamp(0, 1))
    glass_full = torch.minimum(glass_full.clamp(0, 1), support_full)
    out[:, cy0:cy1, cx0:cx1] = glass_full[0]
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


def background_likeness(image: Tensor, alpha: Tensor, glass: Tensor, *, work_size: int = WORK_SIZE) -> Tensor:
    """How much each glass pixel looks like the outside background rather than the
    vehicle's interior, (B, 1, H, W) in [0, 1].

    Colours are compared (Lab histograms, on a small copy) with the background ring just
    outside the matte and with the glass's own darkest quarter (interiors are dark);
    bright, textured glass (sky, buildings, trees, reflections) scores high, dark even
    interior low. Smooth, so it can weight a blend.
    """
    b, _, h, w = image.shape
    s = min(1.0, work_size / max(h, w))
    size = (max(8, round(h * s)), max(8, round(w * s)))
    small = F.interpolate(image.float(), size=size, mode="area") if s < 1 else image.float()
    a_small = F.interpolate(alpha.float(), size=size, mode="area") if s < 1 else alpha.float()
    g_small = F.interpolate(glass.float(), size=size, mode="area") if s < 1 else glass.float()
    outs = []
    for i in range(b):
        rgb = small[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy().astype(np.float32)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
        inside = a_small[i, 0].cpu().numpy() > 0.5
        gl = g_small[i, 0].cpu().numpy() >= 0.5
        like = np.zeros(size, np.float32)
        if gl.sum() >= 10 and inside.any():
            k = max(2, int(0.04 * max(size)))
            grown = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
            ys = np.nonzero(gl)[0]
            ring = grown.astype(bool) & ~inside
            ring[: max(0, ys.min() - 2 * k)] = False
            ring[ys.max() + 2 * k :] = False
            L = lab[..., 0]
            dark = gl & (L <= np.percentile(L[gl], 25))
            colour = _ring_likeness(lab, ring, dark)
            # lightness: interiors are dark (L < ~25), the outside seen through glass is not
            light = np.clip((L - 18.0) / 25.0, 0, 1)
            like = np.clip(0.5 * colour + 0.5 * light, 0, 1)
            like = cv2.GaussianBlur(like, (0, 0), max(1.0, 0.01 * max(size)))
        outs.append(torch.from_numpy(like))
    like = torch.stack(outs)[:, None].to(image.device)
    return F.interpolate(like, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1).to(image.dtype)


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
