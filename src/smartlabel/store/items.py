"""The posts (`items`): the pool the orchestrator scores, model-input texts, the importer's
writes, and the label recount that keeps `label_count` / `done` in step with `labels`."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Iterator, Sequence

from sqlalchemy import String
from sqlalchemy import insert as _insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import items
from smartlabel.errors import SmartlabelError
from smartlabel.store import chunks, reading, sql, writing
from smartlabel.text import model_input

if TYPE_CHECKING:
    import numpy as np

TEXT_CHUNK = 1000  # ids per SELECT ... WHERE id IN (...)

POOL = sql("SELECT id, content_hash, done FROM items ORDER BY id")
TEXTS = sql("SELECT id, title, clean_selftext FROM items WHERE id IN :ids", "ids")
TEXTS_RANGE = sql("SELECT id, title, clean_selftext FROM items WHERE id BETWEEN :lo AND :hi")
RANGE_CHUNK = 20_000  # ids per range query (about 10 MB of text)
COUNT = sql("SELECT COUNT(*) FROM items")
MAX_ID = sql("SELECT COALESCE(MAX(id), 0) FROM items")
BY_HASH = sql("SELECT id, content_hash, external_id FROM items WHERE content_hash IN :hashes", "hashes")
BY_EXTERNAL_ID = sql("SELECT id, content_hash, external_id FROM items WHERE external_id IN :ids", "ids")
# PostgreSQL, the COPY import: one array parameter instead of thousands of IN parameters, joined
# (not `= ANY`, which the planner may answer with a scan of the whole table: the posts COPYed
# earlier in the import have no statistics yet), so each value is one index probe
BY_HASH_ANY = sql("SELECT i.id, i.content_hash, i.external_id FROM unnest(:hashes) AS v(hash) "
                  "JOIN items i ON i.content_hash = v.hash", hashes=ARRAY(String))
BY_EXTERNAL_ID_ANY = sql("SELECT i.id, i.content_hash, i.external_id FROM unnest(:ids) AS v(ext) "
                         "JOIN items i ON i.external_id = v.ext", ids=ARRAY(String))
# ids for posts about to be COPYed (a sequence hands each out once; a rolled-back import leaves a gap)
RESERVE_IDS = sql("SELECT nextval(pg_get_serial_sequence('items', 'id')) FROM generate_series(1, :n)")
COPY_COLUMNS = ("id", "external_id", "title", "selftext", "clean_selftext", "extra", "content_hash",
                "imported_at", "rand_key", "label_count", "done")
COPY_ITEMS = f"COPY items ({', '.join(COPY_COLUMNS)}) FROM STDIN"  # text format: tab-separated, \N is NULL
NULL = "\\N"
COPY_READ_BYTES = 1 << 20  # psycopg2 reads the COPY data in pieces of this size

# label_count = distinct labellers of the post (retracted labels left out); done once
# OVERLAP of them labelled it, second opinions left out (they never decide a post: should
# the deciding label be retracted, the post is open again).
RECOUNT = sql("""
    UPDATE items SET
        label_count = (SELECT COUNT(DISTINCT l.worker_id) FROM labels l
                       WHERE l.item_id = items.id AND l.retracted_at IS NULL),
        done = (SELECT COUNT(DISTINCT l.worker_id) FROM labels l
                WHERE l.item_id = items.id AND l.retracted_at IS NULL AND NOT l.second_opinion) >= :overlap
    WHERE id IN :ids""", "ids")


def pool(bind: Engine | Connection) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(every post id, their content hashes, the ids of open posts), in id order."""
    import numpy as np  # here, not at the top: the labelling page's kernel (queue.py) never needs NumPy

    with reading(bind) as conn:
        # the driver's own cursor: plain tuples, not a Row object per post (1M of them at 1M posts)
        cur = conn.connection.dbapi_connection.cursor()
        try:
            cur.execute(POOL.text)
            rows = cur.fetchall()
        finally:
            cur.close()
    n = len(rows)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    hashes = [r[1] for r in rows]
    done = np.fromiter((bool(r[2]) for r in rows), dtype=bool, count=n)
    return ids, hashes, ids[~done]


