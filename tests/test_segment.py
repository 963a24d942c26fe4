"""Vehicle matte: matte pieces (`functional.matte`) and the `VehicleMatte` stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bgr_core.errors import NoData
from bgr_core.frame import Frame
from bgr_core.functional import matte as M
from bgr_core.stages.segment import VehicleMatte

DATA = Path(__file__).parents[1].parent / "shared" / "data"
WEIGHTS = Path(__file__).parents[1] / "weights" / "u2netp.safetensors"


# -- matte pieces ----------------------------------------------------------------------


def test_select_vehicle_prefers_big_central_and_drops_strays():
    prob = np.zeros((100, 160), np.float32)
    prob[30:80, 40:120] = 0.9  # the car, central
    prob[5:15, 5:25] = 0.95  # a sign in a corner
    prob[85:99, 140:159] = 0.9  # a blob at the edge
    sel = M.select_vehicle(prob)
    assert sel is not None
    assert sel.keep[50, 80] and not sel.keep[10, 10] and not sel.keep[90, 150]
    assert sel.box == (40, 30, 120, 80)
    assert sel.n_components == 3


def test_select_vehicle_centre_beats_slightly_bigger_edge_object():
    prob = np.zeros((100, 200), np.float32)
    prob[35:65, 80:125] = 0.9  # central, 1350 px
    prob[0:40, 0:40] = 0.9  # corner, 1600 px
    sel = M.select_vehicle(prob)
    assert sel.keep[50, 100] and not sel.keep[10, 10]


def test_select_vehicle_keeps_piece_split_by_a_pole():
    prob = np.zeros((100, 160), np.float32)
    prob[30:80, 30:130] = 0.9
    prob[:, 75:79] = 0.0  # a pole in front of the car
    sel = M.select_vehicle(prob)
    assert sel.keep[50, 40] and sel.keep[50, 120]
    assert sel.box == (30, 30, 130, 80)


def test_select_vehicle_none_when_empty_or_tiny():
    assert M.select_vehicle(np.zeros((50, 50), np.float32)) is None
    prob = np.zeros((100, 100), np.float32)
    prob[50, 50] = 1.0
    assert M.select_vehicle(prob, min_area=0.002) is None


def test_fill_holes_closes_windows_not_open_bays():
    mask = np.zeros((60, 60), bool)
    mask[10:50, 10:50] = True
    mask[20:30, 20:30] = False  # a window: enclosed
    mask[40:60, 25:35] = False  # a bay open to the border
    filled = M.fill_holes(mask)
    assert filled[25, 25] and not filled[55, 30] and not filled[45, 30]
    assert not M.fill_holes(mask, max_frac=0.01)[25, 25]
    # a bay that opens on the edge of the mask's box (not the map's) stays open, also
    # for a mask against the map's border; what the bay does not reach is filled
    mask[40:60, 25:35] = True
    mask[50:60, 10:50] = False
    mask[44:50, 25:35] = False  # a bay up from the box's lower edge
    mask[0:10, 12:14] = True  # the mask now touches the top border
    filled = M.fill_holes(mask)
    assert not filled[46, 30] and filled[25, 25] and filled[0:10, 12:14].all()
    assert filled.dtype == bool and filled.sum() == mask.sum() + 100


def test_keep_region_keeps_fringe_drops_stray_halo():
    prob = np.zeros((40, 40), np.float32)
    prob[10:30, 10:30] = 0.9
    prob[9, 10:30] = 0.3  # soft fringe of the car
    prob[2:5, 35:38] = 0.3  # halo of nothing
    keep = prob >= 0.5
    region = M.keep_region(prob, keep, low=0.1)
    assert region[9, 15] and region[20, 20] and not region[3, 36]


def test_keep_region_reach_drops_haze_joined_to_fringe():
    prob = np.zeros((40, 40), np.float32)
    prob[15:35, 10:30] = 0.9  # the car
    prob[14, 10:30] = 0.4  # its soft fringe, 1 px out
    prob[3:14, 18:20] = 0.15  # a faint bridge up to ...
    prob[2:5, 12:28] = 0.4  # ... a haze over what stands behind it (10+ px above)
    keep = prob >= 0.5
    joined = M.keep_region(prob, keep, low=0.1)
    assert joined[3, 20]  # without a reach the haze rides on the bridge
    near = M.keep_region(prob, keep, low=0.1, reach=3)
    assert near[14, 15] and near[20, 20] and near[12, 18]
    assert not near[3, 20] and not near[8, 18]
    # a reach never drops the vehicle itself
    assert (near | ~keep).all()


def test_a_blob_above_the_car_joined_by_haze_stays_out_with_its_halo():
    # a tree or a sign above the car: its own component at 0.5, joined to the car by a
    # faint haze at 0.1 (as the net answered a CamVid street scene at 224 px)
    prob = np.zeros((60, 60), np.float32)
    prob[30:55, 10:50] = 0.9  # the car
    prob[5:15, 35:50] = 0.8  # the blob above it, well above the car's rows
    prob[4, 35:50] = prob[15, 35:50] = 0.3  # the blob's own soft halo
    prob[16:30, 40:42] = 0.15  # haze joining them
    sel = M.select_vehicle(prob)
    assert sel.keep[40, 30] and not sel.keep[10, 40]
    assert sel.apart is not None and sel.apart[10, 40] and not sel.apart[40, 30]
    joined = M.keep_region(prob, sel.keep, low=0.1)
    assert joined[10, 40]  # without `apart` the haze brings it back
    region = M.keep_region(prob, sel.keep, low=0.1, apart=sel.apart)
    assert not region[5:16, 35:50].any()  # the blob and its halo
    assert region[28, 41]  # the haze next to the car is its fringe, as before
    assert (region | ~sel.keep).all()


@pytest.mark.parametrize("gap_px", [2, 30])
def test_a_mirror_beside_the_car_is_not_apart_near_or_far(gap_px):
    # a door mirror split off at 0.5 by a soft band (at 30 px: beyond the piece rule's
    # 3 % of the diagonal): neither kept nor apart, so the soft matte that joins it to
    # the body still brings it in
    prob = np.zeros((120, 160), np.float32)
    prob[40:100, 10:100] = 0.9  # the body
    x0 = 100 + gap_px
    prob[50:58, x0 : x0 + 8] = 0.8  # the mirror
    prob[50:58, 100:x0] = 0.3  # the soft band between them
    sel = M.select_vehicle(prob)
    assert not sel.keep[54, x0 + 4] and sel.apart is None
    assert M.keep_region(prob, sel.keep, low=0.1, apart=sel.apart)[54, x0 + 4]


def test_crop_box_square_inside_image():
    box = M.crop_box((100, 50, 200, 100), (300, 400), margin=0.1)
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300
    assert x1 - x0 == y1 - y0 == 120
    assert x0 <= 100 and x1 >= 200 and y0 <= 50 and y1 >= 100
    # near a border it is shifted, not cut
    x0, y0, x1, y1 = M.crop_box((0, 0, 50, 40), (300, 400), margin=0.1)
    assert (x0, y0) == (0, 0) and x1 - x0 == y1 - y0 == 60
    # larger than the image on one axis: clipped to it
    x0, y0, x1, y1 = M.crop_box((0, 100, 400, 200), (300, 400), margin=0.1)
    assert (x0, x1, y0, y1) == (0, 400, 0, 300)


def test_paste_pass_modes_and_limit():
    base = torch.full((1, 50, 100), 0.2)
    crop = torch.full((1, 32, 32), 0.8)
    box = (20, 10, 60, 50)  # in a (100, 200) image: canvas is half size
    out = M.paste_pass(base, crop, box, (100, 200), "crop", feather=0.0)
    assert torch.allclose(out[0, 15, 20], torch.tensor(0.8)) and torch.allclose(out[0, 2, 2], torch.tensor(0.2))
    assert torch.allclose(M.paste_pass(base, crop, box, (100, 200), "mean", feather=0.0)[0, 15, 20], torch.tensor(0.5))
    limit = torch.zeros(1, 50, 100, dtype=torch.bool)
    out = M.paste_pass(base, crop, box, (100, 200), "max", limit=limit)
    assert torch.equal(out, base)


def test_soft_threshold_and_mask_box():
    p = torch.tensor([[[0.0, 0.3, 0.5, 0.7, 1.0]]])
    assert torch.allclose(M.soft_threshold(p, 0.3, 0.7), torch.tensor([[[0.0, 0.0, 0.5, 1.0, 1.0]]]))
    m = torch.zeros(1, 10, 20, dtype=torch.bool)
    m[0, 2:5, 3:9] = True
    assert M.mask_box(m).tolist() == [3.0, 2.0, 9.0, 5.0]
    assert M.mask_box(torch.zeros(4, 4, dtype=torch.bool)) is None


def test_net_input_shapes_and_normalisation():
    imgs = [torch.rand(3, 100, 80), torch.full((3, 400, 600), 0.5)]
    x = M.net_input(imgs, 64)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    expect = (0.5 - torch.tensor(M.IMAGENET_MEAN)) / torch.tensor(M.IMAGENET_STD)
    assert torch.allclose(x[1, :, 10, 10], expect, atol=1e-5)


# -- the stage with a stub net (fast, no weights) -----------------------------------------


class StubNet(torch.nn.Module):
    """Saliency = distance of each pixel's colour from the image's border colour."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
        ref = border.median(dim=-1).values[..., None, None]
        d = (x - ref).abs().sum(dim=1, keepdim=True)
        return torch.sigmoid(4.0 * (d - 1.0))


