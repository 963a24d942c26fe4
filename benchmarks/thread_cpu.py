"""CPU seconds spent by each thread of this process (Linux, from /proc/self/task).

A helper thread that burns CPU while the pipeline runs (a BLAS library's workers
spinning after a product, a second thread pool) takes cores from torch's threads; this
is how the window stage's spinning OpenBLAS thread was found (README, Throughput).
"""

from __future__ import annotations

import os
from pathlib import Path

TASKS = Path("/proc/self/task")


def snapshot() -> dict[str, float]:
    """Thread id -> CPU seconds (user + system) so far; empty off Linux."""
    if not TASKS.is_dir():
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
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
    """"main 3.2 s, others 2.3, 1.4 s (per wall second: ...)": the main thread first."""
    main = str(os.getpid())
    others = sorted((s for t, s in total.items() if t != main), reverse=True)
    per = ", ".join(f"{s / wall_s:.2f}" for s in others) if wall_s > 0 else "-"
    return (f"main {total.get(main, 0.0):.1f} s, others {', '.join(f'{s:.1f}' for s in others) or 'none'} s "
            f"(others per wall second: {per})")
