"""Torch's intra-op thread count, per thread: batches that run at once on the CPU
share the cores instead of each starting a team of threads as large as the machine.

Torch keeps the count per thread once a thread has used it, but
`torch.set_num_threads` also sets the count that threads starting later begin with;
`restore_default` puts that back without touching any running thread's count.
"""

from __future__ import annotations

import threading

import torch

__all__ = ["share", "set_for_this_thread", "restore_default"]


def share(streams: int) -> int:
    """Torch threads for each of `streams` concurrent batches: the calling thread's
    count split evenly, at least 1."""
    return max(1, torch.get_num_threads() // max(1, int(streams)))


def set_for_this_thread(threads: int | None) -> None:
    """The calling thread's torch thread count (None: left as it is)."""
    if threads is not None:
        torch.get_num_threads()  # the thread takes its own count from the default first
        torch.set_num_threads(int(threads))


def restore_default(threads: int) -> None:
    """Make `threads` the count that threads starting later begin with (set from a
    thread of its own, so every running thread keeps its count)."""
    helper = threading.Thread(target=torch.set_num_threads, args=(int(threads),), name="bgr-threads")
    helper.start()
    helper.join()
