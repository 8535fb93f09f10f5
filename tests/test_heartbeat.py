"""The orchestrator's heartbeat, `smartlabel health` and the beat in `smartlabel status`, on both
databases: the real orchestrator process beats (also while a Keras run trains), says `stopped`
on SIGTERM, and the health command's exit status follows the stored beat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from smartlabel import heartbeat
from smartlabel.db import utcnow
from smartlabel.migrate import upgrade
from smartlabel.store import heartbeat as store

from test_orchestrator import cli_env
from test_orchestrator_signals import Proc
from text_corpus import label_with_queue, seed_corpus

ROOT = Path(__file__).resolve().parents[1]


def smartlabel(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PYTHONPATH=str(ROOT / "src"), DATABASE_URL=url)
    return subprocess.run([sys.executable, "-m", "smartlabel", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT id, host, pid, started_at, beat_at, state FROM orchestrator_heartbeat ORDER BY id")).mappings()]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen in {timeout:.0f} s")


# --- health and its one line, on both databases ---------------------------------------------


def test_health_follows_the_stored_beat(db_url, engine_for, tmp_path):
    engine = engine_for(db_url)
    upgrade(engine)
    result = smartlabel("health", url=db_url, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "unhealthy: no orchestrator heartbeat yet (none has started on this database)"]

    now = utcnow()
    row_id = store.start(engine, host="box", pid=4242, state="waiting", now=now - timedelta(seconds=300))
    store.beat(engine, row_id, "run 7", now=now - timedelta(seconds=120))
    stale = smartlabel("health", "--max-age", "60", url=db_url, cwd=tmp_path)
    assert stale.returncode == 1, stale.stdout
    (line,) = stale.stderr.strip().splitlines()
    assert line.startswith("unhealthy: the orchestrator's last beat 12") and "run 7" in line
    assert "box pid 4242" in line and "older than 60 s, so it is down or stuck" in line
    # a longer allowance accepts the same beat
    assert smartlabel("health", "--max-age", "600", url=db_url, cwd=tmp_path).returncode == 0

    store.beat(engine, row_id, "waiting")
    fresh = smartlabel("health", url=db_url, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.startswith("healthy: orchestrator last beat ") and "waiting (box pid 4242" in fresh.stdout

    # a second process that stopped cleanly afterwards does not hide the live one
    other = store.start(engine, host="box", pid=4343, state="waiting")
    store.beat(engine, other, heartbeat.STOPPED)
    assert smartlabel("health", url=db_url, cwd=tmp_path).returncode == 0
    store.beat(engine, row_id, heartbeat.STOPPED)
    stopped = smartlabel("health", url=db_url, cwd=tmp_path)
    assert stopped.returncode == 1 and "stopped at" in stopped.stderr and "none is running" in stopped.stderr


def test_health_without_a_schema_or_a_database_says_what_to_do(tmp_path):
    missing = smartlabel("health", url=f"sqlite:///{tmp_path / 'empty.db'}", cwd=tmp_path)
    assert missing.returncode == 1
    (line,) = missing.stderr.strip().splitlines()
    assert "run `smartlabel db upgrade`" in line
    away = smartlabel("health", url="postgresql+psycopg2://nobody:pw@127.0.0.1:9/none", cwd=tmp_path)
    assert away.returncode == 1
    (line,) = away.stderr.strip().splitlines()
    assert line.startswith("unhealthy: cannot reach the database")


def test_status_shows_the_last_beat(db_url, engine_for, tmp_path):
    engine = engine_for(db_url)
    upgrade(engine)
    before = smartlabel("status", url=db_url, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert "Orchestrator: no heartbeat yet" in before.stdout
    row_id = store.start(engine, host="labelhost", pid=77, state="waiting")
    store.beat(engine, row_id, "run 3")
    after = smartlabel("status", url=db_url, cwd=tmp_path)
    (line,) = [x for x in after.stdout.splitlines() if x.startswith("Orchestrator:")]
    assert line.startswith("Orchestrator: last beat ") and "run 3 (labelhost pid 77, started " in line


def test_rows_older_than_a_day_are_dropped_when_a_process_starts(db_url, engine_for):
    engine = engine_for(db_url)
    upgrade(engine)
    store.start(engine, host="h", pid=1, state="waiting", now=utcnow() - timedelta(days=2))
    store.start(engine, host="h", pid=2, state="waiting", now=utcnow() - timedelta(hours=2))
    store.start(engine, host="h", pid=3, state="waiting")
    assert [r["pid"] for r in rows(engine)] == [2, 3]


# --- the real orchestrator process beats ----------------------------------------------------


@pytest.fixture
def labelled(db_url, engine_for):
    ids, truth = seed_corpus(db_url, 10)
    label_with_queue(db_url, dict(zip(ids, truth)), per_worker=6)
    return db_url, engine_for(db_url)


def test_the_orchestrator_beats_during_a_run_and_says_stopped_on_sigterm(labelled, tmp_path):
    """Keras: importing TensorFlow and training take seconds, during which the heartbeat thread
    keeps writing `run 1` with a newer beat_at each time; SIGTERM ends with `stopped`."""
    url, engine = labelled
    proc = Proc([], cli_env(url, tmp_path / "models", MODEL="keras", RETRAIN_INTERVAL_SECONDS=3600,
                            HEARTBEAT_SECONDS="0.3"), tmp_path)
    try:
        proc.wait_for("run 1 started")
        seen = set()

        def beats_during_the_run():
            (row,) = rows(engine)
            with engine.connect() as conn:
                status = conn.execute(text("SELECT status FROM model_runs WHERE id = 1")).scalar_one()
            assert status == "running" or len(seen) >= 3, f"run 1 ended ({status}) after beats {sorted(seen)}"
            if row["state"] == "run 1":
                seen.add(row["beat_at"])
            return len(seen) >= 3

        wait_until(beats_during_the_run, 120, "three beats during run 1")
        (row,) = rows(engine)
        assert row["pid"] == proc.p.pid
        assert smartlabel("health", url=url, cwd=tmp_path).returncode == 0
        proc.wait_for("run 1 ok", timeout=240)
        wait_until(lambda: rows(engine)[0]["state"] == "waiting", 30, "state back to waiting")
        code = proc.stop(signal.SIGTERM)
    finally:
        proc.kill()
    assert code == 0, "\n".join(proc.lines)
    (row,) = rows(engine)
    assert row["state"] == "stopped" and row["pid"] == proc.p.pid
    result = smartlabel("health", url=url, cwd=tmp_path)
    assert result.returncode == 1 and "stopped at" in result.stderr


def test_a_killed_orchestrator_goes_stale(sqlite_url, engine_for, tmp_path):
    engine = engine_for(sqlite_url)
    upgrade(engine)
    proc = Proc([], cli_env(sqlite_url, tmp_path / "models", RETRAIN_INTERVAL_SECONDS=3600, HEARTBEAT_SECONDS="0.3"),
                tmp_path)
    try:
        wait_until(lambda: rows(engine) and rows(engine)[0]["pid"] == proc.p.pid, 60, "a first beat")
        proc.p.send_signal(signal.SIGKILL)
        proc.p.wait(30)
    finally:
        proc.kill()
    (row,) = rows(engine)
    assert row["state"] == "waiting"  # no last word after SIGKILL
    later = heartbeat.health(engine, max_age=60, now=heartbeat.store.latest(engine)["beat_at"] + timedelta(seconds=61))
    assert not later.ok and "down or stuck" in later.message


def test_the_dashboard_shows_the_last_beat_escaped(db_url, engine_for):
    from smartlabel.dashboard import dashboard_data, render_html

    engine = engine_for(db_url)
    upgrade(engine)
    assert "Orchestrator: no heartbeat yet" in render_html(dashboard_data(engine, ["Advocacy"]))["summary"]
    row_id = store.start(engine, host="<b>box</b>", pid=31, state="waiting")
    store.beat(engine, row_id, "run 12")
    summary = render_html(dashboard_data(engine, ["Advocacy"]))["summary"]
    assert "Orchestrator: last beat " in summary and "run 12 (&lt;b&gt;box&lt;/b&gt; pid 31" in summary
