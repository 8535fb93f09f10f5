"""Read models that join several tables: what `smartlabel status`, the admin dashboard,
`smartlabel autolabel` and `smartlabel export` show or stream."""

from __future__ import annotations

from typing import Iterator

from sqlalchemy.engine import Connection, Engine

from smartlabel.db import utcnow
from smartlabel.store import labels as store_labels
from smartlabel.store import reading, runs, sql

STATUS = {
    # posts and done posts from the counters the triggers on `items` keep (O(1) at any pool size)
    "items": sql("SELECT COALESCE(SUM(total), 0) FROM item_counts"),
    "labelled": sql("SELECT COUNT(DISTINCT item_id) FROM labels WHERE retracted_at IS NULL"),
    "agreed": sql("SELECT COUNT(*) FROM agreed_labels"),
    "done": sql("SELECT COALESCE(SUM(done), 0) FROM item_counts"),
    "leased": sql("SELECT COUNT(*) FROM leases WHERE expires_at > :now"),
    "labels": sql("SELECT COUNT(*) FROM labels WHERE retracted_at IS NULL"),
    "labellers": sql("SELECT COUNT(DISTINCT worker_id) FROM labels WHERE retracted_at IS NULL"),
    "retracted": sql("SELECT COUNT(*) FROM labels WHERE retracted_at IS NOT NULL"),
}
POOL = sql("""
    SELECT COUNT(*), COALESCE(SUM(CASE WHEN label_count > 0 THEN 1 ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN done THEN 1 ELSE 0 END), 0)
    FROM items""")
# posts without an agreed human label (unlabelled, or a tie): what autolabel labels
UNAGREED_COUNT = sql("""
    SELECT COUNT(*) FROM items i WHERE NOT EXISTS (SELECT 1 FROM agreed_labels a WHERE a.item_id = i.id)""")
UNAGREED_PAGE = sql("""
    SELECT i.id, i.title, i.clean_selftext FROM items i
    WHERE i.id > :after AND NOT EXISTS (SELECT 1 FROM agreed_labels a WHERE a.item_id = i.id)
    ORDER BY i.id LIMIT :n""")
EXPORT_PAGE = sql("""
    SELECT i.id, i.external_id, i.title, i.selftext, i.clean_selftext, i.extra,
           a.agreed_label, a.votes, p.predicted_label, p.confidence
    FROM items i
    LEFT JOIN agreed_labels a ON a.item_id = i.id
    LEFT JOIN predictions p ON p.item_id = i.id AND p.run_id = :run
    WHERE i.id > :after ORDER BY i.id LIMIT :n""")


def status(bind: Engine | Connection) -> dict[str, int]:
    """Posts, labelled posts, agreed labels, done posts, live leases, labels, labellers (retracted
    labels left out), and how many labels were retracted."""
    with reading(bind) as conn:
        return {key: int(conn.execute(stmt, {"now": utcnow()}).scalar_one()) for key, stmt in STATUS.items()}


def pool(bind: Engine | Connection) -> dict:
    """Posts in all, labelled, unlabelled, done; labels; the queue's current run."""
    with reading(bind) as conn:
        total, labelled, done = (int(v) for v in conn.execute(POOL).one())
        return {"items": total, "labelled": labelled, "unlabelled": total - labelled, "done": done,
                "labels": store_labels.count(conn), "current_run": runs.current_id(conn)}


def unagreed_count(bind: Engine | Connection) -> int:
    with reading(bind) as conn:
        return int(conn.execute(UNAGREED_COUNT).scalar_one())


def _pages(bind, stmt, batch: int, **params) -> Iterator[list]:
    """Rows of `stmt` in id order, `batch` at a time (keyset pagination on items.id)."""
    after = 0
    while True:
        with reading(bind) as conn:
            rows = conn.execute(stmt, {"after": after, "n": batch, **params}).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def unagreed_pages(bind: Engine | Connection, batch: int) -> Iterator[list]:
    """(id, title, clean_selftext) of posts without an agreed label, `batch` at a time."""
    return _pages(bind, UNAGREED_PAGE, batch)


def export_pages(bind: Engine | Connection, run_id: int | None, batch: int) -> Iterator[tuple[list, dict]]:
    """Every post with its agreed label and `run_id`'s prediction, `batch` at a time, with the
    votes of the page's posts: ({item id: [{"worker_id", "label"}, ...]})."""
    for rows in _pages(bind, EXPORT_PAGE, batch, run=run_id if run_id is not None else -1):
        votes: dict[int, list] = {}
        for item_id, worker, label in store_labels.rows(bind, rows[0].id, rows[-1].id):
            votes.setdefault(item_id, []).append({"worker_id": worker, "label": label})
        yield rows, votes
