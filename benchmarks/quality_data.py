"""The shared real photos with ground truth, as samples for `benchmarks/quality.py`.

Each sample reads its image and labels on first use (``cached_property``), so a set of
hundreds costs nothing until measured: ``carparts/`` (part polygons; `load_carparts`, with
the held-out split of even COCO ids), ``masks/carvana`` (16 studio photos, full masks),
``carvana/`` views of those 16 cars at their true aspect (`load_carvana_cars`) and
``masks/camvid`` (driving frames, Car class).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

GLASS = ("front_glass", "back_glass")
MIRRORS = ("left_mirror", "right_mirror")


# -- sets ------------------------------------------------------------------------------


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@dataclass
class CarPartsSample:
    """One carparts photo: image (H, W, 3) uint8 and its part polygons by category."""

    name: str
    path: Path
    size: tuple[int, int]  # (H, W)
    polygons: dict[str, list[np.ndarray]] = field(default_factory=dict)  # category -> [(N, 2)]
    image_id: int = -1  # COCO id: even ids are the held-out half (never trained or fitted on)

    @cached_property
    def image(self) -> np.ndarray:
        return _read_rgb(self.path)

    def _raster(self, categories: Sequence[str] | None = None) -> np.ndarray:
        import cv2

        mask = np.zeros(self.size, np.uint8)
        for cat, polys in self.polygons.items():
            if categories is not None and cat not in categories:
                continue
            for p in polys:
                cv2.fillPoly(mask, [np.round(p).astype(np.int32)], 1)
        return mask.astype(bool)

    @cached_property
    def parts(self) -> np.ndarray:
        """(H, W) bool: union of all part polygons."""
        return self._raster()

    @cached_property
    def glass(self) -> np.ndarray:
        """(H, W) bool: windscreen and rear window (front_glass + back_glass)."""
        return self._raster(GLASS)

    @cached_property
    def mirrors(self) -> np.ndarray:
        """(H, W) bool: the door mirrors (left_mirror + right_mirror)."""
        return self._raster(MIRRORS)

    @cached_property
    def glass_or_door(self) -> np.ndarray:
        """(H, W) bool: glass and doors (side windows lie inside the door polygons)."""
        return self._raster([c for c in self.polygons if c in GLASS or c.endswith("_door")])

    def hull_distance(self) -> np.ndarray:
        """(H, W) float32: distance in pixels to the convex hull of all parts (0 inside);
        not kept (the masks made from it are)."""
        import cv2

        h, w = self.size
        pts = np.concatenate([p for polys in self.polygons.values() for p in polys])
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        hm = np.zeros((h, w), np.uint8)
        cv2.fillPoly(hm, [hull], 1)
        return cv2.distanceTransform(1 - hm, cv2.DIST_L2, 5)

    @cached_property
    def near(self) -> np.ndarray:
        """(H, W) bool: convex hull of all parts dilated by 0.5 % of the image diagonal
        (at least 4 px): where a vehicle's own soft edge can lie."""
        return self.hull_distance() <= max(4.0, 0.005 * float(np.hypot(*self.size)))

    @cached_property
    def region(self) -> np.ndarray:
        """(H, W) bool: convex hull of all parts dilated by 3 % of the image diagonal."""
        return self.hull_distance() <= 0.03 * float(np.hypot(*self.size))


def load_carparts(data: Path, limit: int | None = None, split: str = "all") -> list[CarPartsSample]:
    """The annotated carparts photos; `split` "held" keeps the even COCO ids (the half no
    learned or fitted part of bgr_core has seen), "fit" the odd ones, "all" both."""
    folder = data / "carparts"
    ann = json.loads((folder / "annotations.json").read_text())
    cats = {c["id"]: c["name"] for c in ann["categories"]}
    by_image: dict[int, dict[str, list[np.ndarray]]] = {}
    for a in ann["annotations"]:
        cat = cats[a["category_id"]]
        if cat == "_background_":
            continue
        for poly in a.get("segmentation") or []:
            p = np.asarray(poly, np.float64).reshape(-1, 2)
            if len(p) >= 3:
                by_image.setdefault(a["image_id"], {}).setdefault(cat, []).append(p)
    samples = []
    for im in sorted(ann["images"], key=lambda i: i["id"]):
        if im["id"] not in by_image:
            continue  # no annotations: skipped
        path = folder / im.get("path", f"JPEGImages/{im['file_name']}")
        if split == "held" and im["id"] % 2 == 1 or split == "fit" and im["id"] % 2 == 0:
            continue
        samples.append(CarPartsSample(im["file_name"], path, (im["height"], im["width"]), by_image[im["id"]], im["id"]))
    return samples[:limit] if limit else samples


@dataclass
class LabelledPhoto:
    """A photo and its label image (read on first use)."""

    name: str
    path: Path
    label_path: Path

    @cached_property
    def image(self) -> np.ndarray:
        return _read_rgb(self.path)


class CarvanaSample(LabelledPhoto):
    @cached_property
    def mask(self) -> np.ndarray:
        from PIL import Image

        with Image.open(self.label_path) as im:
            return np.asarray(im) == 1


def load_carvana(data: Path, limit: int | None = None) -> list[CarvanaSample]:
    folder = data / "masks" / "carvana"
    out = []
    for img in sorted((folder / "images").glob("*.jpg")):
        label = folder / "labels" / f"{img.stem}_mask.gif"
        if label.exists():
            out.append(CarvanaSample(img.stem, img, label))
    return out[:limit] if limit else out


class CarvanaCarSample(CarvanaSample):
    """A view of a validation car from ``carvana/`` (the cars of ``masks/carvana``, never
    trained on), resized back to its true 3:2 aspect (768x512)."""

    @cached_property
    def image(self) -> np.ndarray:
        import cv2

        return cv2.resize(CarvanaSample.image.func(self), (768, 512), interpolation=cv2.INTER_LINEAR)

    @cached_property
    def mask(self) -> np.ndarray:
        import cv2

        m = CarvanaSample.mask.func(self).astype(np.uint8)
        return cv2.resize(m, (768, 512), interpolation=cv2.INTER_NEAREST) > 0


def load_carvana_cars(data: Path, limit: int | None = None) -> list[CarvanaCarSample]:
    """All 16 views of each car of ``masks/carvana`` found in ``carvana/``."""
    cars = sorted({p.stem.split("_")[0] for p in (data / "masks" / "carvana" / "images").glob("*.jpg")})
    out = []
    for car in cars:
        for img in sorted((data / "carvana" / "images").glob(f"{car}_*.jpg")):
            label = data / "carvana" / "labels" / f"{img.stem}_mask.gif"
            if label.exists():
                out.append(CarvanaCarSample(img.stem, img, label))
    return out[:limit] if limit else out


CAMVID_CAR = 8


class CamVidSample(LabelledPhoto):
    """A CamVid driving frame; ``cars`` (H, W) bool is every pixel of class Car."""

    @cached_property
    def cars(self) -> np.ndarray:
        from PIL import Image

        with Image.open(self.label_path) as im:
            return np.asarray(im) == CAMVID_CAR


def load_camvid(data: Path, limit: int | None = None) -> list[CamVidSample]:
    folder = data / "masks" / "camvid"
    out = [CamVidSample(p.stem, p, folder / "annot" / p.name) for p in sorted((folder / "images").glob("*.png"))
           if (folder / "annot" / p.name).exists()]
    return out[:limit] if limit else out
