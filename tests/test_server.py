"""`bgr serve`: the web API's endpoint, called the way the web API's own client snippets
call it (requests: form fields, multipart files, a query string, a URL input)."""

import base64
import http.server
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
requests = pytest.importorskip("requests")
from PIL import Image  # noqa: E402

from bgr_core import Pipeline  # noqa: E402
from bgr_core.output_store import OutputStore  # noqa: E402
from bgr_core.server import create_app  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "car.jpg"
KEY = "test-key-1"


class _LiveServer:
    """uvicorn on 127.0.0.1 (a free port) in a thread; `url` is its base."""

    def __init__(self, app):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture(scope="module")
def pipeline():
    # allow_private: the URL input of these tests is served from 127.0.0.1
    return Pipeline("cpu", api_keys=[KEY], allow_files=False, allow_network=True, allow_private=True)


@pytest.fixture(scope="module")
def live(pipeline):
    server = _LiveServer(create_app(pipeline, store=OutputStore(keep=50), max_body=8 * 2**20))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def photo_server():
    """A loopback HTTP server for the URL input (the API's first input method)."""
    folder = EXAMPLE.parent

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(folder), **k)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _image(response_json) -> Image.Image:
    assert response_json["error"] == "", response_json
    got = requests.get(response_json["output_url"], timeout=30)
    assert got.status_code == 200
    return Image.open(io.BytesIO(got.content))


def test_upload_snippet_multipart_file(live):
    api_url = f"{live.url}/v2/remove-background"
    req_json = {"key": KEY, "background": "white_background", "layout": "center", "effect": "shadow"}
    with open(EXAMPLE, "rb") as fh:
        response = requests.post(api_url, data=req_json, files={"image_file": fh}, timeout=120)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"output_url", "error", "error_description"}
    assert body["output_url"].startswith(f"{live.url}/outputs/")
    image = _image(body)
    assert image.size == Image.open(EXAMPLE).size and image.mode == "RGB"
    corner = np.asarray(image)[:5, :5]
    assert corner.min() > 245  # white background


def test_url_snippet_form_fields(live, photo_server):
    api_url = f"{live.url}/v2/remove-background"
    req_json = {"key": KEY, "image_url": f"{photo_server}/car.jpg", "background": "transparent_background",
                "background_url": ""}
    response = requests.post(api_url, data=req_json, timeout=120)
    image = _image(response.json())
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert 0.1 < (alpha > 127).mean() < 0.9


def test_base64_snippet_with_custom_background_file_and_plate(live):
    api_url = f"{live.url}/v2/remove-background"
    encoded = base64.b64encode(EXAMPLE.read_bytes()).decode()
    background = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 200)).save(background, "PNG")
    plate = io.BytesIO()
    Image.new("RGB", (52, 11), (250, 250, 0)).save(plate, "PNG")
    req_json = {"key": KEY, "image_base64": encoded, "background": "custom_background",
                "replace_license_plate": "1",
                "license_plate_input": base64.b64encode(plate.getvalue()).decode()}
    response = requests.post(api_url, data=req_json,
                             files={"custom_background": ("bg.png", background.getvalue(), "image/png")}, timeout=120)
    image = np.asarray(_image(response.json()))
    assert np.abs(image[:4, :4].astype(int) - (20, 120, 200)).max() <= 3


def test_get_with_query_string(live, photo_server):
    params = {"key": KEY, "image_url": f"{photo_server}/car.jpg", "layout": "crop", "output_format": "webp"}
    response = requests.get(f"{live.url}/v2/remove-background", params=params, timeout=120)
    body = response.json()
    assert body["output_url"].endswith(".webp")
    assert _image(body).format == "WEBP"


@pytest.mark.parametrize("data, code, status", [
    ({"image_url": "x"}, "unauthorized_request", 401),
    ({"key": "wrong", "image_url": "x"}, "unauthorized_request", 401),
    ({"key": KEY}, "invalid_input", 400),
    ({"key": KEY, "image_base64": "not base64 !!"}, "invalid_input", 400),
    ({"key": KEY, "image_url": "/etc/passwd"}, "invalid_input", 400),
    ({"key": KEY, "image_url": "file:///etc/hostname"}, "invalid_input", 400),
    ({"key": KEY, "image_url": "http://127.0.0.1:1/car.jpg", "layout": "diagonal"}, "invalid_input", 400),
])
def test_errors_come_back_as_the_api_json(live, data, code, status):
    response = requests.post(f"{live.url}/v2/remove-background", data=data, timeout=60)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code and body["output_url"] == "" and body["error_description"]


