"""`bgr_core.fetch` against a real HTTP server on loopback: private addresses refused
before connecting, redirects re-checked and limited, DNS rebinding caught at connect, the
byte cap, stalls cut off by the time-out, bodies that are not images, malformed URLs."""

from __future__ import annotations

import http.server
import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from bgr_core import Pipeline
from bgr_core.errors import InvalidInput, RequestFailed
from bgr_core.imageio import ImageLimits, load_image
from bgr_core.testing import synthetic_car_scene

OFF = {"effect": "none", "window_correction": "none"}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    png = _png(synthetic_car_scene(48, 64, 1).image)
    hits: list[str] = []
    stop = threading.Event()

    def log_message(self, *args):  # quiet
        pass

    def _send(self, body: bytes, ctype: str = "image/png", length: bool = True):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, where: str):
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        port = self.server.server_address[1]
        if self.path == "/car.png":
            self._send(self.png)
        elif self.path == "/text":
            self._send(b"<html>not an image</html>", "text/html")
        elif self.path == "/big":
            self._send(b"\x89PNG" + b"\x00" * 200_000)
        elif self.path == "/big-no-length":
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"\x00" * 10_000)
        elif self.path.startswith("/loop/"):
            n = int(self.path.rsplit("/", 1)[1])
            self._redirect(f"/loop/{n + 1}")
        elif self.path == "/to-car":
            self._redirect(f"http://127.0.0.1:{port}/car.png")
        elif self.path == "/to-private":
            self._redirect(f"http://127.0.0.2:{port}/car.png")
        elif self.path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif self.path == "/stall":
            self.stop.wait(10)
        elif self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100):  # a byte every 0.1 s: each read is quick, the whole is not
                if self.stop.wait(0.1):
                    break
                try:
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
                except OSError:
                    break
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server():
    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):  # clients that hang up are expected
            pass

    httpd = Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.stop.set()
    httpd.shutdown()
    httpd.server_close()


OPEN = ImageLimits(allow_network=True, allow_private=True, timeout_s=5)


def test_fetch_allowed_with_network_and_private(server, fast_pipeline):
    assert load_image(f"{server}/car.png", "image_url", OPEN).shape == (48, 64, 3)
    assert load_image(f"{server}/to-car", "image_url", OPEN).shape == (48, 64, 3)  # one redirect
    pipe = Pipeline("cpu", allow_network=True, allow_private=True, components={"segment": fast_pipeline.segment})
    r = pipe.remove_background(image_url=f"{server}/car.png", **OFF)
    assert r.error in ("", "no_data"), r.error_description


def test_network_off_and_loopback_refused(server):
    _Handler.hits.clear()
    with pytest.raises(InvalidInput, match="network access is off"):
        load_image(f"{server}/car.png", "image_url", ImageLimits(allow_network=False))
    with pytest.raises(InvalidInput, match="private, loopback or link-local"):  # the default: guarded
        load_image(f"{server}/car.png", "image_url")
    with pytest.raises(InvalidInput, match="private, loopback or link-local"):
        load_image(f"{server}/car.png", "image_url", ImageLimits(allow_network=True))
    for url in ("http://localhost/x.png", "http://10.1.2.3/x.png", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/x.png", "http://[::ffff:127.0.0.1]/x.png", "http://0.0.0.0/x.png"):
        with pytest.raises(InvalidInput, match="private, loopback"):
            load_image(url, "image_url", ImageLimits(allow_network=True))
    assert _Handler.hits == []  # refused before connecting
    pipe = Pipeline("cpu", allow_network=True)
    r = pipe.remove_background(image_url=f"{server}/car.png", **OFF)
    assert r.error == "invalid_input" and "allow_private=True" in r.error_description


@pytest.fixture
def loopback_is_public(monkeypatch):
    """Pretend 127.0.0.1 (the test server) is a public address; every other
    non-global address (127.0.0.2 included) stays refused."""
    from bgr_core import fetch

    real = fetch.refused_address
    monkeypatch.setattr(fetch, "refused_address", lambda a: a != "127.0.0.1" and real(a))
    return ImageLimits(allow_network=True, timeout_s=5)


def test_redirects_rechecked_and_limited(server, loopback_is_public):
    limits = loopback_is_public
    assert load_image(f"{server}/to-car", "image_url", limits).shape == (48, 64, 3)
    with pytest.raises(InvalidInput, match="private, loopback"):
        load_image(f"{server}/to-private", "image_url", limits)
    with pytest.raises(InvalidInput, match="only http"):
        load_image(f"{server}/to-file", "image_url", limits)
    with pytest.raises(RequestFailed, match="more than 3 redirects"):
        load_image(f"{server}/loop/0", "image_url", limits)
    with pytest.raises(RequestFailed, match="more than 1 redirects"):
        load_image(f"{server}/loop/0", "image_url", ImageLimits(allow_network=True, max_redirects=1))


def test_dns_rebinding_is_caught_at_connect(server, monkeypatch):
    """The name resolves to a public address when checked, to loopback when connected."""
    port = int(server.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    calls = []

    def rebinding(host, *args, **kwargs):
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        calls.append(host)
        ip = "93.184.216.34" if len(calls) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    _Handler.hits.clear()
    with pytest.raises(InvalidInput, match="private, loopback"):
        load_image(f"http://rebind.test:{port}/car.png", "image_url", ImageLimits(allow_network=True, timeout_s=5))
    assert len(calls) == 2 and _Handler.hits == []  # connected, checked, closed before sending


def test_byte_cap(server):
    limits = ImageLimits(allow_network=True, allow_private=True, max_bytes=100_000, timeout_s=5)
    for path in ("/big", "/big-no-length"):
        with pytest.raises(InvalidInput, match="larger than the limit of 100000 bytes"):
            load_image(f"{server}{path}", "image_url", limits)


@pytest.mark.parametrize("path", ["/stall", "/trickle"])
def test_stalled_server_times_out_quickly(server, path):
    limits = ImageLimits(allow_network=True, allow_private=True, timeout_s=0.5)
    start = time.perf_counter()
    with pytest.raises(RequestFailed, match="timed out"):
        load_image(f"{server}{path}", "image_url", limits)
    assert time.perf_counter() - start < 2.0


def test_non_image_and_missing_bodies(server):
    with pytest.raises(InvalidInput, match="not a decodable image"):
        load_image(f"{server}/text", "image_url", OPEN)
    with pytest.raises(RequestFailed, match="HTTP 404"):
        load_image(f"{server}/nope", "image_url", OPEN)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(RequestFailed, match="not reachable"):
        load_image(f"http://127.0.0.1:{port}/x.png", "image_url", OPEN)


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://[::1", "not a valid URL"),
        ("http://example.com:99999/a.png", "not a valid URL"),
        ("http://exa mple.com/a.png", "spaces or control characters"),
        ("http:///a.png", "no host"),
        ("gopher://example.com/a", "scheme 'gopher' is not supported"),
        ("file://remote-host/a.png", "file URIs must be local"),
    ],
)
def test_malformed_urls_are_invalid_input(url, message):
    with pytest.raises(InvalidInput, match=message):
        load_image(url, "image_url", ImageLimits(allow_network=True))


