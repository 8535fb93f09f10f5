"""Label quality tables: `quality_runs` (one summary per model run), `agreement` (figures per
scope) and `suspect_labels` (posts to review). `smartlabel.quality` computes; this stores."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import agreement, quality_runs, suspect_labels
from smartlabel.store import chunks, reading, sql, writing

TABLES = (suspect_labels, agreement, quality_runs)
LATEST_RUN = sql("SELECT MAX(run_id) FROM quality_runs")
SUSPECT_KINDS = sql("SELECT kind, COUNT(*) FROM suspect_labels WHERE run_id = :r GROUP BY kind")
REVIEWED = sql("""
    SELECT COUNT(DISTINCT s.item_id) FROM suspect_labels s JOIN labels l ON l.item_id = s.item_id
    WHERE s.run_id = :r AND l.handout_reason = 'review' AND l.retracted_at IS NULL""")
MOST_SUSPECT = sql("""
    SELECT s.item_id, i.title, s.kind, s.given_label, s.suggested_label, s.score
    FROM suspect_labels s JOIN items i ON i.id = s.item_id
    WHERE s.run_id = :r ORDER BY s.score DESC, s.item_id LIMIT :n""")
FLAGGED = sql("""
    SELECT item_id, kind, suggested_label, score FROM suspect_labels
    WHERE run_id = :r AND item_id BETWEEN :lo AND :hi""")
FLAGGED_ALL = sql("SELECT item_id, kind, suggested_label, score FROM suspect_labels WHERE run_id = :r")


def save(bind: Engine | Connection, run_id: int, summary: dict, agreement_rows: list[dict],
         suspect_rows: list[dict], keep_runs: int = 20) -> None:
    """Replace `run_id`'s quality rows in one transaction; keep the newest `keep_runs` runs' rows."""
    with writing(bind) as conn:
        for table in TABLES:
            conn.execute(delete(table).where(table.c.run_id == run_id))
        conn.execute(insert(quality_runs), [{"run_id": run_id, **summary}])
        if agreement_rows:
            conn.execute(insert(agreement), [{**r, "run_id": run_id, "computed_at": summary["computed_at"]}
                                             for r in agreement_rows])
        for batch in chunks(suspect_rows, 5000):
            conn.execute(insert(suspect_labels), batch)
        old = [r for (r,) in conn.execute(
            select(quality_runs.c.run_id).order_by(quality_runs.c.run_id.desc()).offset(keep_runs))]
        for table in TABLES if old else ():
            conn.execute(delete(table).where(table.c.run_id.in_(old)))


def latest_run(bind: Engine | Connection) -> int | None:
    """The newest run with a quality pass (the review queue follows it), or None."""
    with reading(bind) as conn:
        return conn.execute(LATEST_RUN).scalar()


def agreement_of(bind: Engine | Connection, run_id: int) -> list[dict]:
    """The stored agreement rows of a run, in the order they were computed."""
    cols = (agreement.c.scope, agreement.c.label, agreement.c.worker_a, agreement.c.worker_b,
            agreement.c.metric, agreement.c.value, agreement.c.n_items)
    with reading(bind) as conn:
        result = conn.execute(select(*cols).where(agreement.c.run_id == run_id).order_by(agreement.c.id))
        return [dict(r._mapping) for r in result]


def flagged(bind: Engine | Connection, run_id: int, lo: int | None = None, hi: int | None = None) -> dict:
    """{item id: row(item_id, kind, suggested_label, score)} of a run's suspects (posts lo..hi)."""
    with reading(bind) as conn:
        if lo is None:
            return {r.item_id: r for r in conn.execute(FLAGGED_ALL, {"r": run_id})}
        return {r.item_id: r for r in conn.execute(FLAGGED, {"r": run_id, "lo": lo, "hi": hi})}


def suspects_summary(bind: Engine | Connection, limit: int = 10) -> dict:
    """The newest pass: suspects per kind, how many were reviewed since, the most suspect posts."""
    with reading(bind) as conn:
        run = latest_run(conn)
        if run is None:
            return {"run_id": None, "model": 0, "tie": 0, "reviewed": 0, "top": []}
        counts = dict(conn.execute(SUSPECT_KINDS, {"r": run}).all())
        reviewed = conn.execute(REVIEWED, {"r": run}).scalar_one()
        top = [dict(r) for r in conn.execute(MOST_SUSPECT, {"r": run, "n": limit}).mappings()]
    return {"run_id": run, "model": int(counts.get("model", 0)), "tie": int(counts.get("tie", 0)),
            "reviewed": int(reviewed), "top": top}