def test_local_files_give_one_wording(live):
    answers = {requests.post(f"{live.url}/v2/remove-background", data={"key": KEY, "image_url": u},
                             timeout=60).json()["error_description"]
               for u in (str(EXAMPLE), f"file://{EXAMPLE}", "/no/such/file.jpg")}
    assert len(answers) == 1


def test_no_vehicle_is_no_data(live):
    blank = io.BytesIO()
    Image.new("RGB", (160, 120), (128, 128, 128)).save(blank, "PNG")
    response = requests.post(f"{live.url}/v2/remove-background", data={"key": KEY},
                             files={"image_file": ("blank.png", blank.getvalue())}, timeout=60)
    assert response.status_code == 422 and response.json()["error"] == "no_data"


def test_body_over_the_cap_is_refused_before_it_is_read(live):
    big = b"\0" * (9 * 2**20)
    response = requests.post(f"{live.url}/v2/remove-background", data={"key": KEY},
                             files={"image_file": ("big.jpg", big)}, timeout=60)
    assert response.status_code == 413 and response.json()["error"] == "invalid_input"


def test_outputs_are_unguessable_and_health(live):
    assert requests.get(f"{live.url}/outputs/{'0' * 32}.png", timeout=10).status_code == 404
    assert requests.get(f"{live.url}/outputs/..%2F..%2Fetc%2Fpasswd", timeout=10).status_code == 404
    health = requests.get(f"{live.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_concurrent_clients_get_their_own_results(live):
    """Eight clients at once, alternating white and transparent: the batcher mixes them
    in batches, and each gets its own kind of output."""
    from concurrent.futures import ThreadPoolExecutor

    data = EXAMPLE.read_bytes()

    def call(i):
        bg = "transparent_background" if i % 2 else "white_background"
        r = requests.post(f"{live.url}/v2/remove-background", data={"key": KEY, "background": bg},
                          files={"image_file": ("car.jpg", data)}, timeout=300)
        return i, r.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(8)))
    urls = [body["output_url"] for _, body in answers]
    assert len(set(urls)) == 8
    for i, body in answers:
        assert _image(body).mode == ("RGBA" if i % 2 else "RGB")


def test_a_full_queue_answers_503_at_once(pipeline):
    """max_queue=1 and a slow pipeline: the third concurrent request is refused at
    once instead of waiting."""
    import types

    slow = types.SimpleNamespace(streams=1, effective_batch_size=1)

    def many(param_sets):
        time.sleep(1.5)
        return pipeline.remove_background_many(param_sets)

    slow.remove_background_many = many
    server = _LiveServer(create_app(slow, max_queue=1, wait_s=0.0))
    try:
        from concurrent.futures import ThreadPoolExecutor

        def call(_):
            start = time.monotonic()
            r = requests.post(f"{server.url}/v2/remove-background", data={"key": "nope", "image_url": "x"}, timeout=60)
            return r.status_code, time.monotonic() - start

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(call, range(4)))
        busy = [t for s, t in answers if s == 503]
        assert busy and max(busy) < 1.0
        assert any(s == 401 for s, _ in answers)
    finally:
        server.stop()


def test_a_stop_finishes_the_requests_in_flight(pipeline):
    server = _LiveServer(create_app(pipeline))
    data = EXAMPLE.read_bytes()
    answers = []

    def call():
        r = requests.post(f"{server.url}/v2/remove-background", data={"key": KEY},
                          files={"image_file": ("car.jpg", data)}, timeout=120)
        answers.append((r.status_code, r.json()))

    client = threading.Thread(target=call)
    client.start()
    time.sleep(0.3)  # the request is in the batcher
    server.stop()
    client.join(120)
    assert answers and answers[0][0] == 200 and answers[0][1]["error"] == ""


def test_cli_serve_refuses_bad_configuration(tmp_path, capsys):
    from bgr_core.cli import main

    empty = tmp_path / "keys.txt"
    empty.write_text("# no key here\n\n")
    assert main(["serve", "--keys-file", str(empty)]) == 2
    assert "holds no key" in capsys.readouterr().err
    assert main(["serve", "--keys-file", str(tmp_path / "missing.txt")]) == 2
    assert main(["serve", "--keep", "0"]) == 2


def test_a_streamed_body_over_the_cap_is_cut_off(live):
    """No Content-Length (chunked): the body is counted as it arrives and refused."""
    def chunks():
        for _ in range(10):
            yield b"image_base64=" if _ == 0 else b"A" * 2**20

    response = requests.post(f"{live.url}/v2/remove-background", data=chunks(),
                             headers={"content-type": "application/x-www-form-urlencoded"}, timeout=60)
    assert response.status_code == 413 and response.json()["error"] == "invalid_input"