def texts(bind: Engine | Connection, ids: Sequence[int]) -> Iterator[str]:
    """Model input (`title + " " + clean_selftext`) of these posts, in the order given.

    A long run of ascending ids (the whole pool, as a first fit reads it) is read by id range,
    RANGE_CHUNK posts per query, instead of TEXT_CHUNK ids per `IN` list (1,000 queries at 1M)."""
    ids = [int(i) for i in ids]
    step = RANGE_CHUNK if len(ids) > TEXT_CHUNK else TEXT_CHUNK
    for chunk in chunks(ids, step):
        lo, hi = chunk[0], chunk[-1]
        by_range = step == RANGE_CHUNK and lo <= hi and hi - lo < 2 * len(chunk) and all(
            a < b for a, b in zip(chunk, chunk[1:]))
        with reading(bind) as conn:
            if by_range:
                rows = conn.execute(TEXTS_RANGE, {"lo": lo, "hi": hi})
            else:
                rows = (r for part in chunks(chunk, TEXT_CHUNK) for r in conn.execute(TEXTS, {"ids": part}))
            found = {i: model_input(title, clean) for i, title, clean in rows}
        for i in chunk:
            if i not in found:
                raise SmartlabelError(f"post {i} disappeared while the model was being trained; it will retry")
            yield found[i]


def count(bind: Engine | Connection) -> int:
    with reading(bind) as conn:
        return int(conn.execute(COUNT).scalar_one())


def recount(conn: Connection, item_ids: Sequence[int], overlap: int) -> None:
    """Recompute `label_count` and `done` of these posts from `labels` (inside the caller's transaction)."""
    ids = sorted({int(i) for i in item_ids})
    for chunk in chunks(ids, TEXT_CHUNK):
        conn.execute(RECOUNT, {"ids": chunk, "overlap": int(overlap)})


# --- the importer's writes (inside its one transaction) ---------------------------------


def max_id(conn: Connection) -> int:
    return int(conn.execute(MAX_ID).scalar_one())


def find_existing(conn: Connection, hashes: Sequence[str], external_ids: Sequence[str], *, arrays: bool = False):
    """Posts already stored with one of these content hashes or external ids:
    ({hash: (id, external_id)}, {external_id: (id, hash)}). `arrays` (PostgreSQL): one
    array parameter (`= ANY`) per query instead of one parameter per value."""
    by_hash: dict[str, tuple[int, str | None]] = {}
    by_ext: dict[str, tuple[int, str]] = {}
    q_hash, q_ext = (BY_HASH_ANY, BY_EXTERNAL_ID_ANY) if arrays else (BY_HASH, BY_EXTERNAL_ID)
    if hashes:
        for r in conn.execute(q_hash, {"hashes": list(hashes)}):
            by_hash[r.content_hash] = (r.id, r.external_id)
    if external_ids:
        for r in conn.execute(q_ext, {"ids": list(external_ids)}):
            by_ext[r.external_id] = (r.id, r.content_hash)
    return by_hash, by_ext


def ids_by_hash(conn: Connection, hashes: Sequence[str]) -> dict[str, int]:
    if not hashes:
        return {}
    return {r.content_hash: r.id for r in conn.execute(BY_HASH, {"hashes": list(hashes)})}


def insert(bind: Engine | Connection, rows: list[dict]) -> int:
    """Insert posts (dicts of `items` columns) with one executemany."""
    if rows:
        with writing(bind) as conn:
            conn.execute(_insert(items), rows)
    return len(rows)


def reserve_ids(conn: Connection, n: int) -> list[int]:
    """PostgreSQL: `n` new post ids from the id sequence, ascending (for `copy_insert`)."""
    if n <= 0:
        return []
    return sorted(int(i) for (i,) in conn.execute(RESERVE_IDS, {"n": int(n)}))


def copy_fields(title: str, selftext: str, clean_selftext: str, extra) -> str:
    """A post's title, selftext, clean_selftext and extra (stored as `JSON` does it: None is
    JSON null) in COPY's text format, tab-separated: the middle of its `copy_insert` line.
    The importer's worker processes compute it, so the import's own process only joins."""
    return "\t".join((_copy_text(title), _copy_text(selftext), _copy_text(clean_selftext),
                      _copy_text(json.dumps(extra))))


def copy_insert(conn: Connection, rows: list[tuple], imported_at) -> int:
    """PostgreSQL: insert posts with one COPY, inside the caller's transaction. Each row is
    (id from `reserve_ids`, external_id, `copy_fields(...)`, content_hash, rand_key); they get
    `imported_at`, no labels, not done. The insert trigger of `item_counts` fires once for
    the statement."""
    if not rows:
        return 0
    tail = f"\t{imported_at.isoformat()}\t"
    lines = [
        f"{int(item_id)}\t{NULL if ext is None else _copy_text(ext)}\t{fields}\t{content_hash}{tail}"
        f"{float(rand_key)!r}\t0\tf\n"
        for item_id, ext, fields, content_hash, rand_key in rows
    ]
    buf = io.BytesIO("".join(lines).encode("utf-8"))
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.copy_expert(COPY_ITEMS, buf, size=COPY_READ_BYTES)
    finally:
        cur.close()
    return len(rows)


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
