"""Before/after gallery of a folder of photos, in one command:

    python -m bgr_core.gallery PHOTOS_DIR -o gallery.html      one self-contained file
    python -m bgr_core.gallery PHOTOS_DIR -o gallery/          a folder: index.html + images

Every jpg, png and webp under PHOTOS_DIR (recursively) goes through the pipeline with
the given API parameters; each row shows the photo and its result as thumbnails side by
side (or the API error). With no ``-o`` the gallery is written to the system's temporary
folder, never into the current folder (which may be a repository): the path is printed.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
import os
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .imageio import write_atomic
from .errors import BGRError
from .request import BACKGROUNDS, EFFECTS, LAYOUTS, WINDOW_MODES

__all__ = ["find_photos", "make_gallery", "main"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
THUMB_HEIGHT = 240

# a CSS checkerboard behind transparent thumbnails, so no image is needed for it
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
td, th { padding: 6px 10px; border-bottom: 1px solid #ddd; vertical-align: middle; text-align: left; }
img { display: block; }
.after { background: repeating-conic-gradient(#dedede 0% 25%, #fff 0% 50%) 0 0 / 16px 16px; }
.error { color: #b00020; max-width: 28em; }
.name { font-family: monospace; max-width: 16em; word-break: break-all; }
"""


@dataclass
class _Row:
    name: str
    before: tuple[bytes, str] | None  # (encoded thumbnail, mime type)
    after: tuple[bytes, str] | None
    note: str  # error text, or the total time and warnings
    ok: bool


