"""`smartlabel serve` and `smartlabel dashboard`: their checks and what they print.

What they share (notebook lookup, Voila's command line, the kernels' environment, the
URL) is tested in tests/test_serve.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smartlabel import cli

from voila_browser import free_port

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(command, *args, env=None):
    return runner.invoke(cli.app, [command, *args], env={"VOILA_TOKEN": "", "DASHBOARD_TOKEN": "", **(env or {})})


@pytest.mark.parametrize("command", ["serve", "dashboard"])
def test_help_names_every_option(command):
    res = invoke(command, "--help")
    assert res.exit_code == 0
    for option in ("--host", "--port", "--token", "--no-token", "--notebook", "--database-url"):
        assert option in res.output


@pytest.mark.parametrize("command", ["serve", "dashboard"])
@pytest.mark.parametrize("args, message", [
    (["--token", "abc", "--no-token"], "--token and --no-token contradict each other"),
    (["--port", "0"], "--port 0 is not a port number"),
    (["--port", "70000"], "is not a port number"),
    (["--notebook", "/nonexistent/page.ipynb"], "does not exist"),
])
def test_bad_options_are_refused_in_one_line(command, args, message, sqlite_url):
    res = invoke(command, *args, "--database-url", sqlite_url)
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output


def run_until_listening(args, cwd, env) -> tuple[str, str]:
    """Start `smartlabel ARGS` (which becomes Voila), wait for its port, stop it; (stdout, stderr)."""
    port = int(args[args.index("--port") + 1])
    proc = subprocess.Popen([sys.executable, "-m", "smartlabel", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    return out, err


def test_serve_warns_when_the_database_is_down_and_still_starts(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VOILA_TOKEN": "from-env"}
    out, err = run_until_listening(
        ["serve", "--port", str(port), "--database-url", "postgresql+psycopg2://x:y@127.0.0.1:9/none?connect_timeout=2"],
        tmp_path, env)
    assert f"Labelling page: http://127.0.0.1:{port}/?token=from-env" in out
    assert f"Each labeller can bookmark http://127.0.0.1:{port}/?token=from-env&worker=THEIR_NAME" in out
    assert "warning: cannot reach the database at postgresql+psycopg2://x:***@127.0.0.1:9/none" in err
    assert "offer a retry" in err and "y@" not in out + err


def test_dashboard_on_all_interfaces_without_a_token_warns_and_prints_an_address_to_open(tmp_path, sqlite_url):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VOILA_TOKEN": "", "DASHBOARD_TOKEN": ""}
    out, err = run_until_listening(["dashboard", "--host", "0.0.0.0", "--port", str(port),
                                    "--database-url", sqlite_url], tmp_path, env)
    assert f"Admin dashboard: http://127.0.0.1:{port}/  (Ctrl+C stops it)" in out
    assert "warning: the admin dashboard listens on all interfaces without a token" in err
    assert "Set DASHBOARD_TOKEN or pass --token." in err
