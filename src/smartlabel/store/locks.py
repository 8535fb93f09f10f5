"""Advisory locks: PostgreSQL's `pg_advisory_xact_lock`; on SQLite the write lock
(`BEGIN IMMEDIATE`) already serialises writers, so these do nothing there."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from smartlabel.store import sql

IMPORT_LOCK_KEY = 4_242_001  # one import at a time
XACT_LOCK = sql("SELECT pg_advisory_xact_lock(:k)")


def hold_import_lock(conn: Connection) -> None:
    """Wait for, then hold until the transaction ends, the one-import-at-a-time lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(XACT_LOCK, {"k": IMPORT_LOCK_KEY})
