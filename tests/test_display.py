"""Rich display (bgr_core.display, Frame/Result ``_repr_png_``) and the before/after gallery."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from bgr_core import Frame, Result, stage_figure
from bgr_core import display as D
from bgr_core.gallery import find_photos, main, make_gallery
from bgr_core.testing import synthetic_car_scene

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_LABELS = ["image", "matte", "glass", "plates (1)", "shadow", "output"]


def _png(data: bytes) -> Image.Image:
    assert isinstance(data, bytes) and data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _frame(h: int = 120, w: int = 160, *, layers: bool = True, rgba: bool = True) -> Frame:
    """A synthetic frame, with every optional layer filled from the scene's truth when `layers`."""
    scene = synthetic_car_scene(h, w, seed=1)
    image = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255
    if not layers:
        return Frame(image=image)
    alpha = torch.from_numpy(scene.mask).float()[None]
    glass = torch.from_numpy(scene.glass).float()[None]
    shadow = torch.zeros_like(alpha)
    x0, y0, x1, y1 = scene.box
    shadow[:, y1 - 4 : min(h, y1 + 4), x0:x1] = 0.7
    plates = torch.tensor([[[x0 + 4.0, y1 - 12.0], [x0 + 24.0, y1 - 12.0], [x0 + 24.0, y1 - 4.0], [x0 + 4.0, y1 - 4.0]]])
    output = torch.cat([image, alpha]) if rgba else image * alpha + (1 - alpha)
    frame = Frame(image=image, alpha=alpha, box=torch.tensor(scene.box, dtype=torch.float32), glass=glass,
                  plates=plates, shadow=shadow, output=output)
    frame.check()
    return frame


def _panel_width(w: int, h: int, height: int) -> int:
    return w if h <= height else round(w * height / h)


# -- stage figure ----------------------------------------------------------------------------------


def test_stage_panels_one_per_layer_in_order():
    panels = D.stage_panels(_frame())
    assert [label for label, _ in panels] == ALL_LABELS
    assert {img.size for _, img in panels} == {(160, 120)}  # small frames are not upscaled


def test_frame_repr_png_is_the_stage_figure_with_a_panel_per_layer():
    image = _png(_frame()._repr_png_())
    assert image.size == (6 * 160 + 5 * D.GAP, D.LABEL_HEIGHT + 120)
    assert image.mode == "RGB"


def test_frame_without_optional_layers_shows_only_its_image():
    frame = _frame(layers=False)
    assert [label for label, _ in D.stage_panels(frame)] == ["image"]
    assert _png(frame._repr_png_()).size == (160, D.LABEL_HEIGHT + 120)


def test_missing_layers_are_skipped_and_empty_plates_are_labelled():
    frame = _frame().replace(glass=None, shadow=None, plates=torch.zeros((0, 4, 2)))
    assert [label for label, _ in D.stage_panels(frame)] == ["image", "matte", "plates (0)", "output"]


def test_large_frames_are_downscaled_to_the_panel_height():
    frame = _frame(600, 800)
    figure = stage_figure(frame, height=200)
    assert figure.size == (6 * _panel_width(800, 600, 200) + 5 * D.GAP, D.LABEL_HEIGHT + 200)
    # and never taller than MAX_HEIGHT per panel, whatever is asked
    assert stage_figure(frame, height=5000).height == D.LABEL_HEIGHT + min(600, D.MAX_HEIGHT)


def test_plate_outline_is_drawn_on_its_panel():
    panels = dict(D.stage_panels(_frame()))
    quad_panel = np.asarray(panels["plates (1)"]).astype(int)
    plain = np.asarray(panels["image"]).astype(int)
    changed = np.abs(quad_panel - plain).sum(-1) > 0
    assert changed.any()
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = _frame().plates[0, :, 0].min(), _frame().plates[0, :, 1].min(), _frame().plates[0, :, 0].max(), _frame().plates[0, :, 1].max()
    assert xs.min() >= x0 - 2 and xs.max() <= x1 + 2 and ys.min() >= y0 - 2 and ys.max() <= y1 + 2


