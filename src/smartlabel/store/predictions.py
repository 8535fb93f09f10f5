"""A model's output per run (`predictions`): written in bulk before the run is switched on,
pruned to the newest runs, compared between runs (how much the model still changes its mind)."""

from __future__ import annotations

import io
from typing import Sequence

from sqlalchemy import insert as _insert
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import is_postgres, predictions
from smartlabel.store import chunks, reading, runs, sql, writing

COLUMNS = ("run_id", "item_id", "predicted_label", "confidence", "second_label",
           "second_confidence", "priority", "cluster")
COPY = f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN"  # text format: tab-separated, \N is NULL
NULL = "\\N"
FLOATS = ("confidence", "second_confidence", "priority")
COPY_ROWS = 100_000
# pruning keeps: the newest `k` training runs that have predictions, ...
NEWEST_TRAIN_RUNS = sql("""
    SELECT r.id FROM model_runs r WHERE r.kind = 'train'
      AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.id)
    ORDER BY r.id DESC LIMIT :k""")
# ... the latest auto-label run that finished ok (what `smartlabel export` reads), and any
# auto-label run still writing (an `autolabel` running beside the orchestrator)
KEPT_AUTOLABEL_RUNS = sql("""
    SELECT id FROM model_runs WHERE kind = 'autolabel' AND status = 'running'
    UNION
    SELECT id FROM (SELECT r.id FROM model_runs r WHERE r.kind = 'autolabel' AND r.status = 'ok'
                    ORDER BY r.id DESC LIMIT 1) latest""")
DELETE_OTHER_RUNS = sql("DELETE FROM predictions WHERE run_id NOT IN :keep", "keep")
# the current run's predicted labels over posts nobody has labelled
DISTRIBUTION = sql("""
    SELECT p.predicted_label, COUNT(*) FROM predictions p JOIN items i ON i.id = p.item_id
    WHERE p.run_id = (SELECT current_run_id FROM queue_state WHERE id = 1)
      AND i.label_count = 0 AND p.predicted_label IS NOT NULL
    GROUP BY p.predicted_label ORDER BY COUNT(*) DESC, p.predicted_label""")
# unlabelled posts both runs predicted, and how many of them changed predicted label
CHANGED = sql("""
    SELECT COUNT(*), COALESCE(SUM(CASE WHEN a.predicted_label <> b.predicted_label THEN 1 ELSE 0 END), 0)
    FROM predictions a JOIN predictions b ON b.item_id = a.item_id AND b.run_id = :old
    JOIN items i ON i.id = a.item_id
    WHERE a.run_id = :new AND i.label_count = 0
      AND a.predicted_label IS NOT NULL AND b.predicted_label IS NOT NULL""")


def write(engine: Engine, run_id: int, item_ids: Sequence[int], priorities: Sequence[float],
          predicted_labels: Sequence[str] | None = None, confidences: Sequence[float] | None = None,
          second_labels: Sequence[str] | None = None, second_confidences: Sequence[float] | None = None,
          chunk: int = 5000, clusters: Sequence[int | None] | None = None) -> int:
    """Write a run's predictions in bulk, before the run is made current.

    `clusters` (optional, from `smartlabel.diversity.diversify`): the diversity group of
    each post among the top candidates, None elsewhere.

    PostgreSQL: COPY in one transaction (labellers read only the current run,
    and take no lock this conflicts with). SQLite: short transactions of
    `chunk` rows, so a labeller's hand-out waits for one chunk at most.
    """
    n = len(item_ids)
    if len(priorities) != n:
        raise ValueError("item_ids and priorities differ in length")
    given = dict(zip(COLUMNS[2:], (predicted_labels, confidences, second_labels, second_confidences,
                                   priorities, clusters)))
    columns = {"run_id": [run_id] * n, "item_id": _plain_list(item_ids)}
    for name, values in given.items():
        if values is not None and len(values) != n:
            raise ValueError(f"item_ids and {name} differ in length")
        columns[name] = _plain_list(values) if values is not None else [None] * n
    if is_postgres(engine):
        _copy(engine, columns, n)
        return n
    rows = list(zip(*columns.values()))
    for batch in chunks(rows, chunk):
        with engine.begin() as conn:
            conn.execute(_insert(predictions), [dict(zip(COLUMNS, r)) for r in batch])
    return n


def _plain_list(values) -> list:
    """Python scalars: an array's in one C call (`tolist`), a list's numpy scalars one by one."""
    if hasattr(values, "tolist"):
        return values.tolist()
    return [v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v for v in values]


def _copy(engine: Engine, columns: dict[str, list], n: int) -> None:
    """COPY (text format) in one transaction, COPY_ROWS at a time. The lines are built a
    column at a time with C-level map/join (no Python loop per value): floats by repr (full
    precision; nan/inf as PostgreSQL reads them), labels escaped once per distinct label.
    The text is made one slice at a time: at 1M posts, 8M short strings at once were ~450 MB."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for start in range(0, n, COPY_ROWS):
            part = [_text_column(name, columns[name][start:start + COPY_ROWS]) for name in COLUMNS]
            buf = io.StringIO("\n".join(map("\t".join, zip(*part))) + "\n")
            cur.copy_expert(COPY, buf)
        raw.commit()
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()


def _text_column(name: str, values: list) -> list[str]:
    if name in ("predicted_label", "second_label"):
        escaped = {v: _escape(v) for v in set(values)}
        return list(map(escaped.__getitem__, values))
    to_text = repr if name in FLOATS else str
    if None in values:
        return [NULL if v is None else to_text(v) for v in values]
    return list(map(to_text, map(float, values))) if name in FLOATS else list(map(str, map(int, values)))


def _escape(label) -> str:
    """A label in COPY's text format: backslash, tab, newline and carriage return escaped."""
    if label is None:
        return NULL
    return (str(label).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def prune(bind: Engine | Connection, keep_runs: int = 5) -> int:
    """Delete predictions of all runs but the newest `keep_runs` training runs, the current run,
    the latest auto-label run that finished ok and auto-label runs still running.

    So `smartlabel export` keeps the model labels of the latest `smartlabel autolabel` after
    any number of retrains; an older auto-label run goes once a newer one finished."""
    with writing(bind) as conn:
        current = runs.current_id(conn)
        keep = [r for (r,) in conn.execute(NEWEST_TRAIN_RUNS, {"k": keep_runs})]
        keep += [r for (r,) in conn.execute(KEPT_AUTOLABEL_RUNS) if r not in keep]
        if current is not None and current not in keep:
            keep.append(current)
        if not keep:
            return 0
        return conn.execute(DELETE_OTHER_RUNS, {"keep": keep}).rowcount or 0


def distribution(bind: Engine | Connection) -> dict[str, int]:
    """The current run's predicted labels over posts nobody has labelled, commonest first."""
    with reading(bind) as conn:
        return {lab: int(n) for lab, n in conn.execute(DISTRIBUTION)}


def changed(bind: Engine | Connection, old_run: int, new_run: int) -> tuple[int, int]:
    """(unlabelled posts both runs predicted, how many changed predicted label)."""
    with reading(bind) as conn:
        n, changed_ = conn.execute(CHANGED, {"old": old_run, "new": new_run}).one()
    return int(n), int(changed_)
