"""Streaming, validated, idempotent import of posts (and existing labels) from CSV or JSONL.

    from smartlabel.importer import import_file
    result = import_file("aldata.csv", "sqlite:///data/smartlabel.db")
    print(result.summary())

The file
    CSV (comma, semicolon or tab separated: detected from the header line; a
    `.tsv` file is tab separated) or JSON Lines (one object per line). UTF-8,
    with or without a byte-order mark. Columns (matched case-insensitively):

    `title`, `selftext`     required (either may be empty in a row, not both)
    `clean_selftext`        optional: the model's text; computed with
                            `smartlabel.text.clean_text` when missing or empty
    `id` / `external_id`    optional: your id of the post (kept in items.external_id)
    `label`                 optional: an existing label, one of LABELS
    `worker_id`             optional: who gave that label (default "import")
    anything else           kept as JSON in items.extra

What is new
    A post is already present when its id is (a row whose id belongs to a
    different text is reported and not imported), or else when its content hash
    (`smartlabel.text.content_hash` of title and selftext) is. So importing the
    same file twice adds nothing, and a file with new rows adds only those. A
    label is added unless the same worker already labelled that post (labels are
    never overwritten; a different label from the same worker is reported).

Safety
    On any error in the file nothing is written, and the error (ImportFileError)
    names the file, line and column and says what to do. PostgreSQL: the whole file
    is one transaction, its new posts written with COPY (ids taken from the id sequence
    first). SQLite (one writer at a time, labellers included): the whole
    file is checked first, then written in chunks of CHUNK_ROWS rows or CHUNK_SECONDS,
    each its own transaction, so a labeller's submit waits for one chunk at most; an
    interrupted import resumes when run again (posts are keyed by id or content hash,
    labels by post and worker: nothing is added twice). Imports run one at a time (a
    PostgreSQL advisory lock; SQLite: a flock on `<database>.import.lock`). Rows are
    located and inserted in batches (BATCH_ROWS: executemany on SQLite, COPY on
    PostgreSQL), so it is fast on both backends; an import into an empty pool looks up
    only the rows it may have added already (repeated rows). Afterwards
    PostgreSQL gets ANALYZE (`smartlabel.store.stats`).

Inside (one module per step)
    `lines`     the file's format; its lines decoded as UTF-8, errors with byte offsets
    `csvfile`   CsvTable: header, column matching, missing-column hints, rows
    `jsonl`     one object per line
    `records`   what the readers share: known columns, `match_columns`, `Record`, errors
    `validate`  Record -> Row (labels, lengths, ids), the clean_selftext rule
    `ahead`     PostgreSQL: rows checked, hashed, cleaned and COPY-encoded in worker
                processes, one batch ahead (the first error in the file still wins)
    `write`     Row batches -> posts and labels, through `smartlabel.store`
                (`Writer`; `CopyWriter` on PostgreSQL: rows located by the same code)
    `result`    ImportResult
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

from sqlalchemy.engine import Engine

from smartlabel.errors import ImportFileError
from smartlabel.importer.ahead import Preparer, prepared_ahead
from smartlabel.importer.csvfile import DELIMITERS, FIELD_LIMIT, CsvTable, field_size_limit
from smartlabel.importer.jsonl import jsonl_records
from smartlabel.importer.lines import Lines, detect_format
from smartlabel.importer.records import ID_MAX_CHARS, KNOWN_COLUMNS, REQUIRED_COLUMNS, Record
from smartlabel.importer.result import ImportResult
from smartlabel.importer.validate import Row, Validator
from smartlabel.importer.write import CopyWriter, Writer
from smartlabel.store.locks import hold_import_lock, import_file_lock

__all__ = ["import_file", "ImportResult", "DEFAULT_WORKER_ID", "REQUIRED_COLUMNS", "KNOWN_COLUMNS"]

DEFAULT_WORKER_ID = "import"
# SQLite commits an import in chunks of at most this many rows or this many seconds of writing
CHUNK_ROWS = 5000
CHUNK_SECONDS = 0.5
# rows located and written together, unless `batch_size` says otherwise: PostgreSQL's COPY
# gains from big batches (fewer round trips); SQLite's chunks hold a few batches each
BATCH_ROWS = {"sqlite": 1000, "postgresql": 10_000}


def import_file(
    path: str | os.PathLike,
    url_or_engine: str | Engine | None = None,
    *,
    settings=None,
    fmt: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    worker_id: str = DEFAULT_WORKER_ID,
    seed: int | None = None,
) -> ImportResult:
    """Import posts (and labels) from a CSV or JSONL file, all or nothing for a bad file.

    `url_or_engine` defaults to the settings' DATABASE_URL; the schema is migrated
    first. `fmt` forces 'csv', 'tsv' or 'jsonl' (default: from the file name, else
    sniffed). `worker_id` is recorded on imported labels when the file has no
    `worker_id` column. `seed` makes the queue's random order (items.rand_key)
    reproducible. `batch_size`: rows per batch (default BATCH_ROWS of the backend).
    Raises ImportFileError (nothing written) for a bad file.
    """
    from smartlabel.db import check_connection, immediate, make_engine
    from smartlabel.migrate import upgrade
    from smartlabel.settings import load_settings

    settings = settings or load_settings()
    p, shown = Path(path), str(path)
    worker_id = _checked_arguments(p, shown, worker_id, batch_size)
    kind = detect_format(p, fmt)
    engine = make_engine(url_or_engine or settings.database_url)
    if batch_size is None:
        batch_size = BATCH_ROWS.get(engine.dialect.name, 1000)
    try:
        check_connection(engine)
        upgrade(engine)
        result = ImportResult(path=shown, database=engine.url.render_as_string(hide_password=True))
        validator = Validator(shown, settings.labels, settings.max_field_chars, worker_id)
        field_limit = max(4 * settings.max_field_chars, FIELD_LIMIT)
        started = time.perf_counter()
        if engine.dialect.name == "sqlite":
            with import_file_lock(engine, waiting=_say_waiting), field_size_limit(field_limit):
                # the whole file is checked before anything is written ...
                with _progress_bar(p, progress, "checking") as bar, open(p, "rb") as fh:
                    lines = Lines(fh, shown)
                    for rec in _records(p, shown, lines, kind, field_limit):
                        validator.row(rec)
                    bar.update(bar.total)
                # ... then written in short transactions, so labellers' submits never wait long
                with _progress_bar(p, progress, "importing") as bar, open(p, "rb") as fh:
                    lines = Lines(fh, shown)
                    rows = (validator.row(rec) for rec in _records(p, shown, lines, kind, field_limit))
                    with engine.connect() as conn:
                        writer = Writer(conn, result, random.Random(seed), settings.overlap)
                    _write_in_chunks(rows, writer, engine, batch_size, lines, bar)
        else:
            with _progress_bar(p, progress) as bar, field_size_limit(field_limit), open(p, "rb") as fh, \
                    immediate(engine) as conn:
                hold_import_lock(conn)
                lines = Lines(fh, shown)
                items, to_record = _raw_records(p, shown, lines, kind, field_limit)
                writer = CopyWriter(conn, result, random.Random(seed), settings.overlap)
                _write_all(items, Preparer(validator, to_record), writer, batch_size, lines, bar)
            _optimize(engine, first=True)
    finally:
        if not isinstance(url_or_engine, Engine):
            engine.dispose()
    result.seconds = time.perf_counter() - started
    return result


def _checked_arguments(p: Path, shown: str, worker_id: str, batch_size: int | None) -> str:
    """The worker id to record (stripped, or the default), after checking the path and the options."""
    if not p.exists():
        raise ImportFileError(f"{shown}: no such file. Check the path (relative paths start at {os.getcwd()}).")
    if p.is_dir():
        raise ImportFileError(f"{shown} is a folder: give the path of a .csv or .jsonl file.")
    worker_id = (worker_id or "").strip() or DEFAULT_WORKER_ID
    if len(worker_id) > ID_MAX_CHARS:
        raise ImportFileError(f"worker id is {len(worker_id)} characters; the limit is {ID_MAX_CHARS}.")
    if batch_size is not None and batch_size < 1:
        raise ImportFileError("batch size must be at least 1")
    return worker_id


def _say_waiting() -> None:
    print("another import is running on this database: waiting for it to finish", file=sys.stderr, flush=True)


def _optimize(engine: Engine, first: bool) -> None:
    """PostgreSQL: ANALYZE the new posts (SQLite: nothing, see `smartlabel.store.stats`)."""
    # the import stands even if this fails
    from smartlabel.errors import describe_error
    from smartlabel.store.stats import optimize

    try:
        _, skipped = optimize(engine, after_import=first)
        if skipped:
            print(f"note: {skipped}", file=sys.stderr, flush=True)
    except Exception as exc:
        print(f"warning: the posts are imported, but refreshing planner statistics failed: "
              f"{describe_error(exc, engine)}", file=sys.stderr, flush=True)


def _progress_bar(p: Path, progress: bool, what: str = "importing"):
    from tqdm import tqdm

    return tqdm(
        total=p.stat().st_size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"{what} {p.name}",
        disable=None if progress else True,  # None: off when stderr is not a terminal
        file=sys.stderr,
        leave=False,
    )


def _records(p: Path, shown: str, lines: Lines, kind: str, field_limit: int) -> Iterator[Record]:
    if kind == "jsonl":
        return jsonl_records(shown, lines)
    table = CsvTable(p, shown, lines, DELIMITERS.get(kind), field_limit)
    table.require(REQUIRED_COLUMNS)
    return table.records()


def _raw_records(p: Path, shown: str, lines: Lines, kind: str, field_limit: int):
    """(what the reader yields, what makes a Record of it): CSV rows are made Records in the
    worker processes; JSON Lines are parsed here (None: they are Records already)."""
    if kind == "jsonl":
        return jsonl_records(shown, lines), None
    table = CsvTable(p, shown, lines, DELIMITERS.get(kind), field_limit)
    table.require(REQUIRED_COLUMNS)
    return table.raw_records(), table.record_maker()


def _write_all(items: Iterable, prepare: Preparer, writer: Writer, batch_size: int, lines: Lines, bar) -> None:
    """Write the rows in batches, moving the progress bar by the bytes read. The rows of a
    batch are checked, cleaned and encoded in worker processes while the one before is
    written; the writing (the database's work, mostly) runs in a thread while this one reads
    on, one batch at a time on the import's connection."""
    from smartlabel.cores import default_workers

    result, done_bytes = writer.result, 0
    rows: list = []  # the writer gets batches of `batch_size` non-empty rows, as on SQLite
    behind = _Behind()
    try:
        for batch in prepared_ahead(items, batch_size, prepare, default_workers()):
            result.rows += len(batch)
            result.empty += batch.count(None)
            rows.extend(r for r in batch if r is not None)
            while len(rows) >= batch_size:
                behind.run(writer.write, rows[:batch_size])
                del rows[:batch_size]
            bar.update(lines.offset - done_bytes)
            done_bytes = lines.offset
            bar.set_postfix(rows=f"{result.rows:,}", refresh=False)
        if rows:
            behind.run(writer.write, rows)
        behind.wait()
    finally:
        behind.join()  # nothing is left running on the connection, whatever happened
    writer.finish()
    bar.update(bar.total - done_bytes)


class _Behind:
    """Runs one call at a time in a thread of its own; its error is raised by the next call
    of `run` or `wait`."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def run(self, fn, *args) -> None:
        self.wait()
        self.thread = threading.Thread(target=self._call, args=(fn, *args), name="import-writer", daemon=True)
        self.thread.start()

    def _call(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to the importing thread
            self.error = exc

    def wait(self) -> None:
        self.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None


def _write_in_chunks(rows: Iterable[Row | None], writer: Writer, engine: Engine, batch_size: int, lines: Lines,
                     bar) -> None:
    """SQLite: write the rows in chunks, each its own BEGIN IMMEDIATE transaction that ends after
    CHUNK_ROWS rows or CHUNK_SECONDS, whichever comes first. The rows of a chunk are read and
    checked before its transaction starts, so the write lock is held only while writing."""
    from smartlabel.db import immediate

    result, done_bytes = writer.result, 0
    pending: list[list[Row]] = []

    def commit_pending() -> None:
        while pending:
            t0 = time.monotonic()
            with immediate(engine) as conn:
                writer.conn = conn
                while pending:
                    writer.write(pending.pop(0))
                    if time.monotonic() - t0 >= CHUNK_SECONDS:
                        break
                writer.finish()  # the chunk's posts' label counts, in the chunk's transaction
            result.transactions += 1

    for batch in _batches(rows, batch_size, result):
        pending.append(batch)
        if sum(len(b) for b in pending) >= CHUNK_ROWS:
            commit_pending()
        bar.update(lines.offset - done_bytes)
        done_bytes = lines.offset
        bar.set_postfix(rows=f"{result.rows:,}", refresh=False)
    commit_pending()
    bar.update(bar.total - done_bytes)


def _batches(rows: Iterable[Row | None], size: int, result: ImportResult) -> Iterator[list[Row]]:
    """Lists of `size` rows; counts every row read, and the empty ones (None) it leaves out."""
    batch: list[Row] = []
    for row in rows:
        result.rows += 1
        if row is None:
            result.empty += 1
            continue
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
