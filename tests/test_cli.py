import numpy as np
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

    # existing outputs are kept unless --overwrite
    assert main([str(src), "-o", str(out), *OFF, "--background", "transparent_background"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([str(src), "-o", str(out), *OFF, "--background", "transparent_background", "--overwrite"]) == 0


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
