"""Serving a notebook with Voila: the labelling page and the admin dashboard alike.

`smartlabel serve` and `smartlabel dashboard` differ only in the `Page` they serve.
`prepare` finds the notebook, decides port and token, and builds Voila's command line
and the environment its kernels get; `Launch.exec` then *becomes* Voila (`os.execvpe`).
A launcher that waited on Voila in a subprocess would leave it and its kernels running
when the launcher is killed; after the exec, stopping the process stops Voila.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

from smartlabel.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder `smartlabel` is imported from
PROJECT = PACKAGE_ROOT.parent                         # a source checkout's top folder
# first on the kernels' JUPYTER_PATH: its kernels/python3 is ipykernel without the debugger
# (smartlabel.kernel), about 18 MB less per page
KERNEL_DATA = Path(__file__).resolve().parent / "interface" / "jupyter"
KERNEL_MODULES = ("ipykernel", "smartlabel.kernel")  # what a kernel's command line runs


def is_kernel_command(cmdline: list[str]) -> bool:
    """Whether a process's command line is a Voila kernel's (ours, or a plain ipykernel)."""
    line = " ".join(cmdline)
    return any(m in line for m in KERNEL_MODULES)

# Hosts that mean "every interface". Nobody can open them in a browser, so the URL shows
# the loopback address of the same family: Voila (tornado) binds "::" to IPv6 only, and
# "localhost" may resolve to ::1 first while a server on 0.0.0.0 listens on IPv4 only.
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class Page:
    """A notebook page `smartlabel` serves, and the settings it is served with."""

    title: str                        # printed before the URL
    notebook: str                     # file name: looked up in the current folder, then the project
    command: str                      # the `smartlabel` subcommand that serves it
    token_setting: str                # the setting to name when a token is missing
    exposed: str                      # what anyone reaching a server without a token can do
    port: Callable[[object], int]     # settings -> default port
    token: Callable[[object], str]    # settings -> default token


LABELLING = Page("Labelling page", "voila-interface.ipynb", "serve", "VOILA_TOKEN", "label",
                 port=lambda s: s.voila_port, token=lambda s: s.voila_token)
# The dashboard never falls back to VOILA_TOKEN: every labeller holds that one.
DASHBOARD = Page("Admin dashboard", "admin-dashboard.ipynb", "dashboard", "DASHBOARD_TOKEN",
                 "see labeller names and scores",
                 port=lambda s: s.dashboard_port, token=lambda s: s.dashboard_token)
# Secrets a kernel never needs: Voila checks the token (it gets it on its command line), and a
# labeller's kernel must not hold the admin's token or the database roles' passwords.
NOT_FOR_KERNELS = ("VOILA_TOKEN", "DASHBOARD_TOKEN", "POSTGRES_PASSWORD", "LABELLER_DB_PASSWORD",
                   "ORCHESTRATOR_DB_PASSWORD", "READER_DB_PASSWORD")


def find_notebook(page: Page, notebook: Path | None = None) -> Path:
    """`notebook` if given, else the page's notebook in the current folder, else in the project."""
    if notebook is not None:
        if not notebook.is_file():
            raise ConfigError(f"notebook {notebook} does not exist; pass the path of {page.notebook}")
        return notebook.resolve()
    for candidate in (Path.cwd() / page.notebook, PROJECT / page.notebook):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"cannot find {page.notebook} in the current folder; run `smartlabel {page.command}` "
                      "from the project folder or pass --notebook PATH")


def resolve_token(token: str | None, no_token: bool, default: str) -> str:
    """The token from --token / --no-token, else `default` (a setting)."""
    if token and no_token:
        raise ConfigError("--token and --no-token contradict each other; pass one of them")
    if no_token:
        return ""
    return default if token is None else token


def check_dashboard_token(page: Page, token: str, settings) -> None:
    """The dashboard refuses the labellers' token (ConfigError), whichever way it was given."""
    if page is DASHBOARD and token and token == settings.voila_token:
        raise ConfigError("the dashboard's token is VOILA_TOKEN, which every labeller holds: give it a token "
                          "of its own (DASHBOARD_TOKEN; `make env` writes one)")


def check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a port number (1-65535)")
    return port


