"""SIGTERM/SIGINT stop the real orchestrator process cleanly (no half-written model file)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from smartlabel import modelstore

from helpers import LoggedProcess
from test_orchestrator import cli_env, runs
from text_corpus import label_with_queue, seed_corpus

ROOT = Path(__file__).resolve().parents[1]


class Proc(LoggedProcess):
    """The orchestrator as a child process, its log read line by line."""

    def __init__(self, args, env, cwd):
        super().__init__([sys.executable, str(ROOT / "orchestrator.py"), *args], env, cwd)

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        finally:
            self._t.join(5)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def labelled(sqlite_url, engine_for):
    ids, truth = seed_corpus(sqlite_url, 10)
    label_with_queue(sqlite_url, dict(zip(ids, truth)), per_worker=6)
    return sqlite_url, engine_for(sqlite_url)


def test_sigterm_during_a_run_stops_without_a_model_file_and_a_restart_resumes(labelled, tmp_path):
    url, engine = labelled
    models = tmp_path / "models"
    # Keras: importing TensorFlow and training take seconds, so the signal lands mid-run
    proc = Proc([], cli_env(url, models, MODEL="keras", RETRAIN_INTERVAL_SECONDS=3600), tmp_path)
    try:
        proc.wait_for("run 1 started")
        code = proc.stop(signal.SIGTERM)
    finally:
        proc.kill()
    log = "\n".join(proc.lines)
    assert code == 0, log
    assert "SIGTERM received: stopping after the current step" in log
    assert "run 1 stopped" in log and "orchestrator stopped" in log
    (run,) = runs(engine)
    assert run["status"] == "failed" and run["message"].startswith("stopped by a signal"), run
    assert run["finished_at"] is not None and run["model_path"] is None
    assert modelstore.files(models) == []
    assert [p.name for p in models.rglob("*.tmp")] == []
    assert [p for p in models.iterdir() if p.suffix == ".pkl"] == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_run_id FROM queue_state")).scalar() is None
    # a restart carries on from the database: the labels are still new, so it retrains
    again = subprocess.run([sys.executable, str(ROOT / "orchestrator.py"), "--once"], env=cli_env(url, models),
                           capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    first, second = runs(engine)
    assert first["status"] == "failed" and second["status"] == "ok"
    (path,) = modelstore.files(models)
    assert second["model_path"] == str(path) and path.name.endswith(f" {second['cv_accuracy']:.4f}.pkl")


def test_sigint_while_waiting_stops_promptly(labelled, tmp_path):
    url, engine = labelled
    proc = Proc([], cli_env(url, tmp_path / "models", RETRAIN_EVERY_N_LABELS=1000, RETRAIN_INTERVAL_SECONDS=3600),
                tmp_path)
    try:
        proc.wait_for("no retraining: 18 new label(s) so far, retraining at 1000")
        code = proc.stop(signal.SIGINT, timeout=30)
    finally:
        proc.kill()
    assert code == 0, "\n".join(proc.lines)
    assert "orchestrator stopped" in proc.lines[-1]
    assert runs(engine) == []


def test_once_exits_1_when_the_run_fails(tmp_path):
    # a database without the schema: one clear line, exit status 1
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    out = subprocess.run([sys.executable, "-m", "smartlabel", "orchestrate", "--once", "--force"],
                         env=cli_env(url, tmp_path / "m"), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "smartlabel db upgrade" in errors[0], out.stderr
