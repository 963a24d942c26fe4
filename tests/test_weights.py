import pytest

from bgr_core import weights
from bgr_core.errors import WeightsNotFound


def test_resolution_order(tmp_path, monkeypatch):
    explicit = tmp_path / "explicit.safetensors"
    explicit.write_bytes(b"x")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "u2netp.safetensors").write_bytes(b"x")
    monkeypatch.setenv(weights.ENV_VAR, str(env_dir))
    assert weights.resolve("u2netp", explicit) == explicit
    assert weights.resolve("u2netp") == env_dir / "u2netp.safetensors"
    monkeypatch.delenv(weights.ENV_VAR)
    assert weights.resolve("u2netp").name == "u2netp.safetensors"  # checkout or packaged copy


def test_missing_weight_lists_every_place_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path))
    with pytest.raises(WeightsNotFound) as info:
        weights.resolve("sam")
    message = str(info.value)
    assert info.value.code == "request_failed"
    assert "sam_vit_b_01ec64.pth" in message and str(tmp_path) in message and "weights" in message
    with pytest.raises(WeightsNotFound, match="stable-diffusion-inpainting"):
        weights.resolve("sd_inpaint")


def test_the_user_folder_is_always_looked_in(tmp_path, monkeypatch):
    """An installed wheel has no checkout folder: optional weights still have a place,
    listed by `candidates` and found there."""
    from bgr_core import weights

    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = tmp_path / "bgr_core" / "weights"
    assert weights.user_dir() == folder
    assert folder / "sam_vit_b_01ec64.pth" in weights.candidates("sam")
    folder.mkdir(parents=True)
    (folder / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    if not (weights.candidates("sam")[0].is_file() and weights.candidates("sam")[0] != folder / "sam_vit_b_01ec64.pth"):
        assert weights.resolve("sam") == folder / "sam_vit_b_01ec64.pth"