def cull_interval(idle_seconds: int) -> int:
    """How often jupyter-server looks for idle kernels: at most every minute, and at least
    twice per idle timeout (so a kernel goes at most half a timeout late)."""
    return max(1, min(60, idle_seconds // 2))


# How long Voila waits for a cell's output after the kernel said the cell ran. nbclient's
# default, 4 s, is too short when many tabs start kernels at once on a small host: Voila
# logs "Timeout waiting for IOPub output", drops the rest of the output, and that page
# never shows its post (measured: 12 of 25 labellers arriving 3 s apart on 2 cores).
IOPUB_TIMEOUT_SECONDS = 120


def culling_argv(idle_seconds: int) -> list[str]:
    """jupyter-server's kernel culling, as Voila passes it on to its kernel manager.

    A kernel is shut down once it has been idle (no message from it) for `idle_seconds`
    and no browser tab is connected to it (`cull_connected=False`: an open tab keeps its
    kernel however long the labeller reads; a tab that crashed or was closed leaves no
    connection, so its kernel goes). A busy kernel is never culled. 0 turns culling off.
    """
    if idle_seconds <= 0:
        return []
    return [f"--MappingKernelManager.cull_idle_timeout={idle_seconds}",
            f"--MappingKernelManager.cull_interval={cull_interval(idle_seconds)}",
            "--MappingKernelManager.cull_connected=False", "--MappingKernelManager.cull_busy=False"]


def voila_argv(notebook: Path, host: str, port: int, token: str, kernel_idle_seconds: int = 0) -> list[str]:
    """The Voila command line (an empty token switches Voila's token check off; with
    `kernel_idle_seconds`, kernels without a tab are culled, see `culling_argv`)."""
    return [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--no-browser",
            f"--Voila.ip={host}", "--VoilaConfiguration.show_tracebacks=False", "--theme=light",
            f"--Voila.token={token}", f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_SECONDS}",
            *culling_argv(kernel_idle_seconds)]


def kernel_environment(settings, database_url: str | None = None) -> dict[str, str]:
    """The environment Voila and its kernels get: the launcher's settings, whatever their folder.

    Settings that came from `.env` or defaults are exported, so a kernel (which runs in
    the notebook's folder) sees exactly what the launcher saw; `database_url` overrides
    DATABASE_URL. From a source checkout, kernels import this same code (PYTHONPATH).
    Tokens and database passwords other than DATABASE_URL's stay out (NOT_FOR_KERNELS).
    JUPYTER_PATH starts with KERNEL_DATA, so Voila starts its python3 kernels without the
    debugger (see smartlabel.kernel).
    """
    env = {k: v for k, v in os.environ.items() if k not in NOT_FOR_KERNELS}
    if database_url:
        env["DATABASE_URL"] = database_url
    for name, value in settings.model_dump().items():
        if name.upper() not in NOT_FOR_KERNELS:
            env.setdefault(name.upper(), json.dumps(value) if isinstance(value, (list, tuple)) else str(value))
    if PACKAGE_ROOT.name == "src":
        rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != PACKAGE_ROOT]
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *rest])
    rest = [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p and Path(p).resolve() != KERNEL_DATA]
    env["JUPYTER_PATH"] = os.pathsep.join([str(KERNEL_DATA), *rest])
    return env


def page_url(host: str, port: int, token: str = "") -> str:
    """The address to open: a wildcard host shown as loopback, an IPv6 literal in brackets."""
    shown = WILDCARD_HOSTS.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    query = f"?token={urllib.parse.quote(token, safe='')}" if token else ""
    return f"http://{shown}:{port}/{query}"


@dataclass(frozen=True)
class Launch:
    """Everything decided before Voila starts."""

    page: Page
    notebook: Path
    host: str
    port: int
    token: str
    environment: dict[str, str]
    kernel_idle_seconds: int = 0

    @property
    def url(self) -> str:
        return page_url(self.host, self.port, self.token)

    @property
    def argv(self) -> list[str]:
        return voila_argv(self.notebook, self.host, self.port, self.token, self.kernel_idle_seconds)

    @property
    def warning(self) -> str:
        """What to tell the operator about an open server ('' when there is nothing to say)."""
        if self.host in WILDCARD_HOSTS and not self.token:
            return (f"the {self.page.title.lower()} listens on all interfaces without a token: anyone who can "
                    f"reach this machine can {self.page.exposed}. Set {self.page.token_setting} or pass --token.")
        return ""

    def exec(self) -> NoReturn:
        """Become Voila: this process is replaced, so stopping it stops Voila and its kernels."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvpe(self.argv[0], self.argv, self.environment)


def prepare(page: Page, settings, *, host: str, port: int | None = None, token: str | None = None,
            no_token: bool = False, notebook: Path | None = None, database_url: str | None = None) -> Launch:
    """Check the options (one clear ConfigError) and decide how Voila is started."""
    token = resolve_token(token, no_token, page.token(settings))
    check_dashboard_token(page, token, settings)
    port = check_port(page.port(settings) if port is None else port)
    return Launch(page, find_notebook(page, notebook), host, port, token,
                  kernel_environment(settings, database_url), int(settings.kernel_idle_seconds))
