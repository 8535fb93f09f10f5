"""The posts (`items`): the pool the orchestrator scores, model-input texts, the importer's
writes, and the label recount that keeps `label_count` / `done` in step with `labels`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

from sqlalchemy import insert as _insert
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
COUNT = sql("SELECT COUNT(*) FROM items")
MAX_ID = sql("SELECT COALESCE(MAX(id), 0) FROM items")
BY_HASH = sql("SELECT id, content_hash, external_id FROM items WHERE content_hash IN :hashes", "hashes")
BY_EXTERNAL_ID = sql("SELECT id, content_hash, external_id FROM items WHERE external_id IN :ids", "ids")

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
        rows = conn.execute(POOL).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    hashes = [r[1] for r in rows]
    open_ids = np.array([r[0] for r in rows if not r[2]], dtype=np.int64)
    return ids, hashes, open_ids


def texts(bind: Engine | Connection, ids: Sequence[int]) -> Iterator[str]:
    """Model input (`title + " " + clean_selftext`) of these posts, in the order given."""
    ids = [int(i) for i in ids]
    for chunk in chunks(ids, TEXT_CHUNK):
        with reading(bind) as conn:
            found = {r.id: model_input(r.title, r.clean_selftext) for r in conn.execute(TEXTS, {"ids": chunk})}
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


def find_existing(conn: Connection, hashes: Sequence[str], external_ids: Sequence[str]):
    """Posts already stored with one of these content hashes or external ids:
    ({hash: (id, external_id)}, {external_id: (id, hash)})."""
    by_hash: dict[str, tuple[int, str | None]] = {}
    by_ext: dict[str, tuple[int, str]] = {}
    if hashes:
        for r in conn.execute(BY_HASH, {"hashes": list(hashes)}):
            by_hash[r.content_hash] = (r.id, r.external_id)
    if external_ids:
        for r in conn.execute(BY_EXTERNAL_ID, {"ids": list(external_ids)}):
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
