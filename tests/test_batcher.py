import threading

import torch

from bgr_core.batcher import RequestBatcher
from bgr_core.result import Result


def test_batcher_workers_share_torch_threads_on_the_cpu():
    class Pipe:  # a pipeline double: records each worker's torch thread count
        device = torch.device("cpu")
        streams = 2
        effective_batch_size = 1
        seen: set = set()

        def remove_background_many(self, params):
            self.seen.add(torch.get_num_threads())
            return [Result() for _ in params]

    before = torch.get_num_threads()
    pipe = Pipe()
    batcher = RequestBatcher(pipe, wait_s=0)
    futures = [batcher.submit({}) for _ in range(6)]
    [f.result(timeout=10) for f in futures]
    batcher.close()
    assert pipe.seen == {max(1, before // 2)}
    later = []
    t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert torch.get_num_threads() == before and later == [before]
