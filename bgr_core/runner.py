"""The runner: frames through stages in batches, timings stamped, a CUDA out-of-memory
error answered by halving the batch."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Sequence

import torch

from .frame import Frame
from .stages.base import Stage

__all__ = ["run_stages", "run_batch"]

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
