import os

import pytest
from PIL import Image

from bgr_core.cli import main
from bgr_core.testing import synthetic_car_scene

OFF = ["--effect", "none", "--window-correction", "none", "--device", "cpu"]


def test_folder_in_folder_out(tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "sub/b.jpg"]):
        Image.fromarray(synthetic_car_scene(120, 160, i + 1).image).save(src / name)
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--background", "transparent_background", *OFF]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "sub/b.png"]
    assert Image.open(out / "a.png").mode == "RGBA"
    assert "2/2" in capsys.readouterr().err  # progress bar for more than one image

    # a rerun skips the existing outputs before processing and succeeds; --overwrite redoes them
    before = (out / "a.png").stat().st_mtime_ns
    assert main([str(src), "-o", str(out), *OFF, "--background", "transparent_background"]) == 0
    assert "skipping 2 image(s)" in capsys.readouterr().err and (out / "a.png").stat().st_mtime_ns == before
    assert main([str(src), "-o", str(out), *OFF, "--background", "transparent_background", "--overwrite"]) == 0


def test_inputs_that_share_a_name_keep_their_own_outputs(tmp_path):
    for name in ("x/a.jpg", "x/a.png", "y/a.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(synthetic_car_scene(120, 160, 1).image).save(tmp_path / name)
    out = tmp_path / "out"
    args = [str(tmp_path / "x" / "a.jpg"), str(tmp_path / "x" / "a.png"), str(tmp_path / "y" / "a.jpg")]
    assert main([*args, "-o", str(out), *OFF, "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a-jpg-2.jpg", "a-jpg.jpg", "a-png.jpg"]


def test_usage_errors_come_before_any_processing(tmp_path, capsys, monkeypatch):
    from bgr_core import pipeline as P

    def boom(*a, **k):
        raise AssertionError("a photo was processed")

    monkeypatch.setattr(P.Pipeline, "remove_backgrounds", boom)
    for name in ("a.png", "b.png"):
        Image.fromarray(synthetic_car_scene(120, 160, 1).image).save(tmp_path / name)
    two = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert main([*two, "-o", str(tmp_path / "o.jpg"), *OFF]) == 2
    assert "is a file name" in capsys.readouterr().err and not (tmp_path / "o.jpg").exists()
    assert main([*two, "-o", str(tmp_path / "out"), "--size", "12x9000000", *OFF]) == 2
    assert "`output_size`" in capsys.readouterr().err
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")  # a folder cannot be made under a file, whoever runs this
    assert main([*two, "-o", str(blocker / "out"), *OFF]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # running as a user that writes anywhere (root)
            pytest.skip("the file system lets this user write into a read-only folder")
        assert main([*two, "-o", str(locked / "out"), *OFF]) == 2
        assert "output folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_single_file_to_named_output(tmp_path):
    src = tmp_path / "car.png"
    Image.fromarray(synthetic_car_scene(120, 160, 2).image).save(src)
    target = tmp_path / "white.jpg"
    assert main([str(src), "-o", str(target), *OFF]) == 0
    assert Image.open(target).size == (160, 120)


def test_errors_exit_non_zero_and_leave_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    assert main([str(bad), "-o", str(out), *OFF]) == 1
    err = capsys.readouterr().err
    assert "invalid_input" in err
    assert not out.exists() or not any(out.rglob("*"))
    assert main([str(tmp_path / "missing.jpg"), *OFF]) == 2


def test_weights_listing(capsys):
    assert main(["weights"]) == 0
    text = capsys.readouterr().out
    assert "u2netp" in text and "found" in text and "sam" in text
