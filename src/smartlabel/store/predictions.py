"""A model's output per run (`predictions`): written in bulk before the run is switched on,
pruned to the newest runs, compared between runs (how much the model still changes its mind)."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from sqlalchemy import insert as _insert
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import is_postgres, predictions
from smartlabel.store import chunks, reading, runs, sql, writing

COLUMNS = ("run_id", "item_id", "predicted_label", "confidence", "second_label",
           "second_confidence", "priority", "cluster")
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

    Each column is a list or a NumPy array (None is NULL, in an array of objects too).
    `clusters` (optional, from `smartlabel.diversity.diversify`): the diversity group of
    each post among the top candidates, None elsewhere.

    PostgreSQL: binary COPY in one transaction (labellers read only the current run,
    and take no lock this conflicts with). SQLite: short transactions of
    `chunk` rows, so a labeller's hand-out waits for one chunk at most.
    """
    n = len(item_ids)
    if len(priorities) != n:
        raise ValueError("item_ids and priorities differ in length")
    given = dict(zip(COLUMNS[2:], (predicted_labels, confidences, second_labels, second_confidences,
                                   priorities, clusters)))
    for name, values in given.items():
        if values is not None and len(values) != n:
            raise ValueError(f"item_ids and {name} differ in length")
    if is_postgres(engine):
        _copy(engine, {"run_id": np.full(n, run_id, dtype=np.int64), "item_id": item_ids, **given}, n)
        return n
    columns = {"run_id": [run_id] * n, "item_id": _plain_list(item_ids)}
    for name, values in given.items():
        columns[name] = _plain_list(values) if values is not None else [None] * n
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


def _copy(engine: Engine, columns: dict, n: int) -> None:
    """Binary COPY in one transaction, COPY_ROWS at a time (at 1M posts one buffer would be
    ~70 MB), each buffer built by NumPy (`binary_rows`: no Python work per row)."""
    from psycopg2.extensions import encodings

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        codec = encodings.get(raw.encoding, raw.encoding)
        cols = [Column.of(columns[name], KINDS[name], n, name, codec) for name in COLUMNS]
        for start in range(0, n, COPY_ROWS):
            part = slice(start, min(n, start + COPY_ROWS))
            buf = binary_rows([c[part] for c in cols])
            cur.copy_expert(COPY_BINARY, io.BytesIO(buf), size=COPY_READ)
        raw.commit()
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()


# --- PostgreSQL's binary COPY format, built with NumPy -------------------------------------
#
# The stream is a header, then per row a 16-bit field count and per field a 32-bit length
# (-1 is NULL) and the value's bytes (network byte order for int4 and float8; text in the
# connection's encoding), then a trailer. Rows may come in any order, so they are grouped by
# layout (which fields are NULL, which label each text field holds: a handful of labels),
# and each group is one NumPy structured array of fixed-width fields, filled a field at a
# time and turned into bytes in one call.

KINDS = {"run_id": "int4", "item_id": "int4", "predicted_label": "text", "confidence": "float8",
         "second_label": "text", "second_confidence": "float8", "priority": "float8", "cluster": "int4"}
COPY_BINARY = f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT binary)"
COPY_READ = 1 << 20  # bytes handed to the server per CopyData message
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
INT4 = (-(2 ** 31), 2 ** 31 - 1)
WIDTH = {"int4": ">i4", "float8": ">f8"}


class Column:
    """One column for binary COPY: per row a layout code (0 is NULL; for text 1 + the index
    of its value in `values`) and, for numbers, the value."""

    def __init__(self, kind: str, code: np.ndarray, data: np.ndarray | None, values: list[bytes]):
        self.kind, self.code, self.data, self.values = kind, code, data, values

    def __getitem__(self, part: slice) -> "Column":
        return Column(self.kind, self.code[part], None if self.data is None else self.data[part], self.values)

    @classmethod
    def of(cls, values, kind: str, n: int, name: str, codec: str = "utf-8") -> "Column":
        if values is None:
            return cls(kind, np.zeros(n, dtype=np.int64), None, [])
        if kind == "text":
            distinct = list(dict.fromkeys(values.tolist() if hasattr(values, "tolist") else values))
            index = {v: (0 if v is None else k + 1) for k, v in enumerate(distinct)}
            code = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=n)
            return cls(kind, code, None, [b""] + [b"" if v is None else str(v).encode(codec) for v in distinct])
        arr = np.asarray(values)
        null = np.zeros(n, dtype=bool)
        if arr.dtype == object:  # None among the values (or a list of mixed scalars)
            null = np.fromiter((v is None for v in arr), dtype=bool, count=n)
            arr = np.where(null, 0, arr).astype(np.float64)
        if arr.dtype.kind not in "iufb":
            raise ValueError(f"{name} holds values that are not numbers")
        if kind == "int4":
            if arr.dtype.kind == "f" and not np.array_equal(arr[~null], np.round(arr[~null])):
                raise ValueError(f"{name} holds values that are not whole numbers")
            arr = arr.astype(np.int64)
            if arr[~null].size and (arr[~null].min() < INT4[0] or arr[~null].max() > INT4[1]):
                raise ValueError(f"{name} holds values outside PostgreSQL's integer range")
        else:
            arr = arr.astype(np.float64)
        return cls(kind, (~null).astype(np.int64), arr, [])


def binary_rows(cols: list[Column]) -> bytes:
    """The binary COPY stream of these columns' rows: header, rows, trailer."""
    n = len(cols[0].code)
    radix = [max(len(c.values), 2) for c in cols]
    key = np.zeros(n, dtype=np.int64)  # one layout key per row: the columns' codes in mixed radix
    for c, r in zip(cols, radix):
        key = key * r + c.code
    layouts, group = np.unique(key, return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(layouts) + 1))
    parts = [HEADER]
    for g, layout in enumerate(layouts.tolist()):
        codes = []
        for r in reversed(radix):
            layout, code = divmod(layout, r)
            codes.append(code)
        parts.append(_group(cols, codes[::-1], order[bounds[g]:bounds[g + 1]]))
    parts.append(TRAILER)
    return b"".join(parts)


def _group(cols: list[Column], codes: list[int], rows: np.ndarray) -> bytes:
    """The rows of one layout, as the bytes of one structured array."""
    fields, fill = [("count", ">i2")], {"count": len(cols)}
    for k, (c, code) in enumerate(zip(cols, codes)):
        fields.append((f"n{k}", ">i4"))
        if code == 0:
            fill[f"n{k}"] = -1
        elif c.kind == "text":
            fill[f"n{k}"] = len(c.values[code])
            if c.values[code]:
                fields.append((f"v{k}", f"S{len(c.values[code])}"))
                fill[f"v{k}"] = c.values[code]
        else:
            fields.append((f"v{k}", WIDTH[c.kind]))
            fill[f"n{k}"], fill[f"v{k}"] = np.dtype(WIDTH[c.kind]).itemsize, c.data[rows]
    out = np.empty(len(rows), dtype=np.dtype(fields))
    for name, value in fill.items():
        out[name] = value
    return out.tobytes()


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
