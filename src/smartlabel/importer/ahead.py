"""Preparing ahead (PostgreSQL): the rows of a batch checked (`Validator`), hashed, cleaned for
the model (`clean_selftext_of`) and encoded for COPY in worker processes, while the importer's
own process reads the file and writes the batch before.

Per row that is all the Python work but reading the CSV and locating the post, about 20 us
of CPU (half of it cleaning) against 5-10 us left in the importer's process. The importer's
process reads the file (CSV: the csv module's C reader, the field count and blank lines
checked there), hands each batch in slices to `workers` forked processes, and gets back one
`Prepared` tuple per row (None for an empty one). The result is what the same code gives in
one process: a batch smaller than AHEAD_MIN_ROWS is prepared in the importer's own process.

The first error in the file wins, as when every row was checked as it was read: a worker's
error (a bad label, a field too long) comes back when its batch is collected, in file order;
when reading fails (a CSV error, a byte that is not UTF-8), the batches sent before and the
rows read since are checked first, and an error among them is the one raised.
Every row is cleaned, also one whose post turns out to be stored already (a re-import): its
model text is not used.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from smartlabel.errors import ImportFileError
from smartlabel.importer.records import Record
from smartlabel.importer.validate import Validator, clean_selftext_of
from smartlabel.store.items import copy_fields

# below this many rows in a batch, preparing in the importer's own process is quicker
AHEAD_MIN_ROWS = 500


class Prepared(NamedTuple):
    """A valid post of the file, ready to be located (by id and content hash) and COPYed."""

    line: int
    external_id: str | None
    hash: str
    label: str | None
    worker_id: str
    copy_fields: str  # title, selftext, clean_selftext, extra in COPY's text format


class Preparer:
    """Turns what a reader found (`to_record` makes it a Record) into Prepared rows."""

    def __init__(self, validator: Validator, to_record: Callable[[Any], Record] | None = None):
        self.validator = validator
        self.to_record = to_record

    def __call__(self, items: list) -> list[Prepared | None]:
        out: list[Prepared | None] = []
        check, to_record = self.validator.row, self.to_record
        for item in items:
            row = check(to_record(item) if to_record else item)
            if row is None:
                out.append(None)
                continue
            fields = copy_fields(row.title, row.selftext, clean_selftext_of(row.selftext, row.clean_selftext),
                                 row.extra)
            out.append(Prepared(row.line, row.external_id, row.hash, row.label, row.worker_id, fields))
        return out


_preparer: Preparer | None = None  # in a worker process: the import's Preparer (inherited by fork)


def _install(preparer: Preparer) -> None:
    global _preparer
    _preparer = preparer


def _prepare(items: list) -> list[Prepared | None]:
    return _preparer(items)


class _Here:
    """A batch to prepare in this process, when it is collected (after the batches before it)."""

    def __init__(self, prepare: Preparer, batch: list):
        self.prepare, self.batch = prepare, batch

    def get(self) -> list[Prepared | None]:
        return self.prepare(self.batch)


def prepared_ahead(items: Iterable, size: int, prepare: Preparer, workers: int) -> Iterator[list[Prepared | None]]:
    """The rows of `items` prepared, in batches of `size`, one batch ahead of the caller,
    by `workers` forked processes (none: all in this process)."""
    if "fork" not in mp.get_all_start_methods():
        workers = 0
    pool = None
    pending: deque[list] = deque()  # per batch sent, its slices' results
    running: list = []  # slices sent to the workers and perhaps not finished (see _settle)
    batch: list = []
    it = iter(items)
    try:
        while True:
            try:
                batch = []
                for item in it:
                    batch.append(item)
                    if len(batch) >= size:
                        break
            except ImportFileError:
                _check_first(pending, prepare, batch)
                raise
            if not batch:
                break
            if pool is None and workers > 0 and len(batch) >= AHEAD_MIN_ROWS:
                pool = mp.get_context("fork").Pool(workers, initializer=_install, initargs=(prepare,))
            if pool is None or len(batch) < AHEAD_MIN_ROWS:
                pending.append([_Here(prepare, batch)])
            else:
                step = -(-len(batch) // (workers * 2))
                pending.append([pool.apply_async(_prepare, (batch[i:i + step],)) for i in range(0, len(batch), step)])
                running = [job for job in running if not job.ready()] + pending[-1]
            if len(pending) > 1:
                yield _collect(pending.popleft())
        while pending:
            yield _collect(pending.popleft())
    finally:
        if pool is not None:
            _settle(running, SETTLE_SECONDS)
            pool.terminate()
            pool.join()


# how long an import that stops early (an error, an interrupt) waits for slices still being
# prepared before it stops the workers
SETTLE_SECONDS = 30.0


def _settle(jobs: list, seconds: float) -> None:
    """Wait (at most `seconds`) until the workers have sent every result they are working on.

    `Pool.terminate` kills the workers; one killed while it sends a result keeps the result
    queue's lock held for ever, and terminate then waits on that lock without end (seen: an
    import that stopped at a bad row in its first batch hung while the next batch's slices
    were still being prepared). Idle workers hold no such lock."""
    deadline = time.monotonic() + seconds
    for job in jobs:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        job.wait(left)


def _collect(jobs: list) -> list[Prepared | None]:
    """A batch's prepared rows, in order; the first error among them is raised."""
    return [row for job in jobs for row in job.get()]


def _check_first(pending: deque, prepare: Preparer, read: list) -> None:
    """Reading failed: raise the first error of the rows before the bad place, if any."""
    while pending:
        _collect(pending.popleft())
    prepare(read)
