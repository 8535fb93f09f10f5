"""`smartlabel serve`: its checks, the Voila command line, the environment kernels get."""

from __future__ import annotations

import json
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
from smartlabel.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(cli.app, ["serve", *args], env={"VOILA_TOKEN": "", **(env or {})})


def test_serve_help_names_every_option():
    res = invoke("--help")
    assert res.exit_code == 0
    for option in ("--host", "--port", "--token", "--no-token", "--notebook", "--database-url"):
        assert option in res.output


@pytest.mark.parametrize("args, message", [
    (["--token", "abc", "--no-token"], "--token and --no-token contradict each other"),
    (["--port", "0"], "--port 0 is not a port number"),
    (["--port", "70000"], "is not a port number"),
    (["--notebook", "/nonexistent/page.ipynb"], "does not exist"),
])
def test_serve_refuses_bad_options_in_one_line(args, message, sqlite_url):
    res = invoke(*args, "--database-url", sqlite_url)
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output


def test_notebook_found_in_the_project_when_not_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli._find_notebook(None) == (ROOT / "voila-interface.ipynb").resolve()
    (tmp_path / "voila-interface.ipynb").write_text("{}")
    assert cli._find_notebook(None) == (tmp_path / "voila-interface.ipynb").resolve()


def test_voila_command_line_and_url():
    argv = cli.voila_argv(Path("/app/voila-interface.ipynb"), "0.0.0.0", 8866, "tok")
    assert argv[:4] == [sys.executable, "-m", "voila", "/app/voila-interface.ipynb"]
    assert {"--port=8866", "--no-browser", "--Voila.ip=0.0.0.0", "--Voila.token=tok",
            "--VoilaConfiguration.show_tracebacks=False"} <= set(argv)
    assert "--Voila.token=" in cli.voila_argv(Path("x.ipynb"), "127.0.0.1", 1, "")
    assert cli.page_url("0.0.0.0", 8866, "tok") == "http://localhost:8866/?token=tok"
    assert cli.page_url("127.0.0.1", 9000, "") == "http://127.0.0.1:9000/"
    assert cli.page_url("::1", 9000, "") == "http://[::1]:9000/"


def test_kernels_get_the_launchers_settings(tmp_path, monkeypatch):
    """Settings from .env (read in the launcher's folder) reach kernels running elsewhere."""
    monkeypatch.chdir(tmp_path)
    for name in ("LABELS", "OVERLAP", "DATABASE_URL", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text('LABELS=["Spam","Ham"]\nOVERLAP=2\n')
    monkeypatch.setenv("LEASE_SECONDS", "77")
    env = cli._kernel_environment(load_settings(), "sqlite:///x.db")
    assert json.loads(env["LABELS"]) == ["Spam", "Ham"] and env["OVERLAP"] == "2"
    assert env["LEASE_SECONDS"] == "77" and env["DATABASE_URL"] == "sqlite:///x.db"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT / "src")
    # and a kernel reading that environment (from another folder) sees the same settings
    out = subprocess.run(
        [sys.executable, "-c", "from smartlabel.settings import load_settings as l; s = l(); "
                               "print(s.labels, s.overlap, s.lease_seconds)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['Spam', 'Ham'] 2 77", out.stderr


def test_serve_warns_when_the_database_is_down_and_still_starts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VOILA_TOKEN": "from-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartlabel", "serve", "--port", str(port),
         "--database-url", "postgresql+psycopg2://x:y@127.0.0.1:9/none?connect_timeout=2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    assert f"Labelling page: http://127.0.0.1:{port}/?token=from-env" in out
    assert "warning: cannot reach the database" in err and "offer a retry" in err
