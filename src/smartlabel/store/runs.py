"""Model runs (`model_runs`) and the queue's pointer to the current one (`queue_state`).

A run's `kind` is `train` (the orchestrator trained a model and scored the open posts),
`coldstart` (too few labels for a model: priorities only, a representative order of the open
posts from `smartlabel.coldstart`; a train run during the cold start has acquisition
`coldstart` instead) or `autolabel` (`smartlabel autolabel` applied a model file to every post without an
agreed human label; the queue never follows it)."""

from __future__ import annotations

from datetime import datetime
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import as_datetime, model_runs, utcnow
from smartlabel.store import reading, sql, writing

TRAIN = "train"
AUTOLABEL = "autolabel"
COLDSTART = "coldstart"
KINDS = (TRAIN, AUTOLABEL, COLDSTART)

CURRENT_ID = sql("SELECT current_run_id FROM queue_state WHERE id = 1")
SET_CURRENT = sql("UPDATE queue_state SET current_run_id = :run_id, updated_at = :now WHERE id = 1")
CURRENT = sql("""
    SELECT r.id, r.finished_at, r.n_labels, r.cv_accuracy, r.model_kind, r.status, r.kind, r.acquisition
    FROM queue_state q JOIN model_runs r ON r.id = q.current_run_id WHERE q.id = 1""")
# the newest training run that counts as a base for "labels since the last run"
LAST_BASE = sql("""
    SELECT id, started_at FROM model_runs
    WHERE kind = 'train' AND status IN ('ok', 'skipped') ORDER BY id DESC LIMIT 1""")
FAILED_SINCE = sql("""
    SELECT finished_at FROM model_runs
    WHERE kind = 'train' AND status = 'failed' AND id > :after ORDER BY id DESC""")
LEARNING_CURVE = sql("""
    SELECT id AS run_id, finished_at, n_labels, cv_accuracy, cv_macro_f1, audit_accuracy, n_audit, model_kind
    FROM model_runs WHERE kind = 'train' AND status = 'ok' AND n_labels IS NOT NULL
    ORDER BY n_labels, id""")
LATEST_AUTOLABEL = sql("""
    SELECT r.id FROM model_runs r WHERE r.kind = 'autolabel' AND r.status = 'ok'
      AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.id)
    ORDER BY r.id DESC LIMIT 1""")
EARLIER_WITH_PREDICTIONS = sql("""
    SELECT r.id FROM model_runs r WHERE r.id < :before AND r.kind = 'train'
      AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.id)
    ORDER BY r.id DESC""")


# --- a run's life ---------------------------------------------------------------------


def start(bind: Engine | Connection, *, kind: str = TRAIN, **values) -> int:
    """Insert a run with status `running`; returns its id."""
    if kind not in KINDS:
        raise ValueError(f"run kind must be one of {KINDS}, not {kind!r}")
    with writing(bind) as conn:
        return int(conn.execute(
            insert(model_runs).values(started_at=utcnow(), status="running", kind=kind, **values)
            .returning(model_runs.c.id)
        ).scalar_one())


def finish(bind: Engine | Connection, run_id: int, status: str, message: str | None = None, **values) -> None:
    """Record a run's outcome (`ok`, `skipped`, `failed`) with its figures."""
    with writing(bind) as conn:
        conn.execute(update(model_runs).where(model_runs.c.id == run_id).values(
            status=status, message=message[:2000] if message else None, finished_at=utcnow(), **values))


def mark_interrupted(bind: Engine | Connection) -> int:
    """Runs left `running` by a process that stopped: marked failed. Returns how many."""
    with writing(bind) as conn:
        return conn.execute(
            update(model_runs).where(model_runs.c.status == "running")
            .values(status="failed", finished_at=utcnow(),
                    message="interrupted: the orchestrator stopped before this run finished")
        ).rowcount or 0


def last_base(bind: Engine | Connection) -> tuple[int, datetime] | None:
    """The newest training run that finished `ok` or `skipped`: (id, started_at), or None."""
    with reading(bind) as conn:
        row = conn.execute(LAST_BASE).first()
    return None if row is None else (int(row.id), as_datetime(row.started_at))


def failures_since(bind: Engine | Connection, after_run: int) -> list[datetime | None]:
    """When each failed training run after `after_run` finished, newest first."""
    with reading(bind) as conn:
        return [as_datetime(r.finished_at) for r in conn.execute(FAILED_SINCE, {"after": after_run})]


# --- the queue's current run ------------------------------------------------------------


def current_id(bind: Engine | Connection) -> int | None:
    with reading(bind) as conn:
        return conn.execute(CURRENT_ID).scalar()


def set_current(bind: Engine | Connection, run_id: int | None) -> None:
    """Switch the queue to a run's priorities: one short statement."""
    with writing(bind) as conn:
        conn.execute(SET_CURRENT, {"run_id": run_id, "now": utcnow()})


def current(bind: Engine | Connection) -> dict | None:
    """The run the queue follows (id, finished_at, n_labels, cv_accuracy, model_kind, status, kind,
    acquisition), or None."""
    with reading(bind) as conn:
        row = conn.execute(CURRENT).mappings().first()
    if row is None:
        return None
    return {**row, "finished_at": as_datetime(row["finished_at"])}


# --- reading runs back -------------------------------------------------------------------


def learning_curve(bind: Engine | Connection) -> list[dict]:
    """Training runs with status 'ok' and a label count, fewest labels first."""
    with reading(bind) as conn:
        return [dict(r) for r in conn.execute(LEARNING_CURVE).mappings()]


def latest(bind: Engine | Connection, n: int = 5) -> list[dict]:
    """The newest `n` runs of any kind and status, newest first (every column)."""
    with reading(bind) as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(model_runs).order_by(model_runs.c.id.desc()).limit(n))]


def latest_ok(bind: Engine | Connection, kind: str = TRAIN) -> dict | None:
    """The newest run of `kind` that finished `ok` (every column), or None."""
    with reading(bind) as conn:
        row = conn.execute(select(model_runs).where(model_runs.c.status == "ok")
                           .where(model_runs.c.kind == kind).order_by(model_runs.c.id.desc()).limit(1)).first()
    return dict(row._mapping) if row else None


def latest_autolabel_with_predictions(bind: Engine | Connection) -> int | None:
    with reading(bind) as conn:
        return conn.execute(LATEST_AUTOLABEL).scalar()


def earlier_with_predictions(bind: Engine | Connection, before: int) -> list[int]:
    """Training runs older than `before` whose predictions are still stored, newest first."""
    with reading(bind) as conn:
        return [int(r) for (r,) in conn.execute(EARLIER_WITH_PREDICTIONS, {"before": before})]


# open posts the current run did not score (new imports since it was written)
UNSCORED_OPEN = sql("""
    SELECT 1 FROM items i WHERE NOT i.done
      AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.item_id = i.id
                      AND p.run_id = (SELECT current_run_id FROM queue_state WHERE id = 1))
    LIMIT 1""")


def unscored_open(bind: Engine | Connection) -> bool:
    """Is there an open post the current run has no priority for?"""
    with reading(bind) as conn:
        return conn.execute(UNSCORED_OPEN).first() is not None
