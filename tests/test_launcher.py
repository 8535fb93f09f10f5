"""`smartlabel run` (what `make run` starts): loads aldata.csv once, runs orchestrator and page, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from voila_browser import free_port

ROOT = Path(__file__).resolve().parents[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"smartlabel run exited early with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the labelling page never listened on port {port}")


def _start(tmp_path: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "VOILA_PORT": str(port), "MODELS_DIR": str(tmp_path / "models"), "VOILA_TOKEN": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "smartlabel", "run", "--data", str(ROOT / "aldata.csv")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> str:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    gone, alive = psutil.wait_procs(children, timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"left running after SIGTERM: {[p.pid for p in alive]}"
    return out


@pytest.mark.slow
def test_run_loads_data_once_serves_the_page_and_stops_everything(tmp_path):
    n_rows = sum(1 for _ in open(ROOT / "aldata.csv", encoding="utf-8")) - 1  # bodies span lines: an upper bound
    port = free_port()
    proc = _start(tmp_path, port)
    try:
        _wait_port(port, proc)
        names = {p.name() + " " + " ".join(p.cmdline()[1:4]) for p in psutil.Process(proc.pid).children(recursive=True)}
        assert any("orchestrate" in n for n in names), names
        assert any("voila" in n for n in names), names
    finally:
        out = _stop(proc)
    engine = create_engine(f"sqlite:///{tmp_path / 'run.db'}")
    with engine.connect() as conn:
        first = conn.execute(text("SELECT COUNT(*) FROM items")).scalar_one()
    assert 2000 < first <= n_rows
    assert f"http://127.0.0.1:{port}/" in out
    assert "orchestrator started" in out

    # a second start finds posts and does not import again
    proc = _start(tmp_path, port)
    try:
        _wait_port(port, proc)
    finally:
        out = _stop(proc)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM items")).scalar_one() == first
    assert "loading" not in out
    engine.dispose()
