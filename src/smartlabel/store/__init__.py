"""Every SQL statement outside the hand-out (which lives in `smartlabel.queue`).

One module per group of tables, so a newcomer finds a statement by the table it touches:

| module        | owns                                                         |
|---------------|--------------------------------------------------------------|
| `items`       | `items`: the pool, model-input texts, inserts, the label recount |
| `labels`      | `labels`: training labels, label rows for agreement, inserts |
| `runs`        | `model_runs` and `queue_state`: a run's life, the current run |
| `predictions` | `predictions`: bulk write, prune, churn between runs          |
| `quality`     | `quality_runs`, `agreement`, `suspect_labels`                 |
| `reports`     | read models joining several tables: status, dashboard, export |
| `locks`       | one import at a time, one orchestrator per database          |

The rule for how SQL is written here:
- statements that read, and anything dialect-specific, are raw SQL in named
  module-level constants (`text(...)`), readable as they would be typed into
  Adminer's "SQL command"; lists of ids are bound with expanding parameters
  (`WHERE id IN :ids`), never spliced into the string;
- writes of whole rows (inserts, a run's row updates) use SQLAlchemy Core on the
  `Table` objects of `smartlabel.db`, so each table's columns are declared once.

Functions take a `bind`: an `Engine` (the function opens its own connection or
transaction) or a `Connection` (it runs inside the caller's transaction, e.g. the
importer's single transaction or the queue's `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine


def sql(statement: str, *expanding: str, **types):
    """A named statement; `expanding` names parameters bound to lists (`IN :ids`), `types`
    gives parameters a SQLAlchemy type (`since=DateTime`: stored as the column stores it)."""
    stmt = text(statement)
    params = [bindparam(name, expanding=True) for name in expanding]
    params += [bindparam(name, type_=type_) for name, type_ in types.items()]
    return stmt.bindparams(*params) if params else stmt


@contextmanager
def _connection(bind: Engine | Connection, begin: bool) -> Iterator[Connection]:
    if isinstance(bind, Connection):  # the caller's connection, and its transaction
        yield bind
    else:
        with (bind.begin() if begin else bind.connect()) as conn:
            yield conn


def reading(bind: Engine | Connection):
    """A connection to read with: the caller's, or a new one from the engine."""
    return _connection(bind, begin=False)


def writing(bind: Engine | Connection):
    """A connection to write with: the caller's (its transaction), or a new transaction."""
    return _connection(bind, begin=True)


def chunks(values, size: int):
    """Consecutive slices of `values` of at most `size` elements."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
