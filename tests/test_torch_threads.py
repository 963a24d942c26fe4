import threading

import torch

from bgr_core import torch_threads


def _in_new_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_share_splits_the_callers_count():
    n = torch.get_num_threads()
    assert torch_threads.share(1) == n
    assert torch_threads.share(2) == max(1, n // 2)
    assert torch_threads.share(10 * n) == 1 and torch_threads.share(0) == n


def test_a_threads_count_is_its_own_and_the_default_comes_back():
    before = torch.get_num_threads()

    def limited():
        torch_threads.set_for_this_thread(1)
        return torch.get_num_threads()

    assert _in_new_thread(limited) == 1
    assert torch.get_num_threads() == before  # this thread kept its count
    torch_threads.restore_default(before)
    assert _in_new_thread(torch.get_num_threads) == before  # threads starting later: as before
    torch_threads.set_for_this_thread(None)  # None leaves the count alone
    assert torch.get_num_threads() == before
