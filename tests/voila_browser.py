"""Browser-test plumbing: a real `smartlabel serve` (Voila) subprocess and Debian's Chromium.

The server is started exactly as an operator starts it (`python -m smartlabel serve`),
which execs into Voila: the process we start IS Voila, and stopping it stops its kernels.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 90_000  # a page start runs a kernel: seconds, more on a busy machine


def chromium_path() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("browser tests need Chromium: `apt-get install -y chromium` (or set CHROMIUM=path), "
                "or deselect them with -m 'not browser'")


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


@contextmanager
def chromium():
    """Debian's Chromium through Playwright, closed afterwards (for a module-scoped fixture)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            yield browser
        finally:
            browser.close()


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, as `docker compose stop` sends it; SIGKILL if it is still there after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    token: str
    database_url: str
    log: Path
    kernels_seen: set = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def url(self, worker: str | None = None) -> str:
        if worker is None:
            return self.base
        from urllib.parse import quote

        return self.base + ("&" if self.token else "?") + "worker=" + quote(worker)

    def kernel_processes(self):
        import psutil

        from smartlabel.serve import is_kernel_command

        def is_kernel(p) -> bool:
            try:
                return is_kernel_command(p.cmdline())
            except psutil.Error:  # exited (or a zombie not yet reaped) since it was listed: gone
                return False

        found = [p for p in psutil.Process(self.proc.pid).children(recursive=True) if is_kernel(p)]
        self.kernels_seen.update(p.pid for p in found)
        return found

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_server(database_url: str, log_dir: Path, *, token: str = "", env: dict | None = None,
                 wait: float = 60.0) -> Server:
    """`python -m smartlabel serve` on a free port; returns once the port answers."""
    port = free_port()
    log = log_dir / f"voila-{port}.log"
    environ = {**os.environ, "DATABASE_URL": database_url, "SHUFFLE_PROP": "0", "AUDIT_SHARE": "0", "REVIEW_SHARE": "0",
               "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    environ.pop("VOILA_TOKEN", None)
    args = [sys.executable, "-m", "smartlabel", "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--token", token] if token else ["--no-token"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, port, token, database_url, log)
    try:
        wait_for_port(port, proc, "smartlabel serve", server.output, wait)
    except RuntimeError:
        stop_server(server)
        raise
    return server


def wait_for_port(port: int, proc: subprocess.Popen, what: str, output, wait: float = 60.0) -> None:
    """Return once 127.0.0.1:port answers; RuntimeError (with `output()`) if `proc` exits or time runs out."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{output()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within {wait} s:\n{output()}")


def stop_server(server: Server, timeout: float = 30.0) -> None:
    if server.proc.poll() is None:
        try:
            server.kernel_processes()
        except Exception:
            pass
        stop_process(server.proc, timeout)


def reset_database(url: str) -> None:
    """Empty every table a test touches (the server and its schema stay)."""
    from smartlabel.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table in ("predictions", "labels", "skips", "leases", "handouts"):
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("UPDATE queue_state SET current_run_id = NULL"))
            conn.execute(text("DELETE FROM model_runs"))
            conn.execute(text("DELETE FROM items"))
    finally:
        engine.dispose()


def query(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    from smartlabel.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            res = conn.execute(text(sql), params or {})
            return [tuple(r) for r in res] if res.returns_rows else []
    finally:
        engine.dispose()
