"""Planner statistics: `ANALYZE` after an import and after each orchestrator run.

A fresh database has none, and its plans show it (an audit hand-out took 95 ms before
`ANALYZE`, 0.8 ms after). So:

- SQLite: nothing, on purpose. SQLite loads statistics when a connection opens and keeps
  them: a labeller's kernel, whose connection lives for hours, plans with the statistics of
  the day it connected, and stale statistics are worse than none. Measured here: after an
  `ANALYZE` taken while `labels` had one row, a labeller's hand-out scanned `labels` once per
  post (a pop took 6-16 s at 20,000-35,000 posts, holding the write lock, so an import
  waiting behind it failed with "database is locked"), although the same query in a new
  connection took under 1 ms. Without statistics SQLite assumes large tables and uses the
  indexes (pop under 1 ms at 100,000 posts), whatever the tables grow to. `PRAGMA optimize`
  would create such statistics too (it analyzes the tables a connection used), so it is
  not run either.
- PostgreSQL: `ANALYZE` of the tables an import writes (posts, labels) or that a run
  changes and the hand-out reads. After a run, only the tables whose statistics are
  stale: the ones the run wrote (`predictions`, `model_runs`), and of the others those
  never analyzed or with more than STALE_SHARE of their rows changed since their last
  `ANALYZE` (`pg_stat_user_tables.n_mod_since_analyze`, the test autovacuum's auto-analyze
  makes, with its default share). A few labels between two runs leave `items`' statistics
  as they were, and analyzing it (30,000 sampled rows of wide text) was 0.3 s of a 1.7 s
  run at 80,000 posts. PostgreSQL lets only a table's owner (or, from
  PostgreSQL 17, a role granted MAINTAIN) analyze it; anyone else gets a warning and the
  table is skipped. So only the tables this role may maintain are analyzed: the owner
  (import, `init`) analyzes everything; the orchestrator role gets MAINTAIN from `smartlabel
  db roles` on PostgreSQL 17 and later, and before 17 it analyzes nothing and says so once
  in its log (autovacuum's auto-analyze and every import still keep statistics current).
"""

from __future__ import annotations

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

AFTER_IMPORT = ("items", "labels")
AFTER_RUN = ("items", "labels", "predictions", "model_runs", "leases", "handouts", "skips")
RUN_WRITES = ("predictions", "model_runs")  # analyzed after every run
STALE_SHARE = 0.1  # autovacuum_analyze_scale_factor's default

# the tables among :tables whose statistics are stale: never analyzed (by ANALYZE or
# autovacuum), or more than :share of their rows (as last counted) changed since
_STALE = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname IN :tables
      AND (s.relid IS NULL OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL) OR c.reltuples < 0
           OR s.n_mod_since_analyze > :share * c.reltuples)
    ORDER BY c.relname"""

# the tables among :tables this role may ANALYZE: it owns them (or is a member of the owner),
# is a superuser, or (PostgreSQL 17+) holds MAINTAIN on them
_MAY_ANALYZE = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname IN :tables
      AND (pg_has_role(c.relowner, 'USAGE')
           OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user){maintain})
    ORDER BY c.relname"""


def may_analyze(conn, tables) -> list[str]:
    """The tables of `tables` this connection's role may ANALYZE (PostgreSQL)."""
    maintain = " OR has_table_privilege(c.oid, 'MAINTAIN')" if server_version(conn) >= 170000 else ""
    stmt = text(_MAY_ANALYZE.format(maintain=maintain)).bindparams(bindparam("tables", expanding=True))
    return [r for (r,) in conn.execute(stmt, {"tables": list(tables)})]


def server_version(conn) -> int:
    return int(conn.exec_driver_sql("SHOW server_version_num").scalar())


def stale(conn, tables) -> list[str]:
    """The tables of `tables` whose statistics are stale (see the module docstring)."""
    stmt = text(_STALE).bindparams(bindparam("tables", expanding=True))
    return [r for (r,) in conn.execute(stmt, {"tables": list(tables), "share": STALE_SHARE})]


def optimize(engine: Engine, *, after_import: bool = False) -> tuple[list[str], str | None]:
    """Refresh planner statistics (PostgreSQL): (tables analyzed, why others were skipped or None).

    After an import every table it writes; after a run those a run writes and the stale
    others. Tables this role may not analyze are left out (no warning from the server)."""
    if engine.dialect.name == "sqlite":
        return [], None
    wanted = AFTER_IMPORT if after_import else AFTER_RUN
    with engine.begin() as conn:
        allowed = may_analyze(conn, wanted)
        chosen = allowed
        if not after_import and allowed:
            old = set(stale(conn, allowed)) | set(RUN_WRITES)
            chosen = [t for t in allowed if t in old]
        if chosen:
            conn.exec_driver_sql("ANALYZE " + ", ".join(chosen))
        skipped = [t for t in wanted if t not in allowed]
        if not skipped:
            return chosen, None
        user = conn.exec_driver_sql("SELECT current_user").scalar()
        why = ("it does not own them and PostgreSQL before 17 has no MAINTAIN privilege"
               if server_version(conn) < 170000 else "it lacks MAINTAIN on them: run `smartlabel db roles` as the owner")
    return chosen, (f"ANALYZE skipped for {', '.join(skipped)}: role {user} may not ({why}); autovacuum and "
                     "each import (as the owner) keep their statistics current")
