"""The orchestrator's heartbeat, and `smartlabel health` (docker compose's healthcheck).

While the orchestrator runs, a thread of its own (`Heartbeat`) writes the process's row
in `orchestrator_heartbeat` every BEAT_SECONDS: host, pid, start time, the beat's time
and the state (`waiting`, `run N` while a run trains and scores, `stopping`). It beats
from its own thread, so a long training run keeps beating; a process that hangs or dies
stops beating. On a clean exit the last beat says `stopped`.

`health(engine, max_age)` reads the newest live row: fresh (younger than `max_age`
seconds) is healthy; stale, stopped, missing or an unreachable database is not, with one
line saying why. `describe(row)` is the line `smartlabel status` and the dashboard show.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy.engine import Engine

from smartlabel.db import utcnow
from smartlabel.store import heartbeat as store

log = logging.getLogger("smartlabel.orchestrator")

BEAT_SECONDS = 10.0
DEFAULT_MAX_AGE = 60.0
STOPPED = store.STOPPED


class Heartbeat:
    """Beats every `interval` seconds from a daemon thread until `stop()`."""

    def __init__(self, engine: Engine, state: Callable[[], str], *, interval: float = BEAT_SECONDS):
        self.engine = engine
        self.state = state
        self.interval = float(interval)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.row_id: int | None = None
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smartlabel-heartbeat", daemon=True)
        self._last_error: str | None = None

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """End the thread, then a last beat saying `stopped` (best effort)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 5 if timeout is None else timeout)
        self.beat(STOPPED)

    def _run(self) -> None:
        while True:
            self.beat()
            if self._stop.wait(self.interval):
                return

    def beat(self, state: str | None = None) -> bool:
        """One beat (the first one inserts this process's row); never raises."""
        try:
            state = state or self._current_state()
            if self.row_id is None or not store.beat(self.engine, self.row_id, state):
                self.row_id = store.start(self.engine, host=self.host, pid=self.pid, state=state)
            self.beats += 1
            if self._last_error is not None:
                log.info("heartbeat: written again")
                self._last_error = None
            return True
        except Exception as exc:  # the database is away: say so once, beat again next time
            from smartlabel.errors import describe_error

            msg = describe_error(exc, self.engine)
            if msg != self._last_error:
                log.warning("heartbeat not written: %s", msg)
            self._last_error = msg
            return False

    def _current_state(self) -> str:
        try:
            return str(self.state())
        except Exception:
            return "unknown"


@dataclass(frozen=True)
class Health:
    ok: bool
    message: str


def _age(row: dict, now: datetime) -> float:
    return max(0.0, (now - row["beat_at"]).total_seconds())


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def describe(row: dict | None, now: datetime | None = None) -> str:
    """One line about the orchestrator's last beat, for `smartlabel status` and the dashboard."""
    if row is None:
        return "no heartbeat yet: no orchestrator has run on this database"
    now = now or utcnow()
    who = f"{row['host']} pid {row['pid']}"
    if row["state"] == STOPPED:
        return f"stopped at {_when(row['beat_at'])} UTC ({who}, started {_when(row['started_at'])} UTC)"
    return (f"last beat {_age(row, now):.0f} s ago at {_when(row['beat_at'])} UTC: {row['state']} "
            f"({who}, started {_when(row['started_at'])} UTC)")


def latest(engine: Engine) -> dict | None:
    return store.latest(engine)


def health(engine: Engine, max_age: float = DEFAULT_MAX_AGE, now: datetime | None = None) -> Health:
    """Is an orchestrator beating on this database? One line either way."""
    from smartlabel.errors import describe_error

    try:
        row = store.latest(engine)
    except Exception as exc:
        return Health(False, f"unhealthy: {describe_error(exc, engine)}")
    now = now or utcnow()
    if row is None:
        return Health(False, "unhealthy: no orchestrator heartbeat yet (none has started on this database)")
    if row["state"] == STOPPED:
        return Health(False, f"unhealthy: the orchestrator {describe(row, now)}; none is running")
    age = _age(row, now)
    if age > max_age:
        return Health(False, f"unhealthy: the orchestrator's {describe(row, now)}; older than {max_age:g} s, "
                             "so it is down or stuck")
    return Health(True, f"healthy: orchestrator {describe(row, now)}")
