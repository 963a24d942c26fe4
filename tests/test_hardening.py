"""Bad input, hostile input, many threads — nothing crashes, hangs or leaks.

Size limits (decompression bomb), hostile parameters and sources, keys, threads sharing one
Pipeline, atomic CLI output, and error descriptions without tracebacks or paths.
The random fuzzing lives in test_fuzz.py; longer runs in benchmarks/fuzz.py and
benchmarks/threads_memory.py.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bgr_core
from bgr_core import Pipeline, remove_background
from bgr_core import imageio as bio
from bgr_core import loaders
from bgr_core.errors import InvalidInput
from bgr_core.imageio import ImageLimits, decode_bytes, load_image, write_atomic
from bgr_core.request import parse_request
from bgr_core.testing import synthetic_car_scene

OFF = {"effect": "none", "window_correction": "none"}
PACKAGE_DIR = str(Path(bgr_core.__file__).resolve().parent)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine torch's own threads slow it 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * w) * 64, 9)  # real rows: decoding would go on and on
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# -- size limits ---------------------------------------------------------------------------


def test_decompression_bomb_refused_fast_and_small(fast_pipeline):
    bomb = _bomb_png()
    assert len(bomb) < 200_000  # declares 30 000 x 30 000 x 3 = 2.7 GB of pixels
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InvalidInput, match="limit"):
            decode_bytes(bomb, "image_file")
        r = fast_pipeline.remove_background(image_base64=base64.b64encode(bomb).decode(), **OFF)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.error == "invalid_input" and "image_base64" in r.error_description and "limit" in r.error_description
    assert elapsed < 0.5, elapsed
    assert peak < 20 * 2**20, peak  # a few copies of the encoded bytes, never the pixels


def test_limits_are_configurable():
    data = _png(synthetic_car_scene(30, 40, 1).image)
    assert len(data) > 100 and load_image(data, "image_file").shape == (30, 40, 3)
    with pytest.raises(InvalidInput, match="30 = 1200 pixels, over the limit of 1000"):
        load_image(data, "image_file", ImageLimits(max_pixels=1000))
    with pytest.raises(InvalidInput, match="larger than the limit of 100 bytes"):
        load_image(data, "image_file", ImageLimits(max_bytes=100))
    with pytest.raises(InvalidInput, match="over the limit"):  # arrays too, before any copy
        load_image(np.zeros((100, 100), np.float32), "image_file", ImageLimits(max_pixels=1000))
    pipe = Pipeline("cpu", limits=ImageLimits(max_pixels=1000), allow_network=True)
    assert pipe.limits.max_pixels == 1000 and pipe.limits.allow_network and not pipe.limits.allow_private
    r = pipe.remove_background(image_file=data, **OFF)
    assert r.error == "invalid_input" and "over the limit of 1000" in r.error_description


# -- hostile values found while fuzzing ------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"output_size": (float("inf"), 20)}, "`output_size` must be"),
        ({"output_size": (10**400, 20)}, "`output_size` sides"),
        ({"aspect_ratio": (4, 0)}, "`aspect_ratio` must look like"),
        ({"aspect_ratio": "4:0"}, "`aspect_ratio` must look like"),
        ({"aspect_ratio": ("a", "b")}, "`aspect_ratio` must look like"),
        ({"aspect_ratio": (10**400, 1)}, "`aspect_ratio` must look like"),
        ({"shadow_strength": 10**400}, "`shadow_strength` must be a number"),
        ({"shadow_strength": float("nan")}, "`shadow_strength` must be a number"),
        ({"margin": b"0.1"}, "`margin` must be a number"),
        ({"key": "\ud800"}, "`key` must be valid text"),
        ({"layout": "x" * 100_000}, "`layout` must be one of 'center', 'crop', 'none' but is 'xxx"),
        ({"y" * 100_000: 1}, "unknown parameter(s) 'yyy"),
    ],
)
def test_hostile_parameters(params, message):
    with pytest.raises(InvalidInput) as info:
        parse_request({"image_file": "a.png", **params})
    assert message in str(info.value)
    assert len(str(info.value)) < 1000  # the value is shortened, never echoed whole


def test_hostile_sources(tmp_path):
    png = _png(synthetic_car_scene(30, 40, 1).image)
    closed = io.BytesIO(png)
    closed.close()
    lazy = Image.open(io.BytesIO(png[:100]))  # opens, fails when loaded
    cases = [
        (closed, "cannot be read"),
        (io.StringIO("x"), "binary mode"),
        ("~no_such_user_xyz/a.png", "home folder"),
        ("x" * 5000, "File name too long"),
        (lazy, "corrupt or truncated"),
        (str(tmp_path), "no such file"),
        (np.zeros((4, 4), object), "dtype must be"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    ]
    for source, message in cases:
        with pytest.raises(InvalidInput, match=message) as info:
            load_image(source, "image_file")
        assert len(str(info.value)) < 300
    # odd PIL modes and base64 handed over as bytes are accepted
    assert load_image(Image.new("F", (4, 3), 300.0), "image_file")[0, 0].tolist() == [255, 255, 255]
    assert load_image(Image.new("I;16", (4, 3), 256 * 200), "image_file")[0, 0].tolist() == [200] * 3
    assert load_image(base64.b64encode(png), "image_base64").shape == (30, 40, 3)
    assert load_image(png, "image_base64").shape == (30, 40, 3)  # raw bytes still work


def test_key_with_surrogates_is_not_a_crash():
    pipe = Pipeline("cpu", api_keys=["secret"])
    r = pipe.remove_background(image_file=np.zeros((8, 8, 3), np.uint8), key="\udcff")
    assert r.error == "unauthorized_request"
    # without keys configured, the key is a parameter like the others
    r = Pipeline("cpu").remove_background(image_file=np.zeros((8, 8, 3), np.uint8), key="\udcff")
    assert r.error == "invalid_input" and "`key`" in r.error_description


def test_keys_never_fail_open(monkeypatch):
    for bad, match in (("secret", "not a single string"), ([], "is empty"), ([""], "non-empty string"),
                       (["ok", "  "], "non-empty string"), ([b"x"], "non-empty string"), (5, "list of keys")):
        with pytest.raises(ValueError, match=match):
            Pipeline("cpu", api_keys=bad)
    monkeypatch.setenv("BGR_API_KEYS", " , ")
    with pytest.raises(ValueError, match="holds no key"):
        Pipeline("cpu")
    monkeypatch.setenv("BGR_API_KEYS", " a1 , ,b2 ")
    assert Pipeline("cpu").api_keys == ("a1", "b2")
    monkeypatch.setenv("BGR_API_KEYS", "")
    assert Pipeline("cpu").api_keys == ()


def test_cuda_without_cuda_and_a_misconfigured_service_answer_with_error_results(monkeypatch):
    from bgr_core import api

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pipe = Pipeline("cuda")  # no crash: every request answers
    r = pipe.remove_background(image_file=np.zeros((8, 8, 3), np.uint8))
    assert r.error == "request_failed" and "CUDA is not available" in r.error_description
    assert [x.error for x in pipe.remove_backgrounds([np.zeros((8, 8, 3), np.uint8)] * 2)] == ["request_failed"] * 2
    api.clear_default_pipelines()
    monkeypatch.setenv("BGR_API_KEYS", ",")
    r = remove_background(device="cpu", image_file=np.zeros((8, 8, 3), np.uint8))
    assert r.error == "request_failed" and "misconfigured" in r.error_description and "BGR_API_KEYS" in r.error_description
    assert remove_background(device="tpu", image_file=b"x").error == "invalid_input"
    api.clear_default_pipelines()  # none built under the broken keys stays behind


def test_key_is_checked_before_the_parameters():
    pipe = Pipeline("cpu", api_keys=["secret"])
    image = np.zeros((8, 8, 3), np.uint8)
    bad = {"image_file": image, "layout": "sideways", "background": "plaid"}
    assert pipe.remove_background(**bad).error == "unauthorized_request"
    assert pipe.remove_background(key="s", **bad).error == "unauthorized_request"
    assert pipe.remove_background(key="secret", **bad).error == "invalid_input"
    assert pipe.remove_background(key=["secret"], image_file=image).error == "unauthorized_request"


def test_api_arguments_never_raise():
    for kwargs in ({"device": "tpu"}, {"device": object()}, {"device": [1]}, {"pipeline": "cpu"}):
        r = remove_background(image_file=b"x", **kwargs)
        assert r.error == "invalid_input", kwargs
        assert ("`device`" in r.error_description) or ("`pipeline`" in r.error_description)


# -- error descriptions ------------------------------------------------------------------------


def test_internal_failure_has_no_traceback_or_paths(fast_pipeline, monkeypatch, caplog):
    from bgr_core.stages.background import ComposeBackground

    def boom(self, frames):
        raise RuntimeError(f"Traceback (most recent call last): boom in {PACKAGE_DIR}/stages/background.py")

    monkeypatch.setattr(ComposeBackground, "__call__", boom)
    scene = synthetic_car_scene(48, 64, 1).image
    r = fast_pipeline.remove_background(image_file=scene, **OFF)
    assert r.error == "request_failed"
    assert "Traceback" not in r.error_description and PACKAGE_DIR not in r.error_description
    assert "boom" not in r.error_description and "RuntimeError" in r.error_description
    assert "boom" in caplog.text  # the operator still gets the whole story in the log

    # the API's last line of defence, for failures outside the stages
    def broken(self, **params):
        raise KeyError(f"{PACKAGE_DIR}/pipeline.py")

    monkeypatch.setattr(Pipeline, "remove_background", broken)
    r = remove_background(pipeline=fast_pipeline, image_file=scene)
    assert r.error == "request_failed" and r.error_description == "processing failed (KeyError)"


def test_descriptions_name_parameter_allowed_values_and_given_path(fast_pipeline, tmp_path):
    r = fast_pipeline.remove_background(image_file=np.zeros((8, 8, 3), np.uint8), background="blue")
    assert r.error_description.startswith("`background` must be one of 'white_background'")
    missing = tmp_path / "sub" / "car.png"
    r = fast_pipeline.remove_background(image_file=str(missing))
    assert r.error == "invalid_input" and str(missing) in r.error_description  # the caller's own path
    r = fast_pipeline.remove_background(image_file=np.zeros((8, 8, 3), np.uint8), shadow_strength=3)
    assert r.error_description == "`shadow_strength` must be a number in [0.0, 1.0] but is 3"


# -- threads ---------------------------------------------------------------------------------


def test_segment_loads_once_under_concurrency(monkeypatch):
    calls = []
    real = loaders.load_matte_net

    def spy(*args, **kwargs):
        calls.append(args)
        time.sleep(0.05)  # widen the race window
        return real(*args, **kwargs)

    monkeypatch.setattr(loaders, "load_matte_net", spy)
    pipe = Pipeline("cpu")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(pipe.segment)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(s is seen[0] for s in seen)
    assert Pipeline("cpu").segment.net is seen[0].net  # the net is cached per (file, device)


def test_threads_share_one_pipeline(fast_pipeline, monkeypatch):
    """8 threads x 10 calls on one Pipeline give the serial bytes; nothing reloads."""
    loads = []
    monkeypatch.setattr(loaders, "load_matte_net", lambda *a, **k: loads.append(a))
    images = [synthetic_car_scene(120, 160, seed).image for seed in range(4)]
    params = [
        {**OFF},
        {**OFF, "background": "transparent_background"},
        {**OFF, "layout": "center", "output_size": "96x64"},
        {"effect": "shadow", "window_correction": "none", "layout": "crop"},
    ]
    jobs = [(i % 4, (i // 4) % 4) for i in range(80)]
    serial = {}
    for im, pa in set(jobs):
        r = fast_pipeline.remove_background(image_file=images[im], **params[pa])
        assert r.ok, r.error_description
        serial[im, pa] = r.encode("png")
    segment = fast_pipeline.segment
    errors: list[str] = []
    results: dict[int, bytes] = {}

    def worker(k: int):
        for n in range(10):
            idx = k * 10 + n
            im, pa = jobs[idx]
            try:
                r = fast_pipeline.remove_background(image_file=images[im], **params[pa])
                results[idx] = r.encode("png")
            except Exception as err:  # pragma: no cover - would be the bug
                errors.append(repr(err))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and len(results) == 80
    for idx, data in results.items():
        assert data == serial[jobs[idx]], idx
    assert loads == [] and fast_pipeline.segment is segment


# -- files -----------------------------------------------------------------------------------


@pytest.fixture
def fast_cli(monkeypatch, fast_pipeline):
    """The CLI's Pipeline with the quick segment stage."""
    segment = fast_pipeline.segment
    monkeypatch.setattr(Pipeline, "segment", property(lambda self: segment))
    from bgr_core.cli import main

    return main


