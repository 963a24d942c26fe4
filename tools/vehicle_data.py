"""Training data for the vehicle net (and the glass head it trains with, `train_vehicle_net.GlassAuxNet`).

Never imported by the package; `tools/train_vehicle_net.py` uses it.

A sample is a dict of (S, S) arrays, squashed to the net's square input the way
`bgr_core.functional.matte.net_input` squashes a photo:

- ``image``    (S, S, 3) uint8 RGB;
- ``vehicle``  (S, S) float32 in [0, 1], the vehicle the photo is about (soft at edges);
- ``vweight``  (S, S) float32 in {0, 1}: 0 where the vehicle label is unknown (left
  out of the loss; the trainer distils the generic net there);
- ``glass``    (S, S) float32 in [0, 1], window glass of that vehicle;
- ``gweight``  (S, S) float32 in {0, 1}: 0 where glass is not labelled;
- ``emphasis`` (S, S) float32 in {0, 1}: labelled vehicle pixels the trainer may weigh
  more (door mirrors with ``SampleMaker(mirrors=True)``, wheels with ``wheels=True``;
  else all 0);
- ``contact`` (S, S) float32 in {0, 1}, only with ``SampleMaker(contact=True)``: the
  labelled pixels on both sides of a Carvana car's lower outline (floor and contact
  shadow below, sills and tyres above; `vehicle_contact.contact_band`), which the
  trainer may weigh more.

Kinds of sample (`SampleMaker.KINDS`, drawn with fixed shares):

- ``street``: a Carvana car cut out with its mask, pasted on a carparts street photo
  of the training half, with a soft shadow under it. The street photo's own car (its
  parts' hull, dilated) is left out of the loss unless it is clearly secondary to the
  pasted one (under a third of its area and farther from the centre), the same rule
  by which the pipeline picks the main vehicle; then its parts are background.
- ``synthetic``: the same on a generated backdrop (studio wall and floor, gradients,
  noise, tiles, textures).
- ``studio``: a Carvana photo as photographed (the studio's lettering is background).
- ``carparts``: a carparts street photo of the training half; the union of parts is
  the vehicle, the rest of the dilated hull (roof, pillars, fenders, which the
  polygons leave out) and a thin band along the parts' outline are unknown;
  ``front_glass`` / ``back_glass`` are glass, door polygons (side windows inside)
  unknown for glass, other parts and the outside not glass.
- ``pair`` (only with ``SampleMaker(pairs=True)``): two Carvana cars on a street photo
  or a generated backdrop, a smaller one parked behind the other and partly hidden by
  it; the one in front is the vehicle, the one behind background where it is clearly
  secondary (else out of the loss), so that the net learns to leave the car behind the
  subject out of its matte.
- ``empty``: a scene with no vehicle (people, a cat, coffee, textures, the Carvana
  studio's wall without the car, generated backdrops): the target is empty.

Every kind then gets the same photographic augmentation: crop and scale, mirror,
colour and light, blur, noise, JPEG. Geometry is applied to image and targets with
the same maps, so they stay aligned (`tests/test_vehicle_data.py`).

Splits (`splits`): Carvana by car (the 16 cars of ``masks/carvana`` are the report
set, 14 more are the selection set used to pick checkpoints, the rest train);
carparts by COCO id (even ids are the held-out report half, as in
`benchmarks/glass_quality.py`; odd ids with ``id % 10 == 1`` select checkpoints; the
other odd ids train).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import vehicle_backdrops
from vehicle_backdrops import empty_scenes, synthetic_backdrop
from vehicle_contact import contact_band
from vehicle_paste import (
    CarvanaPhoto,
    Layers,
    Placement,
    cover,
    draw_placement,
    edge_band,
    label_if_secondary,
    paste_car,
    warp,
)

# scikit-image's photos without a vehicle (benchmarks/no_vehicle.py, weights/README.md)
HELD_OUT_EMPTY, TRAIN_EMPTY = vehicle_backdrops.HELD_OUT_EMPTY, vehicle_backdrops.TRAIN_EMPTY
GLASS = ("front_glass", "back_glass")
MIRRORS = ("left_mirror", "right_mirror")
WHEELS = ("wheel",)
ROOT = Path(__file__).resolve().parents[1]
LABEL_GAPS = ROOT / "benchmarks" / "data" / "carparts_label_gaps.json"
CARVANA_SHAPE = (512, 768)  # (H, W): the squashed 512x512 files back to 1918:1280
SELECT_CARS = 14

# -- splits -----------------------------------------------------------------------------


def carvana_cars(data: Path) -> list[str]:
    return sorted({p.name.split("_")[0] for p in (data / "carvana" / "images").glob("*.jpg")})


def report_cars(data: Path) -> list[str]:
    """The cars of ``masks/carvana`` (validation only, never trained on)."""
    return sorted({p.name.split("_")[0] for p in (data / "masks" / "carvana" / "images").glob("*.jpg")})


def car_rank(name: str) -> str:
    """The fixed order in which cars are split (and packed): their name's SHA-256."""
    return hashlib.sha256(name.encode()).hexdigest()


