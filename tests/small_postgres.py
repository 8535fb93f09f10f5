"""A throwaway PostgreSQL server with few connection slots (pgserver, restarted with
`max_connections` lowered), and a way to fill every slot: a server "full" as one with too
many labellers is, without touching the session's shared server."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def small_postgres(max_connections: int = 8):
    """Yield the SQLAlchemy URL of a fresh server allowing `max_connections` clients."""
    import pgserver
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    folder = Path(tempfile.mkdtemp(prefix="smartlabel-pg-small-"))
    folder.chmod(0o755)
    srv = pgserver.get_server(str(folder / "pg"), cleanup_mode="delete")
    try:
        srv.psql(f"ALTER SYSTEM SET max_connections = {int(max_connections)};")
        # the restart keeps the options of the first start (socket folder, no TCP)
        pg_ctl(["-w", "-m", "fast", "-l", str(srv.log), "restart"], pgdata=srv.pgdata, user=srv.system_user,
               timeout=30)
        srv._postmaster_info = PostmasterInfo.read_from_pgdata(srv.pgdata)  # the new postmaster
        yield srv.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        srv.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def new_database(admin_url: str) -> str:
    """A new, migrated database on that server."""
    from smartlabel.migrate import upgrade

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=None)
    with engine.connect() as conn:
        conn.execute(text("CREATE DATABASE smartlabel"))
    engine.dispose()
    url = make_url(admin_url).set(database="smartlabel").render_as_string(hide_password=False)
    upgrade(url).dispose()
    return url


def fill_connections(url: str) -> list:
    """Open raw connections until the server refuses one ("too many clients"); return them."""
    import psycopg2

    dsn = make_url(url).set(drivername="postgresql")
    held = []
    while True:
        try:
            held.append(psycopg2.connect(dsn.render_as_string(hide_password=False)))
        except psycopg2.OperationalError as exc:
            if "too many clients" in str(exc) or "connection slots are reserved" in str(exc):
                return held
            raise
        if len(held) > 500:
            raise RuntimeError("the server accepted 500 connections: max_connections was not lowered")


def free(held: list) -> None:
    for conn in held:
        conn.close()
    held.clear()