def _scene_frame(h=180, w=260, seed=0, fg=(0.8, 0.1, 0.1)) -> Frame:
    img = torch.full((3, h, w), 0.5)
    img[:, h // 3 : 2 * h // 3, w // 4 : 3 * w // 4] = torch.tensor(fg).view(3, 1, 1)
    g = torch.Generator().manual_seed(seed)
    img = (img + 0.02 * torch.rand(3, h, w, generator=g)).clamp(0, 1)
    return Frame(image=img)


def test_stage_stub_sets_alpha_box_and_nodata():
    stage = VehicleMatte(StubNet(), net_size=64)
    flat = Frame(image=torch.full((3, 120, 90), 0.4))
    failed = Frame(image=torch.rand(3, 50, 50), error=NoData("earlier"))
    frames = [_scene_frame(), flat, failed, _scene_frame(240, 160, 1)]
    out = stage(frames)
    assert len(out) == 4
    for f in (out[0], out[3]):
        f.check()
        assert f.error is None and f.alpha.shape == (1, *f.size) and f.box.shape == (4,)
    x0, y0, x1, y1 = out[0].box.tolist()
    assert abs(x0 - 65) <= 3 and abs(x1 - 195) <= 3 and abs(y0 - 60) <= 3 and abs(y1 - 120) <= 3
    assert isinstance(out[1].error, NoData) and out[1].alpha is None and out[1].box is None
    assert "no vehicle" in str(out[1].error)
    assert out[2] is not failed and out[2].error is failed.error and out[2].alpha is None
    assert frames[0].alpha is None  # inputs untouched


class DtypeSpy(StubNet):
    """StubNet that records the dtype its first convolution would compute in."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype)
        return super().forward(x)


def test_stage_cpu_amp_dtype_and_the_fast_preset_size():
    spy = DtypeSpy()
    VehicleMatte(spy, net_size=64, flip=False, crop_pass=False)([_scene_frame()])
    VehicleMatte(spy, net_size=64, flip=False, crop_pass=False, cpu_amp_dtype=torch.bfloat16)([_scene_frame()])
    assert spy.dtypes == [torch.float32, torch.bfloat16]
    assert VehicleMatte.fast(spy, cpu_amp_dtype=None).net_size == 224
    assert VehicleMatte.fast(spy, cpu_amp_dtype=torch.bfloat16).net_size == 288
    assert VehicleMatte.fast(spy, cpu_amp_dtype=torch.bfloat16, net_size=160).net_size == 160
    with pytest.raises(ValueError, match="cpu_amp_dtype must be None, 'auto'"):
        VehicleMatte(spy, cpu_amp_dtype=torch.float64)
    with pytest.raises(ValueError, match="fringe_reach must be None or >= 0"):
        VehicleMatte(spy, fringe_reach=-0.1)


class RefinerSpy(torch.nn.Module):
    """An edge refiner that records the dtype its layers would compute in and returns the
    patches' centre alpha (the identity)."""

    patch, radius, dilations = 5, 2, (1,)

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.dtypes: list[torch.dtype] = []

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        self.dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else patches.dtype)
        return patches[:, 3, 2, 2]


