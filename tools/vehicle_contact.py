"""Where a vehicle meets the ground, for the vehicle net's training samples (`tools/vehicle_data.py`).

The shipped net keeps the floor's dark contact shadow under the sills of light cars (a
ragged strip along the bottom of studio cut-outs) and cuts the dark sills of black cars:
its errors on studio photos gather along the lower outline. `contact_band` marks the
labelled pixels on both sides of that outline so that a training stage can weigh them more
(`train_vehicle_net.py --contact-weight`).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["contact_band"]


def contact_band(vehicle: np.ndarray, vweight: np.ndarray, share: float = 0.03) -> np.ndarray:
    """(h, w) float32 in {0, 1}: the labelled pixels on either side of the vehicle's lower
    outline, within ``share`` of the vehicle's height (at least 2 px) straight below it
    (background: floor, contact shadow) or straight above background (the sills, the
    tyres' lower edge, the bumpers' underside). Image rows grow downwards.

    vehicle: (h, w) float in [0, 1], the target (> 0.5 is vehicle); vweight: (h, w), > 0
    where the label is known (only those pixels are marked)."""
    v = (vehicle > 0.5).astype(np.uint8)
    rows = np.nonzero(v.any(axis=1))[0]
    if len(rows) == 0:
        return np.zeros(vehicle.shape, np.float32)
    d = max(2, round(share * (rows[-1] - rows[0] + 1)))
    k = np.ones((d + 1, 1), np.uint8)
    # anchor (0, d): a pixel is set where the vehicle lies within d rows above it;
    # anchor (0, 0): where background lies within d rows below it
    below = (cv2.dilate(v, k, anchor=(0, d), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0) & (v == 0)
    above = (cv2.dilate(1 - v, k, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0) & (v == 1)
    return ((below | above) & (vweight > 0)).astype(np.float32)
