"""The vehicle net's training batches, drawn in worker processes (`tools/train_vehicle_net.py`).

A step's batch is a pure function of (seed, step): sample ``i`` of step ``k`` is
``SampleMaker.sample((seed, k, i), size=sizes[k % len(sizes)])``. So the batches are the
same with any number of workers, in order, and a resumed run draws what an uninterrupted
one would. On 2 CPU cores the trainer draws them in its own process (``workers=0``); on a
machine with many cores and an accelerator, a sample costs about 33 ms of one core (288 px)
and workers keep the accelerator fed.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

__all__ = ["StepBatches", "batches"]


class StepBatches(Dataset):
    """Item ``k``: the list of `batch` samples of step ``first + k``.

    `make_maker` builds the sample maker (a `vehicle_data.SampleMaker`, or anything with
    its ``sample(seed, size=...)``); it is called once in each process that draws, so the
    maker's caches are never pickled.
    """

    def __init__(self, make_maker: Callable[[], object], seed: int, batch: int, sizes: Sequence[int],
                 first: int, last: int) -> None:
        self.make_maker = make_maker
        self.seed, self.batch, self.sizes = int(seed), int(batch), [int(s) for s in sizes]
        self.first, self.last = int(first), int(last)
        self._maker = None

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def size(self, step: int) -> int:
        return self.sizes[step % len(self.sizes)]

    def __getitem__(self, k: int) -> list[dict[str, np.ndarray]]:
        if self._maker is None:
            if get_worker_info() is not None:  # one core per worker: no OpenCV thread pool each
                cv2.setNumThreads(1)
            self._maker = self.make_maker()
        step = self.first + int(k)
        return [self._maker.sample((self.seed, step, i), size=self.size(step)) for i in range(self.batch)]


def _single(items: list) -> object:
    return items[0]


class _AsTensors(Dataset):
    def __init__(self, data: StepBatches, to_tensors: Callable[[list[dict]], dict[str, torch.Tensor]]) -> None:
        self.data, self.to_tensors = data, to_tensors

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        return self.to_tensors(self.data[k])


def batches(data: StepBatches, workers: int, to_tensors: Callable[[list[dict]], dict[str, torch.Tensor]],
            pin: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """The steps' batches in order, as tensors (`to_tensors` runs where the batch is drawn)."""
    items = _AsTensors(data, to_tensors)
    if workers <= 0:
        for k in range(len(items)):
            yield items[k]
        return
    # spawned, not forked: a fork of a process whose OpenMP threads have run (the trainer's
    # evaluation) hangs at the first parallel region in the child
    loader = DataLoader(items, batch_size=1, shuffle=False, num_workers=workers, collate_fn=_single,
                        pin_memory=pin, prefetch_factor=2, multiprocessing_context="spawn")
    yield from loader