def test_edge_refiner_runs_in_the_nets_cpu_dtype_with_refiner_amp():
    spy = RefinerSpy()
    opts = {"net_size": 64, "flip": False, "crop_pass": False, "edge_refiner": spy}
    VehicleMatte(StubNet(), cpu_amp_dtype=torch.bfloat16, **opts)([_scene_frame()])
    VehicleMatte(StubNet(), cpu_amp_dtype=torch.bfloat16, refiner_amp=True, **opts)([_scene_frame()])
    VehicleMatte(StubNet(), cpu_amp_dtype=None, refiner_amp=True, **opts)([_scene_frame()])
    assert spy.dtypes == [torch.float32, torch.bfloat16, torch.float32]
    fast = VehicleMatte.fast(StubNet(), cpu_amp_dtype=torch.bfloat16, edge_refiner=spy)
    assert fast.refiner_amp and not VehicleMatte(StubNet()).refiner_amp


def test_stage_edge_contrast_narrows_the_soft_edge_and_keeps_the_silhouette():
    frame = _scene_frame()
    opts = {"net_size": 64, "flip": False, "crop_pass": False, "contrast": None}
    soft = VehicleMatte(StubNet(), edge_contrast=None, **opts)([frame])[0].alpha
    hard = VehicleMatte(StubNet(), edge_contrast=(0.2, 0.8), **opts)([frame])[0].alpha
    assert torch.equal(soft >= 0.5, hard >= 0.5)  # low + high == 1: the 0.5 level stays
    assert (hard[soft <= 0.2] == 0).all() and (hard[soft >= 0.8] == 1).all()
    partial = lambda a: int(((a > 0.02) & (a < 0.98)).sum())  # noqa: E731
    assert 0 < partial(hard) < partial(soft)
    with pytest.raises(ValueError, match="edge_contrast must be None or"):
        VehicleMatte(StubNet(), edge_contrast=(0.8, 0.2))
    with pytest.raises(ValueError, match="^contrast must be None or"):
        VehicleMatte(StubNet(), contrast=(0.7, 0.7))