def test_transparent_output_is_drawn_over_a_checkerboard():
    frame = _frame(rgba=True)
    output = np.asarray(dict(D.stage_panels(frame))["output"])
    corner = output[:16, :16]  # no vehicle there: alpha 0
    assert set(np.unique(corner)) == {222, 255}
    opaque = frame.alpha[0].numpy() > 0.99
    expected = (frame.image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(output[opaque].astype(int) - expected[opaque].astype(int)).max() <= 1


def test_frame_on_another_dtype_draws():
    frame = _frame().to("cpu")
    frame = frame.replace(image=frame.image.half(), alpha=frame.alpha.double())
    assert len(D.stage_panels(frame)) == 6


# -- Result ----------------------------------------------------------------------------------------


def test_result_repr_png_is_the_output_at_most_512_tall():
    frame = _frame(1200, 900, rgba=True)
    image = _png(Result(frame=frame)._repr_png_())
    assert image.size == (384, 512)
    small = _png(Result(frame=_frame(rgba=False))._repr_png_())
    assert small.size == (160, 120)


def test_result_with_error_has_no_png_and_no_figure():
    result = Result(error="no_data", error_description="no vehicle found")
    assert result._repr_png_() is None
    assert result.frame is None
    with pytest.raises(ValueError, match="no_data"):
        stage_figure(result)


def test_stage_figure_of_a_result_is_its_frames():
    frame = _frame()
    assert stage_figure(Result(frame=frame)).size == stage_figure(frame).size


def test_real_pipeline_result_displays(cpu_pipeline):
    scene = synthetic_car_scene(240, 320, seed=2)
    result = cpu_pipeline.remove_background(image_file=scene.image, background="transparent_background")
    assert result.ok, result.error_description
    assert _png(result._repr_png_()).size == (320, 240)
    labels = [label for label, _ in D.stage_panels(result)]
    assert labels == ["image", "matte", "glass", "shadow", "output"]  # no plate stage was asked for


# -- montage ---------------------------------------------------------------------------------------


def test_montage_never_upscales_and_accepts_arrays_tensors_and_pil():
    big = np.zeros((300, 200, 3), np.uint8)
    small = Image.new("RGBA", (50, 40), (255, 0, 0, 128))
    tensor = torch.rand(1, 100, 80)
    sheet = D.montage([("big", big), ("small", small), ("mask", tensor)], height=150)
    assert sheet.size == (100 + 50 + 80 + 2 * D.GAP, D.LABEL_HEIGHT + 150)
    with pytest.raises(ValueError):
        D.montage([])


# -- gallery ---------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(synthetic_car_scene(240, 320, seed=4).image).save(folder / "a.png")
    Image.fromarray(synthetic_car_scene(240, 320, seed=5).image).save(folder / "sub" / "b.jpg")
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    return folder


class _FakePipeline:
    """Stands in for Pipeline where only the gallery's writing is under test."""

    batch_size = 2

    def __init__(self):
        from bgr_core.imageio import ImageLimits

        self.limits = ImageLimits()

    def remove_backgrounds(self, images, **params):
        for array in images:
            image = torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255
            output = torch.cat([image, torch.ones_like(image[:1]) * 0.5])
            yield Result(frame=Frame(image=image, output=output), timings={"segment": 1.0})


def test_find_photos_walks_the_folder(photos):
    assert [p.relative_to(photos).as_posix() for p in find_photos(photos)] == ["a.png", "broken.jpg", "sub/b.jpg"]


def test_gallery_html_is_self_contained(photos, tmp_path, cpu_pipeline):
    out = make_gallery(photos, tmp_path / "out" / "gallery.html", pipeline=cpu_pipeline, height=120,
                       background="white_background", layout="crop")
    assert out == tmp_path / "out" / "gallery.html"
    page = out.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 4  # before and after of a.png and sub/b.jpg; broken.jpg has neither
    assert all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "invalid_input" in page and "broken.jpg" in page and "sub/b.jpg" in page
    assert "2/3 photos" in page
    assert not (tmp_path / "out" / "images").exists()


def test_gallery_folder_writes_linked_thumbnails(photos, tmp_path):
    index = make_gallery(photos, tmp_path / "gallery", pipeline=_FakePipeline(), height=60)
    assert index == tmp_path / "gallery" / "index.html"
    files = sorted(p.name for p in (tmp_path / "gallery" / "images").iterdir())
    assert files == ["0000-after.png", "0000-before.jpg", "0002-after.png", "0002-before.jpg"]
    with Image.open(tmp_path / "gallery" / "images" / "0000-after.png") as thumb:
        assert thumb.mode == "RGBA" and thumb.height == 60  # transparency kept; the page draws the checkerboard
    assert 'src="images/0000-before.jpg"' in index.read_text(encoding="utf-8")


def test_gallery_default_output_is_in_the_temp_folder(photos, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = make_gallery(photos, pipeline=_FakePipeline())
    assert out.parent == tmp_path / "tmp" and out.name.startswith("bgr-gallery-") and out.suffix == ".html"


def test_gallery_command_reports_a_missing_or_empty_folder(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), "-o", str(tmp_path / "g.html")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "-o", str(tmp_path / "g.html")]) == 2
    assert "no jpg, png or webp" in capsys.readouterr().err
    assert not (tmp_path / "g.html").exists()


def test_gallery_default_output_is_new_private_and_unpredictable(photos, cpu_pipeline, tmp_path):
    import os
    import stat

    first = make_gallery(photos, pipeline=cpu_pipeline)
    second = make_gallery(photos, pipeline=cpu_pipeline)
    try:
        assert first != second and first.name.startswith("bgr-gallery-") and first.suffix == ".html"
        assert stat.S_IMODE(os.stat(first).st_mode) & 0o077 == 0
        # an explicit output that is a link is replaced, not written through
        target = tmp_path / "victim.txt"
        target.write_text("keep")
        link = tmp_path / "page.html"
        link.symlink_to(target)
        make_gallery(photos, output=link, pipeline=cpu_pipeline)
        assert target.read_text() == "keep" and not link.is_symlink()
    finally:
        for p in (first, second):
            p.unlink(missing_ok=True)