CLI_OFF = ["--effect", "none", "--window-correction", "none", "--device", "cpu", "-q"]


def test_cli_never_leaves_a_half_written_file(tmp_path, fast_cli, monkeypatch, capsys):
    src = tmp_path / "car.png"
    src.write_bytes(_png(synthetic_car_scene(96, 128, 1).image))
    out = tmp_path / "out"
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(bio.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    assert fast_cli([str(src), "-o", str(out), *CLI_OFF]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # neither the target nor the temporary file

    monkeypatch.setattr(bio.os, "fdopen", real_fdopen)
    monkeypatch.setattr(bgr_core.result, "encode_image", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("enc")))
    assert fast_cli([str(src), "-o", str(out), *CLI_OFF]) == 1
    assert "cannot encode" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_cli_keeps_existing_output(tmp_path, fast_cli, capsys):
    src = tmp_path / "car.png"
    src.write_bytes(_png(synthetic_car_scene(96, 128, 1).image))
    target = tmp_path / "car-out.png"
    target.write_bytes(b"precious")
    assert fast_cli([str(src), "-o", str(target), *CLI_OFF]) == 0  # skipped before processing
    assert "--overwrite" in capsys.readouterr().err
    assert target.read_bytes() == b"precious" and sorted(p.name for p in tmp_path.iterdir()) == ["car-out.png", "car.png"]
    assert fast_cli([str(src), "-o", str(target), *CLI_OFF, "--overwrite"]) == 0
    assert Image.open(target).size == (128, 96)


def test_write_atomic_mode_and_race(tmp_path):
    target = write_atomic(tmp_path / "a.png", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    with pytest.raises(FileExistsError):
        write_atomic(target, b"y", overwrite=False)
    assert target.read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_outputs_too_large_for_the_limits_or_the_format_are_refused_before_any_work(monkeypatch):
    from bgr_core.stages.segment import VehicleMatte

    def fail(*a, **k):
        raise AssertionError("the matte ran")

    pipe = Pipeline("cpu")
    monkeypatch.setattr(VehicleMatte, "__call__", fail)
    photo = np.zeros((667, 1000, 3), np.uint8)
    r = pipe.remove_background(image_file=photo, output_size="10000x10000")
    assert r.error == "invalid_input" and "`output_size`" in r.error_description and "over the limit" in r.error_description
    photo = np.zeros((2000, 1700, 3), np.uint8)  # at 10:1, 20000 x 2000: within the pixels, not within webp
    r = pipe.remove_background(image_file=photo, aspect_ratio="10:1", output_format="webp", layout="center")
    assert r.error == "invalid_input" and "webp can hold" in r.error_description
    tall = np.zeros((4000, 400, 3), np.uint8)
    r = pipe.remove_background(image_file=tall, aspect_ratio="10:1", layout="center")
    assert r.error == "invalid_input" and "`aspect_ratio`" in r.error_description


def test_local_files_can_be_switched_off_with_one_wording(tmp_path):
    good = tmp_path / "car.png"
    good.write_bytes(_png(np.zeros((8, 8, 3), np.uint8)))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    pipe = Pipeline("cpu", allow_files=False)
    answers = set()
    for params in ({"image_url": str(good)}, {"image_url": good.as_uri()}, {"image_url": str(tmp_path / "none.png")},
                   {"image_url": str(junk)}, {"image_file": str(good)}, {"image_file": good},
                   {"image_file": np.zeros((8, 8, 3), np.uint8), "background": "custom_background",
                    "background_url": str(good)}):
        r = pipe.remove_background(**params)
        assert r.error == "invalid_input", params
        answers.add(r.error_description.split(": ", 1)[1])
    assert answers == {"local files are not accepted here"}
    # the library default reads them
    assert Pipeline("cpu").limits.allow_files
