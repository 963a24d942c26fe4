"""Contact sheet: another net's matte and the default's side by side on real photos.

    python benchmarks/matte_sheet.py -o /tmp/sheet.png [--compare u2netp] [photos ...]

Each row: the photo with the `--compare` net's matte outlined (red; default the generic
U2NetP), the same with the default net's (green), the default's cut-out on white with the glass that the
default window correction finds tinted blue, and a 3x zoom of the part of the outline where the two mattes differ most. Without
photos it takes the shared example photos, the carparts held-out photos where the generic
matte scores worst, and the CamVid frames.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
DEFAULT = [*sorted((DATA / "photos").glob("*.jpg")),
           *[DATA / "carparts" / "JPEGImages" / f"train{i}.jpg" for i in (220, 274, 16, 247, 102, 286, 210, 362)],
           *sorted((DATA / "masks" / "camvid" / "images").glob("*.png"))[:4]]
H = 240


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _mattes(stage, image: np.ndarray, windows=None) -> tuple[np.ndarray, np.ndarray | None]:
    """The stage's matte and, with a `windows` stage run after it, that stage's glass."""
    from bgr_core.frame import Frame

    frame = Frame(image=torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255))
    out = stage([frame])[0]
    if out.alpha is None:
        return np.zeros(image.shape[:2], np.float32), None
    glass = None if windows is None else windows([out])[0].glass
    return out.alpha[0].numpy(), None if glass is None else glass[0].numpy()


def _outline(image: np.ndarray, alpha: np.ndarray, colour) -> np.ndarray:
    out = image.copy()
    m = (alpha >= 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, max(1, image.shape[0] // 240))
    return out


def _fit(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (int(img.shape[1] * H / img.shape[0]), H), interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
    from bgr_core import Pipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="*", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=Path(tempfile.gettempdir()) / "matte_sheet.png")
    ap.add_argument("--compare", default="u2netp", help="the other matte net (bgr_core.loaders.MATTE_MODELS)")
    args = ap.parse_args(argv)
    photos = [p for p in (args.photos or DEFAULT) if p.exists()]
    from bgr_core.stages.windows import WindowCorrection

    generic = Pipeline("cpu", matte_model=args.compare).segment
    vehicle, windows = Pipeline("cpu").segment, WindowCorrection("tint")  # the defaults
    rows = []
    for path in photos:
        image = _read(path)
        a_g, _ = _mattes(generic, image)
        a_v, glass = _mattes(vehicle, image, windows)
        cut = image * a_v[..., None] + 255 * (1 - a_v[..., None])
        if glass is not None:
            g = glass[..., None]
            cut = cut * (1 - 0.5 * g) + np.array([40, 90, 255]) * 0.5 * g
        diff = np.abs(a_g - a_v)
        k = max(8, image.shape[0] // 8)
        score = cv2.blur(diff, (k, k))
        y, x = np.unravel_index(np.argmax(score), score.shape)
        y0, x0 = max(0, y - k), max(0, x - k)
        zoom = np.concatenate([_outline(image, a_g, (255, 0, 0))[y0 : y0 + 2 * k, x0 : x0 + 2 * k],
                               _outline(image, a_v, (0, 200, 0))[y0 : y0 + 2 * k, x0 : x0 + 2 * k]], axis=1)
        tiles = [_outline(image, a_g, (255, 0, 0)), _outline(image, a_v, (0, 200, 0)),
                 np.clip(cut, 0, 255).astype(np.uint8), zoom]
        row = np.concatenate([_fit(t) for t in tiles], axis=1)
        cv2.putText(row, path.name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    cv2.imwrite(str(args.out), sheet[..., ::-1])
    print(f"wrote {args.out} ({len(rows)} photos)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
