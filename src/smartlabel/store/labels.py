"""Human decisions (`labels`, one row each, never deleted; an undo retracts one): what the
model trains on, the rows agreement is computed from, counts per class and per labeller,
who retracted what, the importer's inserts."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import numpy as np
from sqlalchemy import DateTime
from sqlalchemy import insert as _insert
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import labels
from smartlabel.store import chunks, reading, sql, writing

# Every read leaves retracted labels out (an undo retracts, it never deletes), except the
# ones that show retractions to an admin (RETRACTED, labeller_stats.retracted).
LIVE = "retracted_at IS NULL"
AGREED = sql("SELECT a.item_id, a.agreed_label FROM agreed_labels a ORDER BY a.item_id")
# posts handed out at random (exploration): the unbiased audit sample
RANDOM_SAMPLE = sql(f"SELECT DISTINCT item_id FROM labels WHERE handout_reason = 'random' AND {LIVE}")
ROWS = sql(f"SELECT item_id, worker_id, label FROM labels WHERE {LIVE} ORDER BY id")
ROWS_BETWEEN = sql(f"""
    SELECT item_id, worker_id, label FROM labels
    WHERE item_id BETWEEN :lo AND :hi AND {LIVE} ORDER BY id""")
# the labels that decide posts: second opinions (late labels on decided posts) left out
DECIDING = "NOT second_opinion"
DECIDING_ROWS = sql(f"SELECT item_id, worker_id, label FROM labels WHERE {LIVE} AND {DECIDING} ORDER BY id")
DECIDING_ROWS_BETWEEN = sql(f"""
    SELECT item_id, worker_id, label FROM labels
    WHERE item_id BETWEEN :lo AND :hi AND {LIVE} AND {DECIDING} ORDER BY id""")
PER_LABEL = sql(f"SELECT label, COUNT(*) FROM labels WHERE {LIVE} GROUP BY label")
PER_AGREED_LABEL = sql("SELECT agreed_label, COUNT(*) FROM agreed_labels GROUP BY agreed_label")
COUNT = sql(f"SELECT COUNT(*) FROM labels WHERE {LIVE}")
# labels given or retracted since: either changes what the model trains on
COUNT_SINCE = sql("SELECT COUNT(*) FROM labels WHERE created_at > :since OR retracted_at > :since",
                  since=DateTime())
BY_WORKER = sql(f"SELECT item_id, worker_id, label FROM labels WHERE item_id IN :ids AND {LIVE} ORDER BY id", "ids")
REVIEWS_BETWEEN = sql(f"""
    SELECT item_id, COUNT(*) FROM labels
    WHERE handout_reason = 'review' AND {LIVE} AND item_id BETWEEN :lo AND :hi GROUP BY item_id""")
REVIEWS = sql(f"SELECT item_id, COUNT(*) FROM labels WHERE handout_reason = 'review' AND {LIVE} GROUP BY item_id")
LABELLER_STATS = sql("""
    SELECT worker_id, labels, items, labels_per_hour, avg_seconds_per_label, last_label_at, retracted
    FROM labeller_stats ORDER BY labels DESC, worker_id""")
# who retracted what, newest first (for admins: the dashboard)
RETRACTED = sql("""
    SELECT l.id, l.item_id, i.title, l.label, l.worker_id, l.created_at, l.retracted_at, l.retracted_by
    FROM labels l JOIN items i ON i.id = l.item_id
    WHERE l.retracted_at IS NOT NULL ORDER BY l.retracted_at DESC, l.id DESC LIMIT :n""")
RETRACTED_COUNT = sql("SELECT COUNT(*) FROM labels WHERE retracted_at IS NOT NULL")


def training_set(bind: Engine | Connection, allowed: Sequence[str]):
    """(item ids, agreed labels, audit mask, dropped): posts whose agreed label is in `allowed`.

    The audit mask marks posts handed out at random; `dropped` counts agreed labels
    that are not among `allowed` (a label removed from LABELS)."""
    with reading(bind) as conn:
        rows = conn.execute(AGREED).all()
        audit = {r[0] for r in conn.execute(RANDOM_SAMPLE)}
    allowed = set(allowed)
    kept = [(int(i), lab) for i, lab in rows if lab in allowed]
    ids = np.array([i for i, _ in kept], dtype=np.int64)
    y = np.array([lab for _, lab in kept], dtype=object)
    mask = np.array([i in audit for i in ids], dtype=bool)
    return ids, y, mask, len(rows) - len(kept)


def rows(bind: Engine | Connection, lo: int | None = None, hi: int | None = None, *,
         deciding: bool = False) -> list[tuple[int, str, str]]:
    """(item_id, worker_id, label) of every label, oldest first; only posts lo..hi when given.

    Second opinions are in (they count in agreement), unless `deciding`: then only the labels
    that decide a post's agreed label."""
    every, between = (DECIDING_ROWS, DECIDING_ROWS_BETWEEN) if deciding else (ROWS, ROWS_BETWEEN)
    with reading(bind) as conn:
        if lo is None:
            return [tuple(r) for r in conn.execute(every)]
        return [tuple(r) for r in conn.execute(between, {"lo": lo, "hi": hi})]


