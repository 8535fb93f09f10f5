"""smartlabel.serve: finding the notebook, Voila's command line, the kernels' environment, the URL.

The same code serves the labelling page and the admin dashboard; the commands themselves
are driven in tests/test_cli_serve.py and the browser tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tornado.netutil

from smartlabel import serve
from smartlabel.errors import ConfigError
from smartlabel.serve import DASHBOARD, LABELLING, Page
from smartlabel.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


# --- notebook ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", [LABELLING, DASHBOARD], ids=lambda p: p.command)
def test_notebook_from_the_current_folder_else_the_project(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert serve.find_notebook(page) == (ROOT / page.notebook).resolve()
    (tmp_path / page.notebook).write_text("{}")
    assert serve.find_notebook(page) == (tmp_path / page.notebook).resolve()
    other = tmp_path / "sub" / "mine.ipynb"
    other.parent.mkdir()
    other.write_text("{}")
    assert serve.find_notebook(page, Path("sub/mine.ipynb")) == other.resolve()


def test_a_missing_notebook_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"notebook /nope/x.ipynb does not exist; pass the path of "
                                          r"admin-dashboard.ipynb"):
        serve.find_notebook(DASHBOARD, Path("/nope/x.ipynb"))
    nowhere = Page("Test page", "no-such-page.ipynb", "serve", "VOILA_TOKEN", "label",
                   port=LABELLING.port, token=LABELLING.token)
    with pytest.raises(ConfigError) as err:
        serve.find_notebook(nowhere)
    assert str(err.value) == ("cannot find no-such-page.ipynb in the current folder; run `smartlabel serve` "
                              "from the project folder or pass --notebook PATH")


# --- options -------------------------------------------------------------------------------


def test_token_and_port_resolution():
    assert serve.resolve_token(None, False, "from-settings") == "from-settings"
    assert serve.resolve_token("given", False, "from-settings") == "given"
    assert serve.resolve_token("", False, "from-settings") == ""  # --token "" switches it off too
    assert serve.resolve_token(None, True, "from-settings") == ""
    with pytest.raises(ConfigError, match="--token and --no-token contradict each other"):
        serve.resolve_token("x", True, "")
    assert serve.check_port(1) == 1 and serve.check_port(65535) == 65535
    for bad in (0, -1, 65536):
        with pytest.raises(ConfigError, match=f"--port {bad} is not a port number"):
            serve.check_port(bad)


def test_prepare_takes_each_pages_defaults_from_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(voila_token="lab", dashboard_token="", voila_port=9001, dashboard_port=9002)
    page = serve.prepare(LABELLING, settings, host="127.0.0.1")
    dash = serve.prepare(DASHBOARD, settings, host="0.0.0.0", token="own")
    assert (page.port, page.token, page.notebook.name) == (9001, "lab", "voila-interface.ipynb")
    assert (dash.port, dash.token, dash.notebook.name) == (9002, "own", "admin-dashboard.ipynb")
    assert serve.prepare(DASHBOARD, settings, host="127.0.0.1").token == ""  # never VOILA_TOKEN
    with_own = load_settings(voila_token="lab", dashboard_token="admin")
    assert serve.prepare(DASHBOARD, with_own, host="::").token == "admin"
    with pytest.raises(ConfigError, match="the dashboard's token is VOILA_TOKEN"):
        serve.prepare(DASHBOARD, settings, host="::", token="lab")  # not even given by hand
    with pytest.raises(ConfigError, match="DASHBOARD_TOKEN is the same as VOILA_TOKEN"):
        load_settings(voila_token="same", dashboard_token="same")
    assert page.url == "http://127.0.0.1:9001/?token=lab"
    assert page.argv == serve.voila_argv(page.notebook, "127.0.0.1", 9001, "lab", 600)  # KERNEL_IDLE_SECONDS
    with pytest.raises(ConfigError, match="--port 0"):
        serve.prepare(LABELLING, settings, host="127.0.0.1", port=0)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_an_open_server_without_a_token_is_warned_about(host, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(voila_token="", dashboard_token="")
    page = serve.prepare(LABELLING, settings, host=host)
    assert page.warning == ("the labelling page listens on all interfaces without a token: anyone who can reach "
                            "this machine can label. Set VOILA_TOKEN or pass --token.")
    assert "DASHBOARD_TOKEN" in serve.prepare(DASHBOARD, settings, host=host).warning
    assert serve.prepare(LABELLING, settings, host=host, token="t").warning == ""
    assert serve.prepare(LABELLING, settings, host="127.0.0.1").warning == ""


def test_voila_command_line():
    argv = serve.voila_argv(Path("/app/voila-interface.ipynb"), "0.0.0.0", 8866, "tok")
    assert argv[:4] == [sys.executable, "-m", "voila", "/app/voila-interface.ipynb"]
    assert set(argv[4:]) == {"--port=8866", "--no-browser", "--Voila.ip=0.0.0.0", "--Voila.token=tok",
                             "--VoilaConfiguration.show_tracebacks=False", "--theme=light",
                             "--VoilaExecutor.iopub_timeout=120"}
    # an empty token is passed on: Voila would otherwise make one up
    assert "--Voila.token=" in serve.voila_argv(Path("x.ipynb"), "127.0.0.1", 1, "")


@pytest.mark.parametrize("idle, interval", [(600, 60), (5, 2), (1, 1), (90, 45), (3600, 60)])
def test_kernel_culling_options(idle, interval, tmp_path, monkeypatch):
    """KERNEL_IDLE_SECONDS reaches jupyter-server's culler (the option names Voila 0.5 passes on
    to its MappingKernelManager): checked at most every minute and within the timeout; a kernel
    with a connected tab, or busy, is never culled."""
    argv = serve.voila_argv(Path("x.ipynb"), "127.0.0.1", 1, "t", idle)
    assert argv[-4:] == [f"--MappingKernelManager.cull_idle_timeout={idle}",
                         f"--MappingKernelManager.cull_interval={interval}",
                         "--MappingKernelManager.cull_connected=False", "--MappingKernelManager.cull_busy=False"]
    assert interval <= min(60, idle)
    assert not [a for a in serve.voila_argv(Path("x.ipynb"), "127.0.0.1", 1, "t", 0) if "cull" in a]
    monkeypatch.chdir(tmp_path)
    launch = serve.prepare(LABELLING, load_settings(kernel_idle_seconds=idle), host="127.0.0.1")
    assert f"--MappingKernelManager.cull_idle_timeout={idle}" in launch.argv


# --- the kernels' environment ----------------------------------------------------------------


def test_kernels_get_the_launchers_settings(tmp_path, monkeypatch):
    """Settings from .env (read in the launcher's folder) reach kernels running elsewhere."""
    monkeypatch.chdir(tmp_path)
    for name in ("LABELS", "OVERLAP", "DATABASE_URL", "DASHBOARD_PORT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text('LABELS=["Spam","Ham"]\nOVERLAP=2\nDATABASE_URL=sqlite:///from-env-file.db\n')
    monkeypatch.setenv("LEASE_SECONDS", "77")
    settings = load_settings()
    env = serve.kernel_environment(settings)
    assert json.loads(env["LABELS"]) == ["Spam", "Ham"] and env["OVERLAP"] == "2"
    assert env["LEASE_SECONDS"] == "77" and env["DASHBOARD_PORT"] == "8867"  # a default, exported too
    assert env["DATABASE_URL"] == "sqlite:///from-env-file.db"
    assert serve.kernel_environment(settings, "sqlite:///x.db")["DATABASE_URL"] == "sqlite:///x.db"
    # tokens and role passwords stay with the launcher (Voila gets its token on the command line)
    monkeypatch.setenv("READER_DB_PASSWORD", "r" * 20)
    secret = serve.kernel_environment(load_settings(voila_token="v-tok", dashboard_token="d-tok"))
    assert not {"VOILA_TOKEN", "DASHBOARD_TOKEN", "READER_DB_PASSWORD"} & set(secret)
    # and a kernel reading that environment (from another folder) sees the same settings
    out = subprocess.run(
        [sys.executable, "-c", "from smartlabel.settings import load_settings as l; s = l(); "
                               "print(s.labels, s.overlap, s.lease_seconds, s.database_url)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['Spam', 'Ham'] 2 77 sqlite:///from-env-file.db", out.stderr


def test_kernels_import_this_source_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT / "src"), ""]))
    env = serve.kernel_environment(load_settings())
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT / "src"), str(tmp_path)]  # first, once
    out = subprocess.run([sys.executable, "-c", "import smartlabel; print(smartlabel.__file__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert Path(out.stdout.strip()) == ROOT / "src" / "smartlabel" / "__init__.py", out.stderr


# --- the URL ----------------------------------------------------------------------------------


def test_page_url_rules():
    assert serve.page_url("0.0.0.0", 8866, "tok") == "http://127.0.0.1:8866/?token=tok"
    assert serve.page_url("", 8866, "") == "http://127.0.0.1:8866/"
    assert serve.page_url("::", 8867, "") == "http://[::1]:8867/"
    assert serve.page_url("127.0.0.1", 9000, "") == "http://127.0.0.1:9000/"
    assert serve.page_url("::1", 9000, "") == "http://[::1]:9000/"
    assert serve.page_url("fe80::1", 9000, "") == "http://[fe80::1]:9000/"
    assert serve.page_url("[::1]", 9000, "") == "http://[::1]:9000/"
    assert serve.page_url("labels.example.org", 80, "a b&c") == "http://labels.example.org:80/?token=a%20b%26c"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::"])
def test_the_url_shown_for_a_wildcard_host_reaches_the_server(host):
    """Bound the way Voila's server (tornado) binds `--Voila.ip=HOST`, the shown address answers."""
    if ":" in host and not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    sockets = tornado.netutil.bind_sockets(0, address=host)
    try:
        port = sockets[0].getsockname()[1]
        for s in sockets:
            s.listen()
        shown = serve.page_url(host, port).split("//")[1].rsplit(":", 1)[0].strip("[]")
        socket.create_connection((shown, port), timeout=5).close()
    finally:
        for s in sockets:
            s.close()
