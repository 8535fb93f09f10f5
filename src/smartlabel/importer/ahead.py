"""Cleaning ahead: the model text (`clean_text`) of a batch's rows computed in worker
processes while the importer writes the batch before it.

`clean_text` is a dozen regular-expression passes, about 40 us per Reddit-sized body: on one
core it alone would cap an import at ~25,000 rows/s, before reading and writing. The
PostgreSQL import hands the bodies of rows without a `clean_selftext` to `workers` forked
processes one batch ahead, so cleaning overlaps reading the file and writing to the
database. The result is the same `clean_text` of the same body (`clean_selftext_of` keeps
the file's own `clean_selftext` when it has one); a row whose post turns out to be stored
already just does not use it.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Callable, Iterable, Iterator

from smartlabel.importer.validate import Row
from smartlabel.text import clean_text

# below this many rows in a batch, cleaning in the importer's own process is quicker
AHEAD_MIN_ROWS = 500


def _clean_all(bodies: list[str]) -> list[str]:
    return [clean_text(b) for b in bodies]


def cleaned_ahead(batches: Iterable[list[Row]], workers: int,
                  stored: Callable[[list[str]], set[str]] | None = None) -> Iterator[list[Row]]:
    """The same batches, each row's `clean_selftext` filled in (when the file gave none),
    cleaned by `workers` processes while the caller works on the batch before.

    `stored(hashes)`: those of the content hashes already in the database; their rows are
    not cleaned (a re-import cleans nothing)."""
    if workers < 1 or "fork" not in mp.get_all_start_methods():
        yield from batches
        return
    pool = None
    pending: list[tuple[list[Row], list[Row], list]] = []  # (batch, rows to fill, async results)
    try:
        for batch in batches:
            todo = [r for r in batch if r.clean_selftext is None]
            if stored is not None and todo:
                known = stored([r.hash for r in todo])
                todo = [r for r in todo if r.hash not in known]
            if pool is None and len(todo) >= AHEAD_MIN_ROWS:
                pool = mp.get_context("fork").Pool(workers)
            if pool is None:
                jobs = []
            else:
                step = max(1, -(-len(todo) // (workers * 2)))
                jobs = [pool.apply_async(_clean_all, ([r.selftext for r in todo[i:i + step]],))
                        for i in range(0, len(todo), step)]
            pending.append((batch, todo if jobs else [], jobs))
            if len(pending) > 1:
                yield _filled(*pending.pop(0))
        while pending:
            yield _filled(*pending.pop(0))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _filled(batch: list[Row], todo: list[Row], jobs: list) -> list[Row]:
    cleaned = [text for job in jobs for text in job.get()]
    for r, text in zip(todo, cleaned):
        r.clean_selftext = text
    return batch
