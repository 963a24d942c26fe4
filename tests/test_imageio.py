import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bgr_core.errors import InvalidInput, RequestFailed
from bgr_core.imageio import ImageLimits, decode_bytes, encode_image, load_image, write_atomic


def _png(w=40, h=30, mode="RGB", color=(200, 10, 30)):
    buf = io.BytesIO()
    Image.new(mode, (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def _bomb_png(w=30000, h=30000) -> bytes:
    """A tiny PNG whose header declares w x h pixels (IDAT left short)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


def test_every_source_kind(tmp_path):
    data = _png()
    path = tmp_path / "a.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    sources = [
        ("image_file", str(path)),
        ("image_file", path),
        ("image_file", data),
        ("image_file", io.BytesIO(data)),
        ("image_file", Image.open(io.BytesIO(data))),
        ("image_file", np.full((30, 40, 3), (200, 10, 30), np.uint8)),
        ("image_url", str(path)),
        ("image_url", path.as_uri()),
        ("image_base64", b64),
        ("image_base64", "data:image/png;base64," + b64),
    ]
    for param, source in sources:
        array = load_image(source, param)
        assert array.shape == (30, 40, 3) and array.dtype == np.uint8, (param, type(source))
        assert tuple(array[0, 0]) == (200, 10, 30)


@pytest.mark.parametrize(
    "param, source, message",
    [
        ("image_base64", "not base64 !!", "not valid base64"),
        ("image_base64", base64.b64encode(b"hello world").decode(), "not a decodable image"),
        ("image_file", b"", "is empty"),
        ("image_file", _png()[:60], "corrupt or truncated"),
        ("image_file", "/no/such/file.jpg", "no such file"),
        ("image_url", "ftp://example.com/a.jpg", "scheme 'ftp' is not supported"),
        ("image_file", 42, "must be a path"),
        ("image_file", np.zeros((4, 4, 2), np.uint8), "array must be"),
    ],
)
def test_bad_input_is_invalid_input(param, source, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_image(source, param)


def test_network_can_be_turned_off_and_the_guard_is_on_by_default():
    with pytest.raises(InvalidInput, match="network access is off"):
        load_image("http://example.com/a.jpg", "image_url", ImageLimits(allow_network=False))
    with pytest.raises(InvalidInput, match="private, loopback"):  # the default fetches, guarded
        load_image("http://10.1.2.3/a.jpg", "image_url")


def test_unsupported_format_is_refused():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "BMP")
    with pytest.raises(InvalidInput, match="BMP is not supported"):
        decode_bytes(buf.getvalue(), "image_file")


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(InvalidInput, match="over the limit|larger than the limit"):
        decode_bytes(_bomb_png(), "image_file")
    with pytest.raises(InvalidInput, match="over the limit"):
        decode_bytes(_png(40, 30), "image_file", ImageLimits(max_pixels=1000))


def test_private_addresses_refused_even_with_network():
    limits = ImageLimits(allow_network=True)
    with pytest.raises(InvalidInput, match="private, loopback"):
        load_image("http://127.0.0.1:9/a.jpg", "image_url", limits)


def test_unreachable_url_is_request_failed():
    limits = ImageLimits(allow_network=True, allow_private=True, timeout_s=2)
    with pytest.raises(RequestFailed, match="not reachable"):
        load_image("http://127.0.0.1:9/a.jpg", "image_url", limits)


def test_exif_orientation_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    assert load_image(buf.getvalue(), "image_file").shape == (40, 20, 3)


def test_alpha_and_grey_inputs_become_rgb():
    assert load_image(_png(mode="RGBA", color=(0, 0, 0, 0)), "image_file")[0, 0].tolist() == [255, 255, 255]
    assert load_image(_png(mode="L", color=128), "image_file")[0, 0].tolist() == [128, 128, 128]


def test_encode_and_atomic_write(tmp_path):
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 3] = 128
    for fmt in ("png", "jpg", "webp"):
        decoded = Image.open(io.BytesIO(encode_image(rgba, fmt)))
        assert decoded.size == (6, 5)
    target = tmp_path / "x" / "out.png"
    write_atomic(target, b"one")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"two", overwrite=False)
    assert target.read_bytes() == b"one"
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


# -- second hardening round: odd modes, MPO, long names ---------------------------------


@pytest.mark.parametrize("mode", ["I;16B", "I;16L", "I;16"])
def test_sixteen_bit_greys_of_either_byte_order_decode(mode):
    from PIL import Image

    values = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1300)
    raw = values.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
    out = load_image(Image.frombytes(mode, (8, 6), raw), "image_file")
    assert out.shape == (6, 8, 3) and np.array_equal(out[..., 0], (values >> 8).astype(np.uint8))


def test_premultiplied_la_decodes_over_white():
    from PIL import Image

    out = load_image(Image.new("LA", (8, 6), (100, 200)).convert("La"), "image_file")
    assert abs(int(out[0, 0, 0]) - round(100 * 200 / 255 + 255 * 55 / 255)) <= 2


def test_mpo_jpeg_gives_its_first_frame():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(buf, "MPO", save_all=True,
                                                   append_images=[Image.new("RGB", (32, 24), (10, 10, 200))])
    out = decode_bytes(buf.getvalue(), "image_file")
    assert out.shape == (24, 32, 3) and out[0, 0, 0] > 150 and out[0, 0, 2] < 60


def test_write_atomic_takes_the_longest_legal_name(tmp_path):


    name = "é" * 100 + "x" * 50 + ".jpg"  # 254 bytes in UTF-8
    assert len(name.encode()) <= 255
    path = write_atomic(tmp_path / name, b"data")
    assert path.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [name]


def _progressive_jpeg() -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(buf, "JPEG", progressive=True, quality=90)
    return buf.getvalue()


def test_progressive_jpeg_decodes_and_a_scan_bomb_is_refused_fast():
    import time

    data = _progressive_jpeg()
    assert 1 < data.count(b"\xff\xda") <= 20
    assert decode_bytes(data, "image_file").shape == (64, 96, 3)
    # the last scan repeated 5,000 times before the end marker: small, slow to decode
    last = data.rindex(b"\xff\xda")
    bomb = data[:last] + data[last:-2] * 5000 + b"\xff\xd9"
    start = time.perf_counter()
    with pytest.raises(InvalidInput, match="scans"):
        decode_bytes(bomb, "image_file")
    assert time.perf_counter() - start < 2.0
