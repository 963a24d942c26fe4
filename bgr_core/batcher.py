"""`RequestBatcher`: gathers requests from many callers into the pipeline's batches.

Callers (the server's request handlers, on any thread) `submit` one request's parameters
and get a `concurrent.futures.Future` of its `Result`. Worker threads (one per pipeline
stream) take the first waiting request, gather more for up to `wait_s` or until a batch
is full, and run them with `Pipeline.remove_background_many`. The queue is bounded: a
full queue refuses at once (`QueueFull`) instead of letting callers pile up, and a
request whose caller gave up (its future cancelled) is dropped before it runs.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Mapping

from .errors import RequestFailed
from .result import Result

__all__ = ["RequestBatcher", "QueueFull"]


class QueueFull(RequestFailed):
    """The batcher's queue is full: the service is busy, try again later."""


class RequestBatcher:
    """Batch concurrent requests through one pipeline.

    Args:
        pipeline: a `bgr_core.Pipeline` (its `effective_batch_size` sets the batch).
        max_queue: requests waiting at most; one more is refused with `QueueFull`.
        wait_s: how long a worker waits for more requests to fill a batch once it holds
            one (short: a lone request is delayed by at most this).
        workers: batches run at once (None: the pipeline's `streams`).
    """

    def __init__(self, pipeline: Any, *, max_queue: int = 64, wait_s: float = 0.02, workers: int | None = None):
        if max_queue < 1:
            raise ValueError(f"`max_queue` must be >= 1 but is {max_queue}")
        if wait_s < 0:
            raise ValueError(f"`wait_s` must be >= 0 but is {wait_s}")
        self.pipeline = pipeline
        self.wait_s = float(wait_s)
        self._queue: queue.Queue[tuple[Mapping[str, Any], Future] | None] = queue.Queue(maxsize=int(max_queue))
        self._closed = False
        self._lock = threading.Lock()
        count = workers if workers is not None else getattr(pipeline, "streams", 1)
        self._threads = [threading.Thread(target=self._work, name=f"bgr-batch-{i}", daemon=True)
                         for i in range(max(1, int(count)))]
        for t in self._threads:
            t.start()

    @property
    def waiting(self) -> int:
        """Requests queued and not yet taken by a worker."""
        return self._queue.qsize()

    def submit(self, params: Mapping[str, Any]) -> Future:
        """Queue one request; the future's result is its `Result`. Raises `QueueFull`
        when the queue is full and `RequestFailed` once the batcher is closed."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RequestFailed("the service is stopping")
            try:
                self._queue.put_nowait((params, future))
            except queue.Full:
                raise QueueFull("the service is busy (its queue is full): try again later") from None
        return future

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish the queued ones, stop the workers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in self._threads:
            self._queue.put(None)  # one stop mark per worker, after every queued request
        for t in self._threads:
            t.join(timeout)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            size = max(1, int(getattr(self.pipeline, "effective_batch_size", 1)))
            deadline = time.monotonic() + self.wait_s
            while len(batch) < size:
                left = deadline - time.monotonic()
                try:
                    more = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:  # closing: run what we hold, then stop
                    stop = True
                    break
                batch.append(more)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[Mapping[str, Any], Future]]) -> None:
        live = [(p, f) for p, f in batch if f.set_running_or_notify_cancel()]  # callers that gave up drop out
        if not live:
            return
        try:
            results = self.pipeline.remove_background_many([p for p, _ in live])
        except Exception as err:  # the pipeline never raises for API errors; this is a bug guard
            text = f"processing failed ({type(err).__name__})"
            results = [Result(error="request_failed", error_description=text) for _ in live]  # one each: callers own them
        for (_, future), result in zip(live, results):
            future.set_result(result)
