"""GrabCut (Rother et al. 2004) with a cheaper start.

OpenCV's ``cv2.grabCut`` with ``GC_INIT_WITH_MASK`` starts each class's colour model
(a 5-component Gaussian mixture) from k-means over every pixel of the class: on the
window stage's crops (about 50,000 pixels, most of them "not glass") that start costs
about a fifth of GrabCut's time. Here the start is the same k-means over an evenly
strided sample of each class (`limit` colours at most), written into OpenCV's model
layout and handed to ``cv2.grabCut`` with ``GC_EVAL``, whose iterations then re-assign
and re-learn both models over every pixel as before. With `limit` at least the class
sizes the result is OpenCV's own, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["COMPONENTS", "colour_model", "sample_colours", "grab_cut"]

COMPONENTS = 5  # OpenCV's GMM::componentsCount
# k-means as OpenCV's initGMMs runs it: 10 iterations, k-means++ centres, one attempt
_KMEANS_CRITERIA = (cv2.TERM_CRITERIA_MAX_ITER, 10, 0.0)
# OpenCV's endLearning: white noise added to a covariance whose determinant is <= 1e-6
_SINGULAR = 1e-6
_SINGULAR_FIX = 0.01


def colour_model(colours: np.ndarray) -> np.ndarray:
    """A Gaussian mixture of `colours` in the layout ``cv2.grabCut`` reads, learnt as
    OpenCV's ``initGMMs`` does (k-means, then each cluster's weight, mean, covariance).

    Args:
        colours: (n, 3) colour values (uint8 or float), n >= `COMPONENTS`.
    Returns:
        (1, 13 * COMPONENTS) float64: the component weights, then their means (3 each),
        then their covariances (3 x 3 each, row-major). A component k-means left empty
        has weight 0. Raises ``cv2.error`` when there are fewer colours than components.
    """
    x = np.ascontiguousarray(colours, dtype=np.float32).reshape(-1, 3)
    _, labels, _ = cv2.kmeans(x, COMPONENTS, None, _KMEANS_CRITERIA, 1, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    xd = x.astype(np.float64)
    # per-component sums by bincount, as OpenCV accumulates them (no BLAS call: NumPy's
    # OpenBLAS threads would keep spinning and take the cores from torch's)
    counts = np.bincount(labels, minlength=COMPONENTS)
    sums = np.stack([np.bincount(labels, xd[:, i], COMPONENTS) for i in range(3)], 1)
    prods = np.stack([np.bincount(labels, xd[:, i] * xd[:, j], COMPONENTS) for i in range(3) for j in range(3)], 1)
    model = np.zeros((1, 13 * COMPONENTS))
    weights = model[0, :COMPONENTS]
    means = model[0, COMPONENTS : 4 * COMPONENTS].reshape(COMPONENTS, 3)
    covs = model[0, 4 * COMPONENTS :].reshape(COMPONENTS, 9)
    for k in np.flatnonzero(counts):
        inv_n = 1.0 / counts[k]
        m = sums[k] * inv_n
        c = prods[k] * inv_n - (m[:, None] * m[None, :]).ravel()
        det = c[0] * (c[4] * c[8] - c[5] * c[7]) - c[1] * (c[3] * c[8] - c[5] * c[6]) + c[2] * (c[3] * c[7] - c[4] * c[6])
        if det <= _SINGULAR:
            c[[0, 4, 8]] += _SINGULAR_FIX
        weights[k] = counts[k] / len(x)
        means[k] = m
        covs[k] = c
    return model


def sample_colours(image: np.ndarray, where: np.ndarray, limit: int | None) -> np.ndarray:
    """(n, 3) colours of `image` (h, w, 3) at the True pixels of `where` (h, w), in raster
    order, every ``ceil(n / limit)``-th of them when there are more than `limit`."""
    index = np.flatnonzero(where)
    if limit is not None and len(index) > limit:
        index = index[:: -(-len(index) // limit)]
    return image.reshape(-1, image.shape[-1])[index]


def grab_cut(image: np.ndarray, mask: np.ndarray, iterations: int, limit: int | None = 4000) -> np.ndarray:
    """GrabCut from a seed mask, its colour models started on a sample (`colour_model`).

    Args:
        image: (h, w, 3) uint8, any channel order.
        mask: (h, w) uint8 of ``cv2.GC_BGD`` / ``GC_FGD`` / ``GC_PR_BGD`` / ``GC_PR_FGD``;
            both classes (BGD + PR_BGD, FGD + PR_FGD) need at least `COMPONENTS` pixels.
        iterations: GrabCut iterations (each re-learns both models and cuts the graph).
        limit: colours per class for the start's k-means (None: all, as OpenCV does).
    Returns:
        The updated mask (a new array; `mask` is left as it is). Deterministic for a
        given OpenCV RNG state (``cv2.setRNGSeed``): k-means++ draws its first centres
        from it. Raises ``cv2.error`` where OpenCV cannot model a class.
    """
    fore = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    background = colour_model(sample_colours(image, ~fore, limit))
    foreground = colour_model(sample_colours(image, fore, limit))
    out = mask.copy()
    cv2.grabCut(image, out, None, background, foreground, iterations, cv2.GC_EVAL)
    return out
