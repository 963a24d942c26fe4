"""Contact sheet of the photographic finish on a fixed set of varied shared photos.

    python benchmarks/finish_gallery.py -o /tmp/finish.png [--data ../shared/data] [--height 220]

One row per photo (side, front, rear, three-quarter, dark and white cars, close-ups cut
by the frame, two cars): white + shadow + center; the same with the shadow's alpha
contrast-stretched (x4, so cut or stepped edges show); a 2x zoom on the ground under the
car; window ``tint`` and ``see_through`` over a striped custom background (each zoomed
on the glass); the ``blank`` plate (zoomed on the plate when one is found). The photos
are listed in `GALLERY`; missing ones are skipped, and without ``../shared`` there is
nothing to draw.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (file under the data folder, what it shows)
GALLERY = [
    ("photos/car-1.jpg", "street, three-quarter"),
    ("photos/car-2.jpg", "sports car, three-quarter"),
    ("photos/car-3.jpg", "side"),
    ("photos/truck.jpg", "truck"),
    ("carparts/JPEGImages/train100.jpg", "dark car, front"),
    ("carparts/JPEGImages/train106.jpg", "rear, showroom"),
    ("carparts/JPEGImages/train114.jpg", "side"),
    ("carparts/JPEGImages/train118.jpg", "white car, three-quarter, studio"),
    ("carparts/JPEGImages/train124.jpg", "white car, three-quarter"),
    ("carparts/JPEGImages/train130.jpg", "close-up cut by the frame"),
    ("carparts/JPEGImages/train134.jpg", "dark car, three-quarter"),
    ("carparts/JPEGImages/train136.jpg", "dark car, rear"),
    ("carparts/JPEGImages/train144.jpg", "two cars"),
    ("carvana/images/6d21aad248e4_03.jpg", "studio, three-quarter (a held-out car)"),
]


def stripes(h: int, w: int) -> np.ndarray:
    """A custom background whose pattern is easy to recognise through glass."""
    y, x = np.mgrid[0:h, 0:w]
    band = ((x + y) // max(8, w // 40)) % 2
    out = np.where(band[..., None] == 1, [220, 90, 40], [40, 120, 220]).astype(np.uint8)
    return out


def _fit(img: np.ndarray, height: int) -> np.ndarray:
    """`img` scaled to fit a (height, 1.6 * height) tile, padded with white."""
    h, w = img.shape[:2]
    width = round(1.6 * height)
    s = min(height / h, width / w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    return np.pad(small, ((top, height - small.shape[0] - top), (left, width - small.shape[1] - left), (0, 0)),
                  constant_values=255)


def _zoom(img: np.ndarray, box, height: int) -> np.ndarray:
    """Crop (x0, y0, x1, y1) of `img`, made square-ish, scaled to `height`."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, max(x1, x0 + 8)), min(h, max(y1, y0 + 8))
    return _fit(img[y0:y1, x0:x1], height)


def _box(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = np.ascontiguousarray(tile)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def row(pipe, path: Path, what: str, height: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        photo = np.asarray(im.convert("RGB"))
    tiles = [_label(_fit(photo, height), what)]
    shadow = pipe.remove_background(image_file=photo, background="white_background", effect="shadow", layout="center")
    if not shadow.ok:
        return np.concatenate(tiles + [_label(np.full((height, round(1.6 * height), 3), 255, np.uint8), shadow.error)], 1)
    out = shadow.array
    tiles.append(_label(_fit(out, height), "white+shadow+center"))
    # the shadow's opacity, stretched: a cut or a step shows as a hard line
    layer = shadow.shadow if shadow.shadow is not None else np.zeros(out.shape[:2], np.float32)
    stretched = (255 - np.clip(layer * 4, 0, 1) * 255).astype(np.uint8)
    tiles.append(_label(_fit(np.repeat(stretched[..., None], 3, 2), height), "shadow x4"))
    car = _box(shadow.mask >= 0.5)
    if car is not None:
        x0, y0, x1, y1 = car
        cw, ch = x1 - x0, y1 - y0
        tiles.append(_label(_zoom(out, (x0 - 0.1 * cw, y1 - 0.35 * ch, x1 + 0.1 * cw, y1 + 0.25 * ch), height), "ground"))
    bg = stripes(*photo.shape[:2])
    for mode in ("tint", "see_through"):
        r = pipe.remove_background(image_file=photo, background="custom_background", background_file=bg,
                                   effect="none", layout="none", window_correction=mode)
        if not r.ok:
            continue
        glass = None if r.glass_mask is None else _box(r.glass_mask >= 0.5)
        view = r.array if glass is None else _zoom(r.array, (glass[0] - 20, glass[1] - 20, glass[2] + 20, glass[3] + 20), height)
        tiles.append(_label(_fit(view, height), mode))
    r = pipe.remove_background(image_file=photo, effect="none", layout="none", plate_replacement="blank")
    if r.ok:
        quads = r.plate_quads
        if quads is not None and len(quads):
            q = np.asarray(quads[0])
            (x0, y0), (x1, y1) = q.min(0), q.max(0)
            pw, ph = x1 - x0, y1 - y0
            tiles.append(_label(_zoom(r.array, (x0 - pw, y0 - 2 * ph, x1 + pw, y1 + 2 * ph), height), "blank plate"))
        else:
            tiles.append(_label(np.full((height, round(1.6 * height), 3), 255, np.uint8), "no plate found"))
    return np.concatenate(tiles, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("-o", "--out", type=Path, default=Path(tempfile.gettempdir()) / "finish_gallery.png")
    ap.add_argument("--height", type=int, default=220)
    args = ap.parse_args(argv)
    photos = [(args.data / f, what) for f, what in GALLERY if (args.data / f).exists()]
    if not photos:
        print(f"no gallery photos under {args.data}: nothing to draw", file=sys.stderr)
        return 1
    from PIL import Image

    from bgr_core import Pipeline

    pipe = Pipeline("cpu")
    rows = [row(pipe, p, what, args.height) for p, what in photos]
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows], 0)
    Image.fromarray(sheet).save(args.out)
    print(f"wrote {args.out}: {len(rows)} photos, {sheet.shape[1]}x{sheet.shape[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