def find_photos(folder: str | Path) -> list[Path]:
    """Every jpg / jpeg / png / webp file under `folder`, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _thumbnail(array: np.ndarray, height: int) -> tuple[bytes, str]:
    """(H, W, 3|4) uint8 → a thumbnail `height` pixels tall at most: PNG when it has
    alpha (the page's checkerboard shows through), else JPEG."""
    image = Image.fromarray(array, "RGBA" if array.shape[2] == 4 else "RGB")
    if image.height > height:
        image = image.resize((max(1, round(image.width * height / image.height)), height), Image.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buf, "PNG", optimize=True)
        return buf.getvalue(), "image/png"
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue(), "image/jpeg"


def _rows(photos: Sequence[Path], root: Path, pipeline, height: int, params: dict[str, Any]):
    """Yield one `_Row` per photo; photos are read and run `batch_size` at a time so
    memory stays bounded however large the folder is."""
    from .imageio import load_image

    step = pipeline.batch_size
    for start in range(0, len(photos), step):
        chunk = photos[start : start + step]
        loaded: list[tuple[str, np.ndarray | BGRError]] = []
        for path in chunk:
            try:
                loaded.append((path.relative_to(root).as_posix(), load_image(path, "image_file", pipeline.limits)))
            except BGRError as err:
                loaded.append((path.relative_to(root).as_posix(), err))
        arrays = [a for _, a in loaded if isinstance(a, np.ndarray)]
        # closed here, not left to the garbage collector, once this chunk's rows are out
        with closing(pipeline.remove_backgrounds(arrays, **params)) as results:
            for name, array in loaded:
                if not isinstance(array, np.ndarray):
                    yield _Row(name, None, None, f"{array.code}: {array}", False)
                    continue
                result = next(results)
                before = _thumbnail(array, height)
                if not result.ok:
                    yield _Row(name, before, None, f"{result.error}: {result.error_description}", False)
                    continue
                total = sum(v for k, v in result.timings.items() if k != "decode")
                note = f"{total / 1000:.2f} s" + "".join(f"<br>{html.escape(w)}" for w in result.warnings)
                yield _Row(name, before, _thumbnail(result.array, height), note, True)


def _page(rows: Sequence[_Row], title: str, src) -> str:
    """The HTML page; `src(row_index, "before"|"after", (data, mime))` gives each img src."""
    out = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table><tr><th>photo</th><th>before</th><th>after</th><th></th></tr>",
    ]
    for i, row in enumerate(rows):
        cells = [f'<td class="name">{html.escape(row.name)}</td>']
        for kind, thumb in (("before", row.before), ("after", row.after)):
            img = f'<img src="{src(i, kind, thumb)}" alt="{kind}">' if thumb is not None else ""
            cells.append(f'<td class="{kind}">{img}</td>' if thumb is not None else "<td></td>")
        note = row.note if row.ok else html.escape(row.note)  # ok notes are built escaped
        cells.append(f'<td class="{"note" if row.ok else "error"}">{note}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def make_gallery(
    photos_dir: str | Path,
    output: str | Path | None = None,
    *,
    pipeline=None,
    height: int = THUMB_HEIGHT,
    title: str | None = None,
    **api_params: Any,
) -> Path:
    """Run the pipeline over every photo in `photos_dir` and write a before/after gallery.

    Args:
        photos_dir: folder of photos, walked recursively.
        output: ``*.html`` → one self-contained file (thumbnails inlined as base64);
            any other path → a folder with ``index.html`` and ``images/``. Default:
            a new file ``bgr-gallery-<random>.html`` in the system's temporary folder,
            readable by its owner only.
        pipeline: the `Pipeline` to run on (default: the shared one, device ``auto``).
        height: thumbnail height in pixels (smaller images are not upscaled).
        api_params: the web API's parameters (``background``, ``layout``, ...).

    Returns the path of the HTML file. Photos that fail show their API error.
    """
    from .api import default_pipeline

    root = Path(photos_dir)
    photos = find_photos(root)
    if not photos:
        raise FileNotFoundError(f"no jpg, png or webp photos under {root}")
    private = None
    if output is None:  # a new private file (0600, O_EXCL): never a predictable name, never through a link
        private, name = tempfile.mkstemp(prefix="bgr-gallery-", suffix=".html")
        output = Path(name)
    output = Path(output)
    pipeline = pipeline or default_pipeline()
    start = time.perf_counter()
    rows = list(_rows(photos, root, pipeline, int(height), dict(api_params)))
    done = sum(r.ok for r in rows)
    title = title or f"{root.resolve().name}: {done}/{len(rows)} photos in {time.perf_counter() - start:.1f} s"

    if output.suffix.lower() in (".html", ".htm"):
        def inline(i, kind, thumb):
            return f"data:{thumb[1]};base64," + base64.b64encode(thumb[0]).decode("ascii")

        page = _page(rows, title, inline).encode("utf-8")
        if private is not None:
            with os.fdopen(private, "wb") as fh:
                fh.write(page)
        else:  # written to a temporary file and renamed: a link at `output` is replaced, not followed
            write_atomic(output, page)
        return output

    images = output / "images"
    images.mkdir(parents=True, exist_ok=True)

    def linked(i, kind, thumb):  # writes each thumbnail as the page links it
        name = f"{i:04d}-{kind}.{'png' if thumb[1] == 'image/png' else 'jpg'}"
        (images / name).write_bytes(thumb[0])
        return f"images/{name}"

    index = output / "index.html"
    index.write_text(_page(rows, title, linked), encoding="utf-8")
    return index


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bgr_core.gallery",
        description="Before/after gallery of a folder of car photos (thumbnails side by side).",
    )
    p.add_argument("photos", metavar="PHOTOS_DIR", help="folder of jpg, png or webp photos (walked recursively)")
    p.add_argument("-o", "--output", help="gallery.html (one self-contained file) or a folder; default: the temp folder")
    p.add_argument("--background", default="white_background", choices=[b for b in BACKGROUNDS if b != "generative_background"])
    p.add_argument("--background-file", help="image for --background custom_background")
    p.add_argument("--layout", default="none", choices=LAYOUTS)
    p.add_argument("--effect", default="shadow", choices=EFFECTS)
    p.add_argument("--window-correction", default="tint", choices=WINDOW_MODES)
    p.add_argument("--height", type=int, default=THUMB_HEIGHT, help=f"thumbnail height in pixels (default {THUMB_HEIGHT})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=4)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .pipeline import Pipeline

    params: dict[str, Any] = {
        "background": args.background,
        "layout": args.layout,
        "effect": args.effect,
        "window_correction": args.window_correction,
    }
    if args.background_file:
        params["background_file"] = args.background_file
    try:
        pipeline = Pipeline(args.device, batch_size=args.batch_size)
        path = make_gallery(args.photos, args.output, pipeline=pipeline, height=args.height, **params)
    except (FileNotFoundError, BGRError, ValueError) as err:
        print(f"bgr_core.gallery: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