def splits(data: Path) -> dict[str, list]:
    """``carvana_train`` / ``carvana_select`` / ``carvana_report`` (car ids) and
    ``carparts_train`` / ``carparts_select`` / ``carparts_held`` (COCO image ids)."""
    report = set(report_cars(data))
    rest = sorted((c for c in carvana_cars(data) if c not in report), key=car_rank)
    ann = json.loads((data / "carparts" / "annotations.json").read_text())
    ids = sorted({a["image_id"] for a in ann["annotations"]})
    return {
        "carvana_report": sorted(report),
        "carvana_select": sorted(rest[:SELECT_CARS]),
        "carvana_train": sorted(rest[SELECT_CARS:]),
        "carparts_held": [i for i in ids if i % 2 == 0],
        "carparts_select": [i for i in ids if i % 2 == 1 and i % 10 == 1],
        "carparts_train": [i for i in ids if i % 2 == 1 and i % 10 != 1],
    }


# -- sources ----------------------------------------------------------------------------


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im) > 0


def load_carvana(data: Path, car: str, view: str) -> CarvanaPhoto:
    h, w = CARVANA_SHAPE
    img = read_rgb(data / "carvana" / "images" / f"{car}_{view}.jpg")
    mask = read_mask(data / "carvana" / "labels" / f"{car}_{view}_mask.gif")
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return CarvanaPhoto(img, mask)


@dataclass
class StreetPhoto:
    """A carparts photo with its labels rasterised, all (H, W): ``parts`` bool (union of
    parts), ``hull`` bool (convex hull of the parts dilated by 3 % of the diagonal),
    ``glass`` bool, ``doors`` bool, ``mirrors`` bool (door mirrors), ``wheels`` bool."""

    image: np.ndarray
    parts: np.ndarray
    hull: np.ndarray
    glass: np.ndarray
    doors: np.ndarray
    mirrors: np.ndarray
    wheels: np.ndarray


class CarParts:
    """The carparts photos and polygons (COCO), rasterised on demand."""

    def __init__(self, data: Path) -> None:
        self.root = data / "carparts"
        ann = json.loads((self.root / "annotations.json").read_text())
        self.files = {im["id"]: im["file_name"] for im in ann["images"]}
        cats = {c["id"]: c["name"] for c in ann["categories"]}
        self.polys: dict[int, list[tuple[str, np.ndarray]]] = {}
        for a in ann["annotations"]:
            name = cats[a["category_id"]]
            if name == "_background_":
                continue
            for seg in a["segmentation"]:
                if len(seg) >= 6:
                    self.polys.setdefault(a["image_id"], []).append((name, np.asarray(seg, np.float32).reshape(-1, 2)))
        gaps = json.loads(LABEL_GAPS.read_text())["images"] if LABEL_GAPS.exists() else {}
        self.label_gaps = {i for i, f in self.files.items() if f in gaps}

    def photo(self, image_id: int) -> StreetPhoto:
        image = read_rgb(self.root / "JPEGImages" / self.files[image_id])
        h, w = image.shape[:2]

        def raster(keep) -> np.ndarray:
            m = np.zeros((h, w), np.uint8)
            for name, p in self.polys.get(image_id, []):
                if keep(name):
                    cv2.fillPoly(m, [np.round(p).astype(np.int32)], 1)
            return m > 0

        parts = raster(lambda n: True)
        pts = np.concatenate([p for _, p in self.polys.get(image_id, [])] or [np.zeros((0, 2), np.float32)])
        hull = np.zeros((h, w), np.uint8)
        if len(pts) >= 3:
            cv2.fillPoly(hull, [np.round(cv2.convexHull(pts)).astype(np.int32).reshape(-1, 2)], 1)
            r = max(1, int(round(0.03 * np.hypot(h, w))))
            hull = cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        return StreetPhoto(image, parts, hull > 0, raster(lambda n: n in GLASS), raster(lambda n: n.endswith("_door")),
                           raster(lambda n: n in MIRRORS), raster(lambda n: n in WHEELS))


