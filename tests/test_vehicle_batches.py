"""tools/vehicle_batches.py: a step's batch is a function of (seed, step), the same drawn
in worker processes as in the trainer's own, in step order."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import vehicle_batches as VB  # noqa: E402


class _Maker:
    """Stands in for vehicle_data.SampleMaker: a sample drawn from its seed alone."""

    def __init__(self, base: int) -> None:
        self.base = base

    def sample(self, seed, size: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {"image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8) + self.base, "seed": np.array(seed)}


def _to_tensors(samples: list[dict]) -> dict[str, torch.Tensor]:
    return {"x": torch.from_numpy(np.stack([s["image"] for s in samples])),
            "seed": torch.from_numpy(np.stack([s["seed"] for s in samples]))}


def _draws(first: int = 3, last: int = 9) -> VB.StepBatches:
    return VB.StepBatches(functools.partial(_Maker, 1), seed=7, batch=2, sizes=[8, 8, 12], first=first, last=last)


def test_batches_are_the_steps_in_order_with_their_sizes():
    got = list(VB.batches(_draws(), 0, _to_tensors))
    assert len(got) == 6
    for k, b in enumerate(got):
        step = 3 + k
        assert b["seed"].tolist() == [[7, step, 0], [7, step, 1]]
        assert b["x"].shape[-2] == (12 if step % 3 == 2 else 8)


def test_workers_draw_the_same_batches():
    alone = list(VB.batches(_draws(), 0, _to_tensors))
    workers = list(VB.batches(_draws(), 2, _to_tensors))
    assert len(workers) == len(alone)
    for a, b in zip(alone, workers):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["seed"], b["seed"])


def test_a_resumed_run_draws_what_an_uninterrupted_one_would():
    whole = list(VB.batches(_draws(0, 9), 0, _to_tensors))
    tail = list(VB.batches(_draws(5, 9), 0, _to_tensors))
    for a, b in zip(whole[5:], tail):
        assert torch.equal(a["x"], b["x"])


def test_no_steps_left_draws_nothing():
    assert list(VB.batches(_draws(9, 9), 2, _to_tensors)) == []
