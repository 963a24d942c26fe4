"""`bgr_core.runner`: batches, timings, out-of-memory halving."""

import pytest
import torch

from bgr_core.frame import Frame
from bgr_core.runner import run_stages


class Stage:
    name = "probe"

    def __init__(self, fail_above=None):
        self.fail_above, self.sizes = fail_above, []

    def __call__(self, frames):
        self.sizes.append(len(frames))
        if self.fail_above is not None and len(frames) > self.fail_above:
            raise torch.cuda.OutOfMemoryError("test")
        return [f.replace() for f in frames]


def _frames(n):
    return [Frame(image=torch.zeros(3, 4, 4), meta={"i": i}) for i in range(n)]


def test_batches_keep_order_and_stamp_timings():
    stage = Stage()
    out = run_stages(_frames(5), [stage], lambda: 2, lambda size: None)
    assert [f.meta["i"] for f in out] == list(range(5)) and stage.sizes == [2, 2, 1]
    assert all("probe" in f.timings for f in out)


def test_out_of_memory_halves_the_batch_and_retries():
    size = {"n": 4}
    stage = Stage(fail_above=1)
    out = run_stages(_frames(4), [stage], lambda: size["n"], lambda s: size.update(n=s))
    assert [f.meta["i"] for f in out] == [0, 1, 2, 3] and size["n"] == 1
    assert stage.sizes[:3] == [4, 2, 1]


def test_out_of_memory_on_one_frame_is_raised():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_stages(_frames(1), [Stage(fail_above=0)], lambda: 1, lambda s: None)


@pytest.mark.parametrize("workers,streams", [(0, 1), (2, 1), (2, 2), (0, 3)])
def test_stream_keeps_order_and_bounds_what_is_in_flight(workers, streams):
    import threading

    from bgr_core.runner import stream_batches

    lock, state = threading.Lock(), {"prepared": 0, "finished": 0, "most_ahead": 0}

    def prepare(i):
        with lock:
            state["prepared"] += 1
            state["most_ahead"] = max(state["most_ahead"], state["prepared"] - state["finished"])
        return i * 10

    def finish(r):
        with lock:
            state["finished"] += 1
        return r + 1

    items = iter(range(50))  # a one-pass iterator: read as the stream goes
    out = list(stream_batches(items, prepare, lambda batch: [p for p in batch], finish, batch_size=4,
                              workers=workers, streams=streams, finish_on_workers=workers > 0))
    assert out == [i * 10 + 1 for i in range(50)]
    # waiting prepared (2 batches) plus the batches running or finishing: never the whole input
    assert state["most_ahead"] <= 2 * 4 + (streams + 1) * 4


def test_a_stream_closed_early_does_not_wait_for_what_runs():
    # a consumer that stops (or the garbage collector finalising its generator, in any
    # thread) must not join the stream's threads: a batch still running would block it
    import threading

    from bgr_core.runner import stream_batches

    release = threading.Event()

    def run(batch):
        if batch[0] >= 4:  # the second batch hangs until released
            release.wait(30)
        return batch

    stream = stream_batches(iter(range(40)), lambda i: i, run, lambda r: r, batch_size=4, workers=2, streams=2,
                            finish_on_workers=False)
    assert next(stream) == 0
    closer = threading.Thread(target=stream.close)
    closer.start()
    closer.join(5)
    try:
        assert not closer.is_alive(), "closing the stream waited for the running batch"
    finally:
        release.set()
