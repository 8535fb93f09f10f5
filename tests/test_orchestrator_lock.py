"""One orchestrator per database: real `smartlabel orchestrate` processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

from sqlalchemy import text
from sqlalchemy.engine import make_url

from smartlabel.orchestrator import EXIT_ALREADY_RUNNING

from helpers import LoggedProcess
from test_orchestrator import cli_env


class Orchestrate(LoggedProcess):
    """`smartlabel orchestrate` as a child process, its log read line by line."""

    def __init__(self, env, cwd, *args):
        super().__init__([sys.executable, "-m", "smartlabel", "orchestrate", *args], env, cwd)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(60)
        self._t.join(5)


def second(env, cwd, *args):
    return subprocess.run([sys.executable, "-m", "smartlabel", "orchestrate", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def refused_by(out, pid: int) -> None:
    assert out.returncode == EXIT_ALREADY_RUNNING, (out.returncode, out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    m = re.fullmatch(r"error: another orchestrator \(host (\S+), pid (\d+), since "
                     r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\) is running on this database: stop it first", lines[0])
    assert m, lines[0]
    assert m.group(1) == socket.gethostname()[:len(m.group(1))] and int(m.group(2)) == pid


def test_a_second_orchestrator_names_the_first_and_exits_and_a_killed_one_frees_the_lock(db_url, tmp_path, engine_for):
    env = cli_env(db_url, tmp_path / "models", RETRAIN_INTERVAL_SECONDS="1")
    first = Orchestrate(env, tmp_path)
    third = None
    try:
        first.wait_for("orchestrator started")
        refused_by(second(env, tmp_path), first.p.pid)
        refused_by(second(env, tmp_path, "--once", "--force"), first.p.pid)
        assert first.p.poll() is None  # the first one is untouched
        engine = engine_for(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM model_runs")).scalar_one() == 0  # the second did nothing
            if engine.dialect.name == "postgresql":  # who holds it is visible to an operator too
                apps = [a for (a,) in conn.execute(text("SELECT application_name FROM pg_stat_activity"))]
                assert sum(a.startswith(f"smartlabel orchestrator {first.p.pid} ") for a in apps) == 1
        if engine.dialect.name == "sqlite":
            lock = make_url(db_url).database + ".orchestrator.lock"
            assert open(lock).read().startswith(f"{first.p.pid} ")

        first.p.send_signal(signal.SIGKILL)  # a crash: no clean-up runs
        first.kill()
        third = Orchestrate(env, tmp_path)
        third.wait_for("orchestrator started")
        refused_by(second(env, tmp_path), third.p.pid)
        third.p.send_signal(signal.SIGTERM)
        assert third.p.wait(60) == 0
        third.wait_for("orchestrator stopped")
        # stopped cleanly: the next one starts at once
        out = second(env, tmp_path, "--once")
        assert out.returncode == 0, out.stderr
    finally:
        first.kill()
        if third is not None:
            third.kill()
