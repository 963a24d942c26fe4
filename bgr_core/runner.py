"""The runner: frames through stages in batches, timings stamped, a CUDA out-of-memory
error answered by halving the batch; and the stream that keeps decoding, running and
encoding busy at once (`stream_batches`)."""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import torch

from .frame import Frame
from .stages.base import Stage

__all__ = ["run_stages", "run_batch", "stream_batches"]

P = TypeVar("P")
R = TypeVar("R")

log = logging.getLogger("bgr_core")


def run_batch(batch: list[Frame], stages: Sequence[Stage]) -> list[Frame]:
    """One batch through every stage; each frame's `timings` gets the milliseconds of
    every stage (the batch's time split evenly over its frames)."""
    stamps: list[tuple[str, float]] = []
    for stage in stages:
        start_t = time.perf_counter()
        batch = stage(batch)
        stamps.append((stage.name, (time.perf_counter() - start_t) * 1000.0 / max(1, len(batch))))
    for frame in batch:  # stamped once the whole batch went through (a retry counts once)
        frame.timings = dict(frame.timings)
        for name, ms in stamps:
            frame.timings[name] = frame.timings.get(name, 0.0) + ms
    return batch


def run_stages(frames: Sequence[Frame], stages: Sequence[Stage], batch_size: Callable[[], int],
               shrink: Callable[[int], None]) -> list[Frame]:
    """`stages` over `frames` in batches of ``batch_size()``, order kept. A CUDA
    out-of-memory error on a batch of more than one frame calls ``shrink(half)`` (the
    caller lowers what ``batch_size()`` gives, for this and later calls) and retries; on
    a single frame it is raised."""
    out: list[Frame] = []
    queue = deque(frames)
    with torch.inference_mode():
        while queue:
            size = min(batch_size(), len(queue))
            batch = [queue.popleft() for _ in range(size)]
            try:
                out.extend(run_batch(batch, stages))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                shrink(max(1, size // 2))
                log.warning("bgr_core: out of memory with a batch of %d; going on with %d", size, batch_size())
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                queue.extendleft(reversed(batch))  # stages never mutate their inputs
    return out


def stream_batches(
    items: Iterable[Any],
    prepare: Callable[[Any], P],
    run: Callable[[list[P]], list[R]],
    finish: Callable[[R], Any],
    *,
    batch_size: int,
    workers: int,
    streams: int,
    finish_on_workers: bool,
) -> Iterator[Any]:
    """``finish(r)`` for every ``r`` of ``run(batch of prepare(item))``, in the order of
    `items`, with the three steps overlapping.

    `workers` threads (0: this one) prepare the next items (decoding) and, with
    `finish_on_workers`, finish the last results (encoding, writing); `streams` batches
    go through `run` at once (1: on this thread). At most ``2 * batch_size`` items wait
    prepared and ``streams + 1`` batches are running or finishing, so memory is bounded
    by the batch size, never by the number of items. `prepare`, `run` and `finish`
    must be thread-safe and must not raise (they turn failures into results).
    """
    pool = ThreadPoolExecutor(workers, thread_name_prefix="bgr-io") if workers else None
    runners = ThreadPoolExecutor(streams, thread_name_prefix="bgr-run") if streams > 1 else None
    closed_early = False
    try:
        pending: deque[Future | P] = deque()
        source = iter(items)
        exhausted = False
        # batches being run or finished, oldest first: up to `streams` + 1, so with one
        # stream (run on this thread) a batch runs while the previous one finishes
        running: deque[Future | list] = deque()

        def fill() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < 2 * batch_size:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    return
                pending.append(pool.submit(prepare, item) if pool else prepare(item))

        def run_batch(batch: list[Future | P]) -> list[Future | Any]:
            prepared = [p.result() if isinstance(p, Future) else p for p in batch]
            return [pool.submit(finish, r) if pool and finish_on_workers else finish(r) for r in run(prepared)]

        fill()
        while pending or running:
            while pending and len(running) <= streams:
                batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
                fill()  # the next batch is prepared while this one runs
                running.append(runners.submit(run_batch, batch) if runners else run_batch(batch))
            if len(running) > 1 or not pending:
                done = running.popleft()
                results = done.result() if isinstance(done, Future) else done
                yield from (r.result() if isinstance(r, Future) else r for r in results)
    except GeneratorExit:
        closed_early = True
        raise
    finally:
        # A consumer that stops early closes the generator, or the garbage collector
        # does, in whatever thread it runs: possibly inside `threading` with its locks
        # held (a thread being started), where joining a thread deadlocks. So an early
        # close only cancels what has not started; what runs ends on its own.
        for executor in (runners, pool):
            if executor is not None:
                executor.shutdown(wait=not closed_early, cancel_futures=True)