def test_soft_range():
    assert M.soft_range("x", None) is None
    assert M.soft_range("x", [0, 1]) == (0.0, 1.0)
    for bad in ((0.8, 0.2), (-0.1, 0.5), (0.5, 1.5), (0.5,), "ab"):
        with pytest.raises(ValueError, match="x must be None or"):
            M.soft_range("x", bad)


class UnsureAtSmallSize(StubNet):
    """StubNet, but below `sure_size` it hesitates (probability <= 0.7) on blue objects."""

    def __init__(self, sure_size: int) -> None:
        super().__init__()
        self.sure_size = sure_size
        self.sizes: list[tuple[int, int]] = []  # (batch, side) of every call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append((x.shape[0], x.shape[-1]))
        p = super().forward(x)
        if x.shape[-1] >= self.sure_size:
            return p
        blue = (x[:, 2].amax(dim=(-2, -1)) > x[:, 0].amax(dim=(-2, -1))).view(-1, 1, 1, 1)
        return torch.where(blue, p.clamp(max=0.7), p)


def test_stage_rechecks_only_unsure_frames_at_the_larger_size():
    red, blue = _scene_frame(seed=2), _scene_frame(seed=3, fg=(0.1, 0.1, 0.9))
    net = UnsureAtSmallSize(sure_size=96)
    stage = VehicleMatte(net, net_size=64, recheck_size=96, flip=False, crop_pass=False)
    out = stage([red, blue])
    assert net.sizes == [(2, 64), (1, 96)]  # one pass for both, a recheck for the blue one
    plain = VehicleMatte(UnsureAtSmallSize(96), net_size=64, flip=False, crop_pass=False)([red])[0]
    sure = VehicleMatte(UnsureAtSmallSize(96), net_size=96, flip=False, crop_pass=False)([blue])[0]
    torch.testing.assert_close(out[0].alpha, plain.alpha)
    torch.testing.assert_close(out[1].alpha, sure.alpha)
    # without a recheck the blue frame keeps its unsure first pass
    unsure = VehicleMatte(UnsureAtSmallSize(96), net_size=64, flip=False, crop_pass=False)([blue])[0]
    assert (unsure.alpha - sure.alpha).abs().max() > 0.1


