"""`bgr serve`: the web API's endpoint on a local pipeline (optional extra ``server``:
Starlette on uvicorn, multipart parsing by python-multipart).

Routes:
- ``GET`` / ``POST /v2/remove-background``: the web API's parameters, in the query
  string, form-encoded, multipart (files as ``image_file``, ``custom_background`` /
  ``background_file``, ``license_plate_input`` / ``plate_base64``) or a JSON object;
  form fields win over query parameters of the same name. The answer is the API's JSON,
  ``{"output_url", "error", "error_description"}``, with the status of `HTTP_STATUS`.
- ``GET /outputs/<name>``: an output, kept for a bounded time and count (`OutputStore`).
- ``GET /healthz``: ``{"status": "ok", "waiting": n}``.

Requests from all clients are gathered into the pipeline's batches (`RequestBatcher`);
a full queue answers at once with 503, a request past its deadline with 504. The body is
capped before it is read in full (413). Local paths and ``file://`` URLs are refused;
http(s) URLs go through the library's address guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from .batcher import QueueFull, RequestBatcher
from .output_store import MEDIA_TYPES, OutputStore

__all__ = ["create_app", "HTTP_STATUS", "MAX_BODY_BYTES"]

# the API's error code → HTTP status of the answer (the JSON body says the same)
HTTP_STATUS = {
    "": 200,
    "invalid_input": 400,
    "unauthorized_request": 401,
    "no_data": 422,
    "request_failed": 500,
}
MAX_BODY_BYTES = 64 * 2**20
ROUTE = "/v2/remove-background"


class _BodyTooLarge(Exception):
    pass


class _BodyLimit:
    """ASGI wrapper: a body over `limit` bytes stops being read (by its Content-Length,
    or while it streams in) and the request is answered with 413."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _send_json(send, _answer("invalid_input", f"the request body is over {self.limit} bytes"), 413)
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, _answer("invalid_input", f"the request body is over {self.limit} bytes"), 413)


async def _send_json(send, body: dict, status: int) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def _answer(error: str = "", description: str = "", url: str = "") -> dict:
    return {"output_url": url, "error": error, "error_description": description}


def create_app(pipeline: Any, *, store: OutputStore | None = None, public_url: str | None = None,
               max_body: int = MAX_BODY_BYTES, max_queue: int = 64, wait_s: float = 0.02,
               deadline_s: float = 120.0):
    """The ASGI app serving `pipeline` (build it with ``allow_files=False``; its
    `api_keys` are the service's keys). `public_url`: the base of ``output_url`` behind a
    proxy (default: the URL the request came to). The batcher starts with the app's
    lifespan and, on shutdown, finishes the queued requests before it stops."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile
    from starlette.requests import Request as HTTPRequest
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    store = store if store is not None else OutputStore()
    state: dict[str, RequestBatcher] = {}

    async def read_params(request: HTTPRequest) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params)
        if request.method != "POST":
            return params
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("a JSON body must be an object of parameters")
            params.update(body)
        elif kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            async with request.form(max_files=8, max_fields=64, max_part_size=max_body) as form:
                for name, value in form.multi_items():
                    params[name] = await value.read() if isinstance(value, UploadFile) else value
        elif kind:
            await request.body()  # read (capped) and ignored: only the query string counts
        return params

    def finish(result, base: str) -> tuple[dict, int]:
        """Encode and store a result (on a worker thread: encoding is CPU work)."""
        if not result.ok:
            return _answer(result.error, result.error_description), HTTP_STATUS.get(result.error, 500)
        try:
            name = store.put(result.encode(), result.extension)
        except Exception as err:  # a full disk or an encoder failure: this request's error
            return _answer("request_failed", f"could not store the output ({type(err).__name__})"), 500
        return _answer(url=f"{base}/outputs/{name}"), 200

    async def remove_background(request: HTTPRequest) -> Response:
        try:
            params = await read_params(request)
        except _BodyTooLarge:
            return JSONResponse(_answer("invalid_input", f"the request body is over {max_body} bytes"), 413)
        except Exception as err:  # a malformed body: the caller's error
            return JSONResponse(_answer("invalid_input", f"the request body could not be read ({type(err).__name__})"), 400)
        try:
            future = state["batcher"].submit(params)
        except QueueFull as err:
            return JSONResponse(_answer(err.code, str(err)), 503)
        except Exception as err:  # stopping
            return JSONResponse(_answer("request_failed", str(err)), 503)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), deadline_s)
        except asyncio.TimeoutError:
            return JSONResponse(_answer("request_failed", f"the request took longer than {deadline_s:g} s"), 504)
        base = (public_url or str(request.base_url)).rstrip("/")
        body, status = await run_in_threadpool(finish, result, base)
        return JSONResponse(body, status)

    async def output(request: HTTPRequest) -> Response:
        name = request.path_params["name"]
        path = store.path(name)
        if path is None:
            return JSONResponse(_answer("invalid_input", "no such output (it may have expired)"), 404)
        return FileResponse(path, media_type=MEDIA_TYPES[name.rsplit(".", 1)[1]])

    async def healthz(request: HTTPRequest) -> Response:
        batcher = state.get("batcher")
        return JSONResponse({"status": "ok", "waiting": batcher.waiting if batcher else 0})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["batcher"] = RequestBatcher(pipeline, max_queue=max_queue, wait_s=wait_s)
        try:
            yield
        finally:
            await run_in_threadpool(state["batcher"].close)
            store.close()

    app = Starlette(routes=[
        Route(ROUTE, remove_background, methods=["GET", "POST"]),
        Route("/outputs/{name}", output, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ], lifespan=lifespan)
    return _BodyLimit(app, max_body)