# -- samples ----------------------------------------------------------------------------


class SampleMaker:
    """Draws training samples; `sample(seed)` is a pure function of the seed.

    ``mirrors=True``: the door mirrors of carparts photos keep most of their pixels
    labelled (a thinner unknown band) and come marked in the sample's ``emphasis``;
    ``wheels=True``: the same for their wheels (a dark tyre on dark ground is what the
    net misses most often); both off, the samples are those the shipped vehicle net was
    first trained on. ``contact=True`` adds each sample's ``contact`` marks (Carvana cars:
    studio photos and pasted ones; the samples are otherwise unchanged); ``cast=True``
    gives pasted cars a sunlit cast shadow 40 % of the time (`vehicle_cast_shadow`);
    ``pairs=True`` adds the ``pair`` kind (a car parked behind the subject, `_pair`) to
    the draw, `PAIRS` of it."""

    KINDS = {"street": 0.40, "synthetic": 0.15, "studio": 0.10, "carparts": 0.27, "empty": 0.08}
    PAIRS = 0.15  # the share of ``pair`` samples with ``pairs=True`` (the others scaled down)

    def __init__(self, data: Path, size: int = 224, cars: list[str] | None = None,
                 street_ids: list[int] | None = None, mirrors: bool = False, wheels: bool = False,
                 contact: bool = False, cast: bool = False, pairs: bool = False) -> None:
        self.data = Path(data)
        total = sum(self.KINDS.values())
        self.kinds = ({k: v / total * (1 - self.PAIRS) for k, v in self.KINDS.items()} | {"pair": self.PAIRS}
                      if pairs else dict(self.KINDS))
        self.cast = bool(cast)
        self.contact = bool(contact)
        self.mirrors = bool(mirrors)
        self.wheels = bool(wheels)
        self.size = int(size)
        sp = splits(self.data)
        self.cars = cars if cars is not None else sp["carvana_train"]
        self.carparts = CarParts(self.data)
        ids = street_ids if street_ids is not None else sp["carparts_train"]
        self.street_ids = [i for i in ids if i not in self.carparts.label_gaps]
        self.empties = empty_scenes()
        self._photo = lru_cache(maxsize=512)(self.carparts.photo)
        self._car = lru_cache(maxsize=256)(lambda c, v: load_carvana(self.data, c, v))
        # each car's views on disk: all 16 in shared/, fewer in a packed copy
        # (tools/pack_training_data.py); the draw is the same as over "01".."16" when all are there
        self.views = {c: [] for c in self.cars}
        for path in sorted((self.data / "carvana" / "images").glob("*.jpg")):
            car, _, view = path.stem.partition("_")
            if car in self.views:
                self.views[car].append(view)
        missing = [c for c, v in self.views.items() if not v]
        if missing:
            raise FileNotFoundError(f"no photo of training car {missing[0]} in {self.data / 'carvana' / 'images'}")

    def random_car(self, rng) -> CarvanaPhoto:
        """One view of a training car, drawn with `rng` (the same draw for the same state)."""
        car = self.cars[rng.integers(len(self.cars))]
        views = self.views[car]
        return self._car(car, views[rng.integers(len(views))])

    @staticmethod
    def _canvas_shape(rng) -> tuple[int, int]:
        aspect = float(rng.choice([1.0, 4 / 3, 3 / 2, 16 / 9, rng.uniform(1.0, 1.9)]))
        h = int(rng.integers(300, 480))
        return (h, int(h * aspect)) if rng.random() < 0.92 else (int(h * aspect), h)

    def layers(self, kind: str, rng: np.random.Generator) -> Layers:
        layers = self._layers(kind, rng)
        if self.contact and kind in ("studio", "street", "synthetic"):
            layers.contact = contact_band(layers.vehicle, layers.vweight)
        return layers

    def _layers(self, kind: str, rng: np.random.Generator) -> Layers:
        h, w = self._canvas_shape(rng)
        zeros, ones = np.zeros((h, w), np.float32), np.ones((h, w), np.float32)
        if kind == "studio":
            car = self.random_car(rng)
            m = np.array([[w / car.image.shape[1], 0, 0], [0, h / car.image.shape[0], 0]], np.float32)
            if rng.random() < 0.5:  # zoom in: cut the car or the wall
                s = rng.uniform(1.0, 1.6)
                m = m * s
                m[:, 2] = [-rng.uniform(0, w * (s - 1)), -rng.uniform(0, h * (s - 1))]
            vehicle = np.clip(warp(car.mask.astype(np.float32), m, h, w), 0, 1)
            return Layers(warp(car.image, m, h, w, cv2.INTER_AREA), vehicle, ones, zeros, (vehicle < 0.01).astype(np.float32))
        if kind == "carparts":
            p = self._photo(self.street_ids[rng.integers(len(self.street_ids))])
            img, m = cover(p.image, h, w, rng)
            near = lambda x: warp(x, m, h, w, cv2.INTER_NEAREST) > 0.5  # noqa: E731
            parts, hull, glass, doors = near(p.parts), near(p.hull), near(p.glass), near(p.doors)
            r = max(1, round(0.006 * np.hypot(h, w)))
            unsure = (hull & ~parts) | edge_band(parts, r)
            emphasis = None
            marked = [near(x) for x, on in ((p.mirrors, self.mirrors), (p.wheels, self.wheels)) if on]
            if marked:
                # A mirror is a few band widths across: its own band is a third as wide,
                # so that most of it stays labelled (its outside stays unknown as before);
                # so is a wheel's, whose lost part is the tyre's dark edge.
                parts_on = np.logical_or.reduce(marked)
                unsure &= ~(parts_on & ~edge_band(parts_on, max(1, r // 3)))
                emphasis = (parts_on & ~unsure).astype(np.float32)
            gunsure = doors | edge_band(glass, r) | (hull & ~parts)
            return Layers(img, parts.astype(np.float32), (~unsure).astype(np.float32),
                          glass.astype(np.float32), (~gunsure).astype(np.float32), emphasis)
        if kind == "empty":
            pick = rng.random()
            if pick < 0.5 and self.empties:
                src = self.empties[rng.integers(len(self.empties))]
                img, _ = cover(src, h, w, rng)
            elif pick < 0.75:  # the Carvana studio without its car: the wall and lettering
                car = self.random_car(rng)
                ys = np.nonzero(car.mask.any(axis=1))[0]
                top = max(8, int(ys.min()) - 4)
                img, _ = cover(np.ascontiguousarray(car.image[:top]), h, w, rng)
            else:
                img = synthetic_backdrop(rng, h, w)
            return Layers(img, zeros, ones, zeros, ones)
        if kind == "pair":
            return self._pair(h, w, rng)
        # street / synthetic: a Carvana car pasted on a backdrop
        if kind == "street":
            bg, street_car = self.street_backdrop(h, w, rng)
            scene, alpha = paste_car(bg, self.random_car(rng), rng, self.cast)
            return label_if_secondary(scene, street_car, alpha)
        bg = Layers(synthetic_backdrop(rng, h, w), zeros, ones, zeros, ones)
        return paste_car(bg, self.random_car(rng), rng, self.cast)[0]

    def street_backdrop(self, h: int, w: int, rng: np.random.Generator) -> tuple[Layers, np.ndarray]:
        """A carparts street photo of the training half as a backdrop, its own car (the
        parts' hull) left out of the loss; also returns that car's parts on the canvas."""
        zeros = np.zeros((h, w), np.float32)
        p = self._photo(self.street_ids[rng.integers(len(self.street_ids))])
        img, m = cover(p.image, h, w, rng)
        parts = warp(p.parts, m, h, w, cv2.INTER_NEAREST) > 0.5
        hull = warp(p.hull, m, h, w, cv2.INTER_NEAREST) > 0.5
        return Layers(img, zeros, (~hull).astype(np.float32), zeros, (~hull).astype(np.float32)), parts

    def _pair(self, h: int, w: int, rng: np.random.Generator) -> Layers:
        """Two Carvana cars, one parked behind the other and partly hidden by it (a car
        behind the subject, the neighbour beside it), on a street photo or a generated
        backdrop. The one in front is the vehicle; the one behind is background where it
        is clearly secondary (`secondary`, the pipeline's rule), else left out of the loss."""
        if rng.random() < 0.5:
            bg, street_car = self.street_backdrop(h, w, rng)
        else:
            ones, zeros = np.ones((h, w), np.float32), np.zeros((h, w), np.float32)
            bg, street_car = Layers(synthetic_backdrop(rng, h, w), zeros, ones, zeros, ones), zeros > 0
        front = draw_placement(h, w, rng)
        front.share = min(front.share, rng.uniform(0.4, 0.75))  # room beside it for the other
        share = front.share * rng.uniform(0.45, 0.85)
        # farther away: higher up and smaller; off to one side (mostly the roomier one)
        # so that part of it shows
        roomier = 1.0 if front.cx < w / 2 else -1.0
        side = roomier if rng.random() < 0.75 else -roomier
        reach = rng.uniform(0.45, 1.05) * (front.share + share) * w / 2
        behind = Placement(share, front.cx + side * reach, front.bottom - rng.uniform(0.05, 0.25) * h)
        mid, other = paste_car(bg, self.random_car(rng), rng, self.cast, behind)
        mid.vehicle = bg.vehicle * (1 - other)
        mid.vweight = bg.vweight * (other < 0.01)
        scene, alpha = paste_car(mid, self.random_car(rng), rng, self.cast, front)
        scene = label_if_secondary(scene, street_car, alpha)
        return label_if_secondary(scene, other > 0.5, alpha)

    def sample(self, seed: int | tuple[int, ...], kind: str | None = None, size: int | None = None) -> dict[str, np.ndarray]:
        """One sample (see the module's docstring), squashed to `size` (default: the maker's)."""
        rng = np.random.default_rng(seed)
        if kind is None:
            names = list(self.kinds)
            kind = names[rng.choice(len(names), p=np.array(list(self.kinds.values())) / sum(self.kinds.values()))]
        return augment(self.layers(kind, rng), size or self.size, rng) | {"kind": kind}


def augment(layers: Layers, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Photographic augmentation, then squash to (size, size) like the pipeline does."""
    img = layers.image.astype(np.float32)
    tv, tw, gl, gw = layers.vehicle, layers.vweight, layers.glass, layers.gweight
    em = layers.emphasis if layers.emphasis is not None else np.zeros_like(tv)
    ct = layers.contact
    if rng.random() < 0.5:  # mirror
        img, tv, tw, gl, gw, em = (np.ascontiguousarray(a[:, ::-1]) for a in (img, tv, tw, gl, gw, em))
        ct = None if ct is None else np.ascontiguousarray(ct[:, ::-1])
    # Light and colour of the whole photo.
    img = img * rng.uniform(0.6, 1.3) + rng.uniform(-25, 25)
    if rng.random() < 0.5:
        g = img.mean(axis=2, keepdims=True)
        img = g + (img - g) * rng.uniform(0.6, 1.3)
    img = img * rng.uniform(0.9, 1.1, 3)  # white balance
    if rng.random() < 0.3:
        gamma = rng.uniform(0.7, 1.4)
        img = 255 * (np.clip(img, 0, 255) / 255) ** gamma
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.random() < 0.2:
        img = np.clip(img + rng.normal(0, rng.uniform(2, 8), img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 96))])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    dsize = (size, size)
    sq = lambda a: cv2.resize(a, dsize, interpolation=cv2.INTER_AREA)  # noqa: E731
    # A weight is 1 only where every source pixel was labelled.
    known = (sq(tw) > 0.999).astype(np.float32)
    extra = {} if ct is None else {"contact": (sq(ct) > 0.5).astype(np.float32) * known}
    return extra | {
        "image": np.ascontiguousarray(sq(img)),
        "vehicle": np.clip(sq(tv), 0, 1).astype(np.float32),
        "vweight": known,
        "glass": np.clip(sq(gl), 0, 1).astype(np.float32),
        "gweight": (sq(gw) > 0.999).astype(np.float32),
        "emphasis": (sq(em) > 0.5).astype(np.float32) * known,
    }
