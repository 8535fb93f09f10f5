"""ORCHESTRATOR_NICE: the orchestrator lowers its CPU priority, threads included, so a busy
host serves the labellers' pages first; it never raises a priority it was started with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from smartlabel.migrate import upgrade

from test_orchestrator_lock import Orchestrate
from test_orchestrator import cli_env

ROOT = Path(__file__).resolve().parents[1]


def nice_of(pid: int, tid: int | None = None) -> int:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = open(path).read().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of stat(5); fields[0] is field 3 (state)


def lowered(start_nice: int, to: int) -> int:
    code = f"from smartlabel.orchestrator import lower_priority; print(lower_priority({to}))"
    out = subprocess.run(["nice", "-n", str(start_nice), sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_lower_priority_lowers_and_never_raises():
    base = os.getpriority(os.PRIO_PROCESS, 0)  # pytest may itself run under nice
    for increment, to in ((0, 10), (3, 12), (15, 10), (0, 0), (0, 19)):
        started = min(19, base + increment)  # `nice -n` adds to the nice value it is started with
        # lowered to `to` when that is lower priority than it started with; else left alone
        assert lowered(increment, to) == max(started, to), (base, increment, to)


def test_the_running_orchestrator_and_all_its_threads_run_at_orchestrator_nice(tmp_path):
    url = f"sqlite:///{tmp_path / 'sl.db'}"
    upgrade(url).dispose()
    env = cli_env(url, tmp_path / "models", ORCHESTRATOR_NICE="7", HEARTBEAT_SECONDS="1")
    orch = Orchestrate(env, tmp_path)
    try:
        want = max(7, os.getpriority(os.PRIO_PROCESS, 0))  # pytest may itself run under nice
        started = orch.wait_for("orchestrator started")
        assert started.endswith(f"CPU priority nice {want} (ORCHESTRATOR_NICE 7)"), started
        tids = [int(t) for t in os.listdir(f"/proc/{orch.p.pid}/task")]
        assert len(tids) >= 2, "the heartbeat thread should be running"
        assert nice_of(orch.p.pid) == want
        assert {nice_of(orch.p.pid, t) for t in tids} == {want}
        orch.p.send_signal(signal.SIGTERM)
        assert orch.p.wait(60) == 0
    finally:
        orch.kill()
