"""CPU seconds spent by each thread of this process (Linux, from /proc/self/task).

A helper thread that burns CPU while the pipeline runs (a BLAS library's workers
spinning after a product, a second thread pool) takes cores from torch's threads; this
is how the window stage's spinning OpenBLAS thread was found (README, Throughput).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TASKS = Path("/proc/self/task")
PROCESS = "process"  # the whole process, threads that have ended included


def snapshot() -> dict[str, float]:
    """Thread id -> CPU seconds (user + system) so far, and `PROCESS` -> the process's
    (threads only off Linux)."""
    out = {PROCESS: time.process_time()}
    if not TASKS.is_dir():
        return out
    tick = os.sysconf("SC_CLK_TCK")
    for task in TASKS.iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[task.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def add_delta(total: dict[str, float], before: dict[str, float], after: dict[str, float]) -> None:
    """Add each thread's CPU seconds between two snapshots to `total`."""
    for tid, sec in after.items():
        spent = sec - before.get(tid, 0.0)
        if spent > 0:
            total[tid] = total.get(tid, 0.0) + spent


def describe(total: dict[str, float], wall_s: float) -> str:
    """"process 6.9 s: main 3.2 s, others 2.3, 1.4 s (per wall second: ...), ended 0.0 s":
    threads that ended between two snapshots (a thread pool shut down) count only in
    the process's total and in "ended"."""
    main = str(os.getpid())
    threads = {t: s for t, s in total.items() if t != PROCESS}
    others = sorted((s for t, s in threads.items() if t != main), reverse=True)
    process = total.get(PROCESS, 0.0)
    ended = max(0.0, process - sum(threads.values()))
    text = f"process {process:.1f} s: main {threads.get(main, 0.0):.1f} s, "
    if others:
        per = ", ".join(f"{s / wall_s:.2f}" for s in others) if wall_s > 0 else "-"
        text += f"others {', '.join(f'{s:.1f}' for s in others)} s (per wall second: {per}), "
    return text + f"threads that ended {ended:.1f} s"