def test_stage_gives_no_data_when_the_net_is_lukewarm():
    # the stub is sure of the red object (confidence 0.98) and hesitates on the blue one (0.70):
    # a main component whose mean probability is below min_confidence is no vehicle
    red, blue = _scene_frame(seed=2), _scene_frame(seed=3, fg=(0.1, 0.1, 0.9))
    stage = VehicleMatte(UnsureAtSmallSize(96), net_size=64, flip=False, crop_pass=False, min_confidence=0.8)
    assert VehicleMatte(StubNet()).min_confidence == 0 and VehicleMatte.fast(StubNet()).min_confidence == 0
    assert stage.first_pass_confidence(blue.image) == pytest.approx(0.70, abs=0.01)
    out = stage([red, blue])
    assert out[0].error is None and out[0].alpha is not None
    assert isinstance(out[1].error, NoData) and out[1].alpha is None
    assert re.search(r"confidence 0\.[0-7]\d, below 0\.8", str(out[1].error))
    # a recheck at a size where the net is sure rescues it
    rechecked = VehicleMatte(UnsureAtSmallSize(96), net_size=64, recheck_size=96, flip=False, crop_pass=False,
                             min_confidence=0.8)([blue])[0]
    assert rechecked.error is None and rechecked.alpha is not None
    with pytest.raises(ValueError, match="min_confidence"):
        VehicleMatte(StubNet(), flip=False, min_confidence=1.5)
    with pytest.raises(ValueError, match="min_confidence needs flip=False"):
        VehicleMatte(StubNet(), min_confidence=0.8)  # flip averaging on by default


def test_selection_confidence_is_the_main_components_mean_probability():
    prob = np.zeros((20, 20), np.float32)
    prob[2:8, 2:8] = 0.9
    prob[2:8, 2:5] = 0.6  # the main component's mean: (18 * 0.6 + 18 * 0.9) / 36
    prob[14:16, 14:16] = 1.0  # a stray blob does not count
    sel = M.select_vehicle(prob)
    assert sel is not None and sel.confidence == pytest.approx(0.75)


def test_unsure_share():
    prob = np.array([[0.95, 0.6, 0.7, 0.2]], np.float32)
    keep = np.array([[True, True, True, False]])
    assert M.unsure_share(prob, keep) == pytest.approx(2 / 3)
    assert M.unsure_share(prob, np.zeros_like(keep)) == 0.0


# -- the stage with U2NetP ---------------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    if not WEIGHTS.is_file():
        pytest.skip("weights/u2netp.safetensors is not present")
    from bgr_core.loaders import load_u2netp

    return load_u2netp("cpu")


