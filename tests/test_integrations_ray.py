"""`bgr --engine ray` / `bgr_core.integrations.ray` on a local Ray with 2 CPUs: the same
images as the single-process CLI, bad files reported with their codes and never written."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from bgr_core.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 photos (shared carparts photos when present, else the example photo) in two
    folders, and junk: a text file named .jpg, an empty .png, a truncated jpg."""
    src = tmp_path_factory.mktemp("photos")
    shared = sorted((SHARED / "carparts" / "JPEGImages").glob("*.jpg"))[:12]
    photos = shared or [ROOT / "examples" / "car.jpg"] * 12
    for i, p in enumerate(photos):
        (src / ("a" if i % 2 else "b")).mkdir(exist_ok=True)
        shutil.copy(p, src / ("a" if i % 2 else "b") / f"photo{i}.jpg")
    (src / "a" / "notes.jpg").write_text("not an image")
    (src / "b" / "empty.png").write_bytes(b"")
    (src / "truncated.jpg").write_bytes((ROOT / "examples" / "car.jpg").read_bytes()[:300])
    return src


def test_same_images_as_the_local_cli_and_bad_files_reported(local_ray, folder, tmp_path, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    args = ["--layout", "center", "-q", "--device", "cpu"]
    assert main([str(folder), "-o", str(local), *args]) == 1  # the junk fails, the photos are written
    capsys.readouterr()
    assert main(["run", str(folder), "-o", str(remote), *args, "--engine", "ray", "--workers", "1",
                 "--batch-size", "4"]) == 1
    err = capsys.readouterr().err
    assert "3 of 15 image(s) failed" in err
    for bad in ("notes.jpg", "empty.png", "truncated.jpg"):
        assert bad in err
    assert "invalid_input" in err
    made = sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file())
    assert len(made) == 12  # nothing written for the junk
    for rel in made:
        assert _same_image(remote / rel, local / rel), rel


def _same_image(a: Path, b: Path) -> bool:
    """The same bytes, or the same picture to the rounding of a thread count: Ray's actor
    runs torch on the one core it is given, the CLI on all; float32 convolutions split
    their sums by thread where oneDNN has no bfloat16 kernels (AVX2 CPUs), which moves a
    few JPEG pixels by one level (measured: at most 1 level, on 0.01 % of the pixels)."""
    if a.read_bytes() == b.read_bytes():
        return True
    with Image.open(a) as x, Image.open(b) as y:
        pa, pb = np.asarray(x, np.int16), np.asarray(y, np.int16)
    if pa.shape != pb.shape:
        return False
    d = np.abs(pa - pb)
    return int(d.max()) <= 2 and float((d > 0).mean()) < 1e-3


def test_a_dataset_of_bytes_gives_result_rows(local_ray, folder):
    from bgr_core.integrations.ray import RESULT_COLUMNS, remove_background_dataset

    rows = [{"path": str(p), "bytes": p.read_bytes()} for p in sorted(folder.rglob("*.*"))[:3]]
    rows.append({"path": "junk", "bytes": b"\xff\xd8\xff garbage"})
    out = remove_background_dataset(ray.data.from_items(rows), {"background": "transparent_background"},
                                    workers=1, batch_size=2, device="cpu").take_all()
    assert len(out) == 4 and all(set(r) == set(RESULT_COLUMNS) for r in out)
    by = {r["path"]: r for r in out}
    assert by["junk"]["error"] == "invalid_input" and by["junk"]["output_path"] == ""