def per_class(bind: Engine | Connection, labels_: Sequence[str] = ()) -> dict[str, dict[str, int]]:
    """Per label: labels given (`labels`) and posts whose agreed label it is (`agreed`).

    The configured labels come first (with zeros), then any other label found."""
    out = {lab: {"labels": 0, "agreed": 0} for lab in labels_}
    with reading(bind) as conn:
        for lab, n in conn.execute(PER_LABEL):
            out.setdefault(lab, {"labels": 0, "agreed": 0})["labels"] = int(n)
        for lab, n in conn.execute(PER_AGREED_LABEL):
            out.setdefault(lab, {"labels": 0, "agreed": 0})["agreed"] = int(n)
    return out


def count(bind: Engine | Connection, since: datetime | None = None) -> int:
    """Labels in all, or given after `since`."""
    with reading(bind) as conn:
        if since is None:
            return int(conn.execute(COUNT).scalar_one())
        return int(conn.execute(COUNT_SINCE, {"since": since}).scalar_one())


def review_counts(bind: Engine | Connection, lo: int | None = None, hi: int | None = None) -> dict[int, int]:
    """Labels given in review, per post (posts lo..hi when given)."""
    with reading(bind) as conn:
        if lo is None:
            return {int(i): int(n) for i, n in conn.execute(REVIEWS)}
        return {int(i): int(n) for i, n in conn.execute(REVIEWS_BETWEEN, {"lo": lo, "hi": hi})}


def labeller_stats(bind: Engine | Connection) -> list[dict]:
    """View `labeller_stats` (imported and retracted labels left out; `retracted` counts the
    latter), most labels first."""
    with reading(bind) as conn:
        return [dict(r) for r in conn.execute(LABELLER_STATS).mappings()]


def retracted(bind: Engine | Connection, limit: int = 20) -> dict:
    """Retracted labels: how many in all, and the newest `limit` (post, label, who, when)."""
    with reading(bind) as conn:
        total = int(conn.execute(RETRACTED_COUNT).scalar_one())
        rows = [dict(r) for r in conn.execute(RETRACTED, {"n": int(limit)}).mappings()]
    return {"count": total, "newest": rows}


# --- the importer's writes ------------------------------------------------------------


def by_worker(conn: Connection, item_ids: Sequence[int]) -> dict[tuple[int, str], str]:
    """{(item id, worker id): the first label that worker gave the post} for these posts."""
    out: dict[tuple[int, str], str] = {}
    for chunk in chunks(sorted({int(i) for i in item_ids}), 1000):
        for r in conn.execute(BY_WORKER, {"ids": chunk}):
            out.setdefault((r.item_id, r.worker_id), r.label)
    return out


def insert(bind: Engine | Connection, rows_: list[dict]) -> int:
    """Insert label rows (dicts of `labels` columns) with one executemany."""
    if rows_:
        with writing(bind) as conn:
            conn.execute(_insert(labels), rows_)
    return len(rows_)