def _photo(path: Path) -> Frame:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.array(im.convert("RGB"))
    return Frame(image=torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0)


def test_stage_nodata_on_flat_image(net):
    stage = VehicleMatte(net)
    out = stage([Frame(image=torch.full((3, 200, 300), 0.6)), Frame(image=torch.zeros(3, 64, 64))])
    for f in out:
        assert isinstance(f.error, NoData) and f.alpha is None and f.box is None
        assert f.error.code == "no_data"


def test_stage_batched_equals_one_by_one(net):
    from bgr_core.testing import synthetic_car_scene

    frames = []
    for seed, (h, w) in enumerate([(240, 320), (300, 200), (200, 420)]):
        scene = synthetic_car_scene(h, w, seed=seed)
        frames.append(Frame(image=torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0))
    frames.append(Frame(image=torch.full((3, 100, 100), 0.5)))  # NoData in the middle of a batch
    stage = VehicleMatte(net, batch_size=4)
    batched = stage(frames)
    single = [VehicleMatte(net, batch_size=1)([f])[0] for f in frames]
    for b, s in zip(batched, single):
        assert type(b.error) is type(s.error)
        if b.error is None:
            b.check()
            assert (b.alpha - s.alpha).abs().max() <= 1e-4
            assert torch.allclose(b.box, s.box)


def _carparts(n: int):
    folder = DATA / "carparts"
    if not (folder / "annotations.json").is_file():
        pytest.skip("../shared/data/carparts is not present")
    ann = json.loads((folder / "annotations.json").read_text())
    cats = {c["id"]: c["name"] for c in ann["categories"]}
    polys: dict[int, list[np.ndarray]] = {}
    for a in ann["annotations"]:
        if cats[a["category_id"]] == "_background_":
            continue
        for p in a["segmentation"]:
            arr = np.asarray(p, np.float64).reshape(-1, 2)
            if len(arr) >= 3:
                polys.setdefault(a["image_id"], []).append(arr)
    images = [im for im in sorted(ann["images"], key=lambda i: i["id"]) if im["id"] in polys][:n]
    return folder, images, polys


def test_stage_on_real_carparts_photos(net):
    folder, images, polys = _carparts(6)
    frames = [_photo(folder / im["path"]) for im in images]
    out = VehicleMatte(net)(frames)
    recalls, precisions = [], []
    for im, f in zip(images, out):
        f.check()
        assert f.error is None and f.alpha.dtype == f.image.dtype
        h, w = f.size
        parts = np.zeros((h, w), np.uint8)
        for p in polys[im["id"]]:
            cv2.fillPoly(parts, [np.round(p).astype(np.int32)], 1)
        hull = cv2.convexHull(np.round(np.concatenate(polys[im["id"]])).astype(np.int32))
        region = np.zeros((h, w), np.uint8)
        cv2.fillPoly(region, [hull], 1)
        near = cv2.distanceTransform(1 - region, cv2.DIST_L2, 5) <= 0.03 * np.hypot(h, w)
        m = (f.alpha[0] >= 0.5).numpy()
        recalls.append((m & parts.astype(bool)).sum() / parts.sum())
        precisions.append((m & near).sum() / m.sum())
        x0, y0, x1, y1 = f.box.tolist()
        ys, xs = np.nonzero(m)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert np.mean(recalls) > 0.95 and min(recalls) > 0.85, recalls
    assert np.mean(precisions) > 0.95 and min(precisions) > 0.85, precisions


def test_stage_on_large_photo_with_small_car(net):
    path = DATA / "photos" / "car-1.jpg"
    if not path.is_file():
        pytest.skip("../shared/data/photos is not present")
    frame = _photo(path)
    out = VehicleMatte(net)([frame])[0]
    out.check()
    assert out.error is None
    x0, y0, x1, y1 = out.box.tolist()
    h, w = out.size
    assert (x1 - x0) * (y1 - y0) > 0.02 * h * w
