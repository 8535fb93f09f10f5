"""The orchestrator's heartbeat (`orchestrator_heartbeat`): one row per orchestrator process.

A process inserts its row when it starts and rewrites `beat_at` and `state` every few
seconds (`smartlabel.heartbeat`). Readers take the live row with the newest beat, so a
second orchestrator that was refused (or one that stopped cleanly, state `stopped`) never
hides the one that is running.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import as_datetime, orchestrator_heartbeat, utcnow
from smartlabel.store import reading, sql, writing

STOPPED = "stopped"
KEEP_ROWS_FOR = timedelta(days=1)

# the newest beat of a process that has not said it stopped; else the newest row at all
LATEST = sql("""
    SELECT id, host, pid, started_at, beat_at, state FROM orchestrator_heartbeat
    ORDER BY CASE WHEN state = 'stopped' THEN 1 ELSE 0 END, beat_at DESC, id DESC LIMIT 1""")
DROP_OLD = sql("DELETE FROM orchestrator_heartbeat WHERE beat_at < :before")


def start(bind: Engine | Connection, *, host: str, pid: int, state: str, now: datetime | None = None) -> int:
    """Insert this process's row (and drop rows older than a day); returns its id."""
    now = now or utcnow()
    with writing(bind) as conn:
        conn.execute(DROP_OLD, {"before": now - KEEP_ROWS_FOR})
        return int(conn.execute(
            insert(orchestrator_heartbeat).values(host=host[:200], pid=pid, started_at=now, beat_at=now,
                                                  state=state[:40])
            .returning(orchestrator_heartbeat.c.id)
        ).scalar_one())


def beat(bind: Engine | Connection, row_id: int, state: str, now: datetime | None = None) -> bool:
    """Rewrite the row's beat and state; False when the row is gone."""
    with writing(bind) as conn:
        done = conn.execute(update(orchestrator_heartbeat).where(orchestrator_heartbeat.c.id == row_id)
                            .values(beat_at=now or utcnow(), state=state[:40]))
        return done.rowcount == 1


def latest(bind: Engine | Connection) -> dict | None:
    """The live row with the newest beat (else the newest row), or None before any beat."""
    with reading(bind) as conn:
        row = conn.execute(LATEST).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["started_at"], out["beat_at"] = as_datetime(out["started_at"]), as_datetime(out["beat_at"])
    return out
