"""The committed plate labels: well-formed, and the training-only ones clear of the held-out photos."""

import json
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
HELD_GAP = 6  # tools/train_plate_scorer.py: neighbouring carparts ids are often the same car


def _images(name):
    return json.loads((DATA / name).read_text())["images"]


def _id(entry) -> int:
    return int(entry["file"][5:-4])


def test_labels_are_clockwise_convex_quads_inside_the_photo():
    for name in ("carparts_plates.json", "carparts_plates_train.json"):
        for e in _images(name):
            assert e["plate"] or not e["plates"], e["file"]
            for q in e["plates"]:
                q = np.asarray(q, np.float64)
                assert q.shape == (4, 2) and (q >= 0).all() and (q <= 512).all(), e["file"]
                assert cv2.isContourConvex(q.astype(np.float32)), e["file"]
                # clockwise in image coordinates (y down): positive shoelace area
                x, y = q[:, 0], q[:, 1]
                assert 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) > 50, e["file"]
            for b in e.get("ignore", []):
                assert len(b) == 4 and b[0] < b[2] and b[1] < b[3], e["file"]


def test_training_labels_stay_clear_of_the_held_out_photos():
    evaluated = _images("carparts_plates.json")
    held = [_id(e) for e in evaluated if _id(e) >= 100]
    files = {e["file"] for e in evaluated}
    train = _images("carparts_plates_train.json")
    assert len({e["file"] for e in train}) == len(train)
    for e in train:
        assert e["file"] not in files
        assert min(abs(_id(e) - h) for h in held) >= HELD_GAP, e["file"]
