"""The admin dashboard in a real browser: `smartlabel dashboard` (Voila) driven by Chromium."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import new_sqlite_database
from test_dashboard import XSS, populate

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "dash-token-456"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 90_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard")
    url = new_sqlite_database(folder)
    from smartlabel.db import make_engine

    engine = make_engine(url)
    ids, runs = populate(engine)
    port = free_port()
    log = folder / "voila.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LABELS": '["Advocacy","Others"]'}
    for key in ("VOILA_TOKEN", "DASHBOARD_TOKEN", "DATABASE_URL"):
        env.pop(key, None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartlabel", "dashboard", "--host", "127.0.0.1", "--port", str(port),
             "--token", TOKEN, "--database-url", url],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"smartlabel dashboard exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the dashboard did not listen within 60 s:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
    yield {"port": port, "engine": engine, "ids": ids, "runs": runs, "log": log}
    proc.send_signal(signal.SIGTERM)  # smartlabel dashboard exec'd into Voila: this stops it and its kernels
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_dashboard_needs_the_token(dashboard):
    base = f"http://127.0.0.1:{dashboard['port']}/"
    for bad in ("", "?token=wrong"):
        with urllib.request.urlopen(base + bad, timeout=30) as r:
            assert "/login" in r.url, f"{bad!r} reached {r.url} without the token"
            assert "dashboard_page" not in r.read().decode(errors="replace")
    # with the token the page opens: test_dashboard_page_shows_plots_and_database_numbers


def test_dashboard_page_shows_plots_and_database_numbers(dashboard, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"http://127.0.0.1:{dashboard['port']}/?token={TOKEN}", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(".sl-learning-curve img", timeout=PAGE_TIMEOUT_MS)
    for css in (".sl-learning-curve", ".sl-labels-per-class", ".sl-predicted"):
        img = page.locator(f"{css} img")
        img.wait_for(state="visible", timeout=30_000)
        width = img.evaluate("el => el.complete ? el.naturalWidth : 0")
        assert width > 200, f"{css}: the plot image did not load"
    assert "40 posts, 12 labelled (16 labels), 28 unlabelled; 6 successful model runs" in page.inner_text(".sl-dash")
    assert "predictions still change" in page.inner_text(".sl-stop")

    def labeller_rows():
        rows = page.locator("table.sl-labellers tbody tr")
        return {rows.nth(k).locator("td").nth(0).inner_text(): rows.nth(k).locator("td").nth(1).inner_text()
                for k in range(rows.count())}

    with dashboard["engine"].connect() as conn:
        expected = {w: str(n) for w, n in conn.execute(text("SELECT worker_id, labels FROM labeller_stats"))}
    assert labeller_rows() == expected == {"ann": "10", "bob": "4", XSS: "1"}  # the name is shown as text
    assert dialogs == [] and page.locator("table.sl-labellers img").count() == 0
    kappa = page.locator("table.sl-agreement tr", has_text="ann & bob").filter(has_text="Cohen's kappa")
    assert kappa.locator("td").nth(2).inner_text() == "0.000"

    # a new label, then Refresh: the page follows the database
    with dashboard["engine"].begin() as conn:
        conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, handout_reason) "
                          "VALUES (:i, 'Others', 'ann', CURRENT_TIMESTAMP, 'priority')"), {"i": dashboard["ids"][20]})
    page.click(".sl-refresh")
    page.wait_for_function(
        "() => [...document.querySelectorAll('table.sl-labellers tbody tr')]"
        ".some(tr => tr.cells[0].innerText === 'ann' && tr.cells[1].innerText === '11')", timeout=30_000)
    page.close()
