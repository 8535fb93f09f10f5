"""Locks: one import at a time, one orchestrator per database.

- Import, PostgreSQL: `pg_advisory_xact_lock`, held by the import's transaction. Import,
  SQLite: an exclusive `flock` on the file `<database>.import.lock` (an import commits in
  chunks, so SQLite's write lock alone no longer keeps two imports apart).
- Orchestrator, PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held on a
  connection of its own for the orchestrator's whole life; that connection's
  `application_name` says who holds it ("smartlabel orchestrator PID SINCE HOST"), which
  any role reads back from `pg_locks` and `pg_stat_activity` (Adminer shows it too).
  Orchestrator, SQLite: an exclusive `flock` on `<database>.orchestrator.lock`, whose
  content says who holds it. Either way the operating system or the server frees the lock
  when the process ends, killed or not: a stale holder never blocks a restart.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy.engine import Connection, Engine

from smartlabel.store import sql

IMPORT_LOCK_KEY = 4_242_001  # one import at a time
ORCHESTRATOR_LOCK_KEY = 4_242_002  # one orchestrator per database
XACT_LOCK = sql("SELECT pg_advisory_xact_lock(:k)")
TRY_SESSION_LOCK = sql("SELECT pg_try_advisory_lock(:k)")
# who holds a session advisory lock on a one-int8 key in this database (classid: high 32 bits,
# objid: low 32 bits, objsubid 1); application_name is shown to every role
LOCK_HOLDER = sql("""
    SELECT a.pid, a.application_name, a.client_hostname, a.client_addr::text AS client_addr, a.backend_start
    FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :k AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    LIMIT 1""")
APP_PREFIX = "smartlabel orchestrator"
APP_NAME_MAX = 63  # PostgreSQL keeps NAMEDATALEN - 1 bytes of application_name


class LockHeld(Exception):
    """Another process holds the lock; `holder` says who, as far as it is known."""

    def __init__(self, holder: "Holder"):
        super().__init__(str(holder))
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    host: str
    pid: str
    since: str

    @classmethod
    def me(cls) -> "Holder":
        since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(socket.gethostname() or "?", str(os.getpid()), since)

    def line(self) -> str:
        return f"{self.pid} {self.since} {self.host}"

    @classmethod
    def parse(cls, line: str) -> "Holder":
        parts = (line or "").strip().split(" ", 2)
        if len(parts) != 3:
            return cls("?", "?", "?")
        pid, since, host = parts
        return cls(host, pid, since)

    def __str__(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since}"


# --- import ---------------------------------------------------------------------------------


def hold_import_lock(conn: Connection) -> None:
    """PostgreSQL: wait for, then hold until the transaction ends, the one-import-at-a-time lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(XACT_LOCK, {"k": IMPORT_LOCK_KEY})


@contextmanager
def import_file_lock(engine: Engine, waiting=None) -> Iterator[None]:
    """SQLite: hold `<database>.import.lock` (exclusive flock) for the import, waiting for
    another import to finish first (`waiting()` is called once if it has to wait). Nothing to
    do on PostgreSQL or an in-memory database."""
    path = _sqlite_path(engine)
    if path is None:
        yield
        return
    lock_file, me = path + ".import.lock", Holder.me().line()
    try:
        fd = _open_locked(lock_file, wait=False, content=me)
    except LockHeld:
        if waiting is not None:
            waiting()
        fd = _open_locked(lock_file, wait=True, content=me)
    try:
        yield
    finally:
        os.close(fd)  # closing frees the flock


# --- orchestrator -----------------------------------------------------------------------------


class OrchestratorLock:
    """Held from `acquire()` to `release()` (or the end of the process). `acquire` raises
    LockHeld naming the holder when another orchestrator runs on the same database."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.me = Holder.me()
        self._conn = None  # PostgreSQL: the connection that holds the session lock
        self._lock_engine = None
        self._file = None  # SQLite: the flock context

    def acquire(self) -> "OrchestratorLock":
        if self.engine.dialect.name == "postgresql":
            self._acquire_pg()
        else:
            path = _sqlite_path(self.engine)
            if path is not None:
                self._file = _flock(path + ".orchestrator.lock", wait=False, content=self.me.line())
                self._file.__enter__()
        return self

    def _acquire_pg(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        name = f"{APP_PREFIX} {self.me.line()}".encode()[:APP_NAME_MAX].decode("utf-8", "ignore")
        # a connection of its own, not from the pool: closing it really closes it (and frees the lock)
        self._lock_engine = create_engine(self.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                          connect_args={"application_name": name})
        conn = self._lock_engine.connect()
        try:
            if not conn.execute(TRY_SESSION_LOCK, {"k": ORCHESTRATOR_LOCK_KEY}).scalar():
                raise LockHeld(_pg_holder(conn))
        except BaseException:
            conn.close()
            self._lock_engine.dispose()
            self._lock_engine = None
            raise
        self._conn = conn

    def verify(self) -> None:
        """PostgreSQL: check the lock's connection still holds it; after a lost connection (a
        database restart) take the lock again. Raises LockHeld if another orchestrator took it
        meanwhile, a database error while the database is away. SQLite: a flock cannot be lost."""
        if self._lock_engine is None:
            return
        if self._conn is not None:
            try:
                self._conn.execute(sql("SELECT 1")).scalar()
                return
            except Exception:
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None
        self._lock_engine.dispose()
        self._lock_engine = None
        self._acquire_pg()

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # ends the session: the server frees the lock
            finally:
                self._conn = None
                self._lock_engine.dispose()
                self._lock_engine = None
        if self._file is not None:
            self._file.__exit__(None, None, None)
            self._file = None

    def __enter__(self) -> "OrchestratorLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _pg_holder(conn: Connection) -> Holder:
    row = conn.execute(LOCK_HOLDER, {"k": ORCHESTRATOR_LOCK_KEY}).mappings().first()
    if row is None:  # it was released between our try and this look
        return Holder("?", "?", "?")
    app = row["application_name"] or ""
    if app.startswith(APP_PREFIX + " "):
        return Holder.parse(app[len(APP_PREFIX) + 1:])
    # some other client took the key: say what the server knows of it
    host = row["client_hostname"] or row["client_addr"] or "local socket"
    since = row["backend_start"].strftime("%Y-%m-%dT%H:%M:%SZ") if row["backend_start"] else "?"
    return Holder(host, f"{row['pid']} (server process)", since)


# --- files ------------------------------------------------------------------------------------


def _sqlite_path(engine: Engine) -> str | None:
    if engine.dialect.name != "sqlite":
        return None
    from smartlabel.db import default_sqlite_path

    path = default_sqlite_path(engine.url.render_as_string(hide_password=False))
    return os.path.abspath(path) if path else None


def _open_locked(path: str, *, wait: bool, content: str) -> int:
    """A descriptor of `path` (created if missing; never deleted, so two processes always lock
    the same file) holding an exclusive flock, with `content` written into it. Not waiting, a
    held lock raises LockHeld with what the file says."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(Holder.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (content + "\n").encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _flock(path: str, *, wait: bool, content: str) -> Iterator[None]:
    fd = _open_locked(path, wait=wait, content=content)
    try:
        yield
    finally:
        os.close(fd)  # closing frees the flock
