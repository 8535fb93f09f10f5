"""How many worker processes to fork for CPU-bound work (TF-IDF counting, cleaning on import)."""

from __future__ import annotations

import os


def default_workers() -> int:
    """One per core this process may run on, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))
