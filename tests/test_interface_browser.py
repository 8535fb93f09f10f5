"""The labelling page in a real browser: `smartlabel serve` (Voila) driven by Chromium.

One Voila server per module and backend (a server start costs seconds, a page start
costs a kernel); each test empties the database and seeds what it needs.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy.engine import make_url

from conftest import new_pg_database, new_sqlite_database
from helpers import seed_items
from voila_browser import (
    ARTIFACTS,
    PAGE_TIMEOUT_MS,
    ROOT,
    chromium,
    query,
    reset_database,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.browser

LABELS = ["Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others"]
TOKEN = "test-token-123"
XSS = "<img src=x onerror=alert(1)> Why is rent <b>so</b> high?"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voila-sqlite")
    server = start_server(new_sqlite_database(folder), folder, token=TOKEN)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def pg_server(pg_admin_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("voila-pg")
    server = start_server(new_pg_database(pg_admin_url), folder, token=TOKEN)
    yield server
    stop_server(server)


@pytest.fixture
def site(sqlite_server):
    reset_database(sqlite_server.database_url)
    return sqlite_server


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1100, "height": 820})
    yield ctx
    ctx.close()


class Tab:
    """A page plus the JavaScript dialogs it raised (there must never be any)."""

    def __init__(self, ctx, url):
        self.page = ctx.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.dialogs: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url)

    def shown(self) -> int:
        post = self.page.locator(".sl-post")
        post.wait_for()
        return int(post.get_attribute("data-item-id"))

    def wait_next(self, old: int) -> int:
        from playwright.sync_api import expect

        expect(self.page.locator(".sl-post")).not_to_have_attribute("data-item-id", str(old),
                                                                      timeout=PAGE_TIMEOUT_MS)
        return self.shown()

    def wait_for(self, item_id: int) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator(".sl-post")).to_have_attribute("data-item-id", str(item_id),
                                                                  timeout=PAGE_TIMEOUT_MS)

    def settle(self):
        # a click sooner than 0.25 s after a post appears is taken for a double click and ignored
        self.page.wait_for_timeout(350)

    def button(self, name: str):
        # an icon font glyph may precede the text (Skip, Undo, Retry, Check again)
        return self.page.locator("button").filter(has_text=re.compile(rf"^\W*{re.escape(name)}\s*$"))

    def click(self, name: str) -> None:
        self.settle()
        self.button(name).click()

    def press(self, key: str) -> None:
        self.settle()
        self.page.locator(".sl-body").hover()  # ipyannotations' keys work while the mouse is over it
        self.page.keyboard.press(key)

    def enter_name(self, name: str) -> None:
        box = self.page.get_by_placeholder("Your name")
        box.fill(name)
        box.press("Enter")


def seed_with_model(url, n=20):
    """n posts and a finished model run ranking them, as the orchestrator leaves things."""
    from smartlabel.db import make_engine
    from smartlabel.store import predictions as store_predictions, runs as store_runs

    ids = seed_items(url, n)
    engine = make_engine(url)
    try:
        run = query(url, "INSERT INTO model_runs (started_at, finished_at, status, model_kind, n_labels, "
                         "cv_accuracy) VALUES (CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'ok', 'lr', 120, 0.81) "
                         "RETURNING id")[0][0]
        store_predictions.write(engine, run, ids, [float(n - k) for k in range(n)],
                          predicted_labels=[LABELS[k % 5] for k in range(n)], confidences=[0.44] * n,
                          second_labels=[LABELS[(k + 1) % 5] for k in range(n)], second_confidences=[0.31] * n)
        store_runs.set_current(engine, run)
    finally:
        engine.dispose()
    return ids


def labels(url):
    """The live labels (an undo retracts a label: it stays in the table, counted nowhere)."""
    return query(url, "SELECT item_id, label, worker_id FROM labels WHERE retracted_at IS NULL ORDER BY id")


# --- tests ------------------------------------------------------------------------------------


def test_label_undo_keyboard_skip_and_double_click(site, context):
    ids = seed_with_model(site.database_url)
    url = site.database_url
    tab = Tab(context, site.url())
    tab.enter_name("ann")
    first = tab.shown()
    assert first == ids[0]  # the model's top priority
    page = tab.page
    assert "worker=ann" in page.url and f"token={TOKEN}" in page.url
    assert page.locator(".sl-worker").inner_text() == "ann"
    assert "the model is torn between" in page.locator(".sl-why").inner_text()
    assert "CV accuracy 81%" in page.locator(".sl-model").inner_text()
    assert "0 of 20 posts labelled" in page.locator(".sl-status").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "labelling-page.png"))

    tab.click("Advocacy")
    second = tab.wait_next(first)
    assert labels(url) == [(first, "Advocacy", "ann")]
    assert "1 of 20 posts labelled" in page.locator(".sl-status").inner_text()

    tab.click("Undo")
    tab.wait_for(first)
    assert labels(url) == []
    assert query(url, "SELECT item_id, label, retracted_by FROM labels") == [(first, "Advocacy", "ann")]

    tab.press("2")
    assert tab.wait_next(first) == second
    assert labels(url) == [(first, LABELS[1], "ann")]

    tab.click("Skip")
    third = tab.wait_next(second)
    assert query(url, "SELECT item_id, worker_id FROM skips") == [(second, "ann")]
    tab.press("s")
    fourth = tab.wait_next(third)
    assert sorted(query(url, "SELECT item_id FROM skips")) == sorted([(second,), (third,)])

    # a double click labels the post on screen once, never the one after it
    tab.settle()
    tab.button("Others").dblclick()
    fifth = tab.wait_next(fourth)
    page.wait_for_timeout(600)
    assert tab.shown() == fifth
    assert labels(url) == [(first, LABELS[1], "ann"), (fourth, "Others", "ann")]
    assert tab.dialogs == []
    assert "Traceback" not in page.content()


def test_two_labellers_see_different_posts(site, browser):
    seed_items(site.database_url, 20)
    contexts = [browser.new_context(), browser.new_context()]
    try:
        ann, bob = Tab(contexts[0], site.url("ann")), Tab(contexts[1], site.url("bob"))
        a, b = ann.shown(), bob.shown()
        assert a != b
        assert sorted(query(site.database_url, "SELECT item_id, worker_id FROM leases")) == sorted(
            [(a, "ann"), (b, "bob")])
        ann.click("Advocacy")
        bob.click("Others")
        a2, b2 = ann.wait_next(a), bob.wait_next(b)
        assert len({a, b, a2, b2}) == 4
        assert sorted(labels(site.database_url)) == sorted([(a, "Advocacy", "ann"), (b, "Others", "bob")])
    finally:
        for c in contexts:
            c.close()


def test_reload_keeps_the_name_and_the_post(site, context):
    seed_items(site.database_url, 5)
    tab = Tab(context, site.url())
    tab.enter_name("Zoë  Ng")
    first = tab.shown()
    assert "worker=Zo%C3%AB+Ng" in tab.page.url or "worker=Zo%C3%AB%20Ng" in tab.page.url
    tab.page.reload()
    assert tab.shown() == first  # the post this labeller held comes back
    assert tab.page.locator(".sl-worker").inner_text() == "Zoë Ng"
    assert tab.page.get_by_placeholder("Your name").count() == 0
    assert "reloaded" in tab.page.locator(".sl-why").inner_text()
    tab.click("Personal Stories")
    tab.wait_next(first)
    assert labels(site.database_url) == [(first, "Personal Stories", "Zoë Ng")]


def test_html_in_a_post_is_text_then_all_done(site, context):
    from smartlabel.db import make_engine

    url = site.database_url
    (post,) = seed_items(url, 1)
    body = "Line one.\nLine two.\n\n" + "A long paragraph about housing. " * 150 + "<script>alert(2)</script>"
    query(url, "UPDATE items SET title = :t, selftext = :b", {"t": XSS, "b": body})
    tab = Tab(context, site.url("<b>eve</b>"))
    assert tab.shown() == post
    page = tab.page
    assert page.locator(".sl-title").inner_text() == XSS
    assert page.locator(".sl-post img, .sl-post script, .sl-title *, .sl-body *, .sl-worker *").count() == 0
    assert page.locator(".sl-worker").inner_text() == "<b>eve</b>"
    assert page.locator(".sl-body").inner_text().startswith("Line one.\nLine two.\n\nA long paragraph")
    scroll = page.locator(".sl-body").evaluate("e => [e.scrollHeight, e.clientHeight]")
    assert scroll[0] > scroll[1] + 100  # a long body scrolls inside its box

    tab.click("Others")
    done = page.get_by_text("All done, <b>eve</b>!")
    done.wait_for()
    assert labels(url) == [(post, "Others", "<b>eve</b>")]
    tab.button("Check again").click()
    page.wait_for_timeout(500)
    assert done.is_visible()
    (late,) = seed_items(make_engine(url), 1, prefix="late")
    tab.button("Check again").click()
    assert tab.shown() == late
    assert page.locator(".sl-title").inner_text() == "late 0 title"
    assert tab.dialogs == []


def test_page_needs_the_token_and_kernel_has_no_training_stack(site, context):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for bad in ("", "?token=wrong", "?worker=kim"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(f"http://127.0.0.1:{site.port}/{bad}", timeout=30)
        assert err.value.code in (302, 401, 403)
        if err.value.code == 302:
            assert "/login" in err.value.headers["Location"]
    seed_items(site.database_url, 3)
    tab = Tab(context, site.url("kim"))
    tab.shown()
    kernels = site.kernel_processes()
    assert kernels, "no kernel found under the Voila process"
    mapped = {m.path for k in kernels for m in k.memory_maps()}
    heavy = sorted({name for path in mapped for name in ("tensorflow", "sklearn", "scipy", "pandas", "torch")
                    if f"/site-packages/{name}/" in path})
    assert heavy == []
    rss = max(k.memory_info().rss for k in kernels) / 2**20
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "labelling-kernel-memory.json").write_text(json.dumps({"kernel_rss_mb": round(rss, 1)}))


def test_bench_smoke(site, browser, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_page", ROOT / "bench" / "bench_page.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seed_items(site.database_url, 6)
    out = tmp_path / "page.json"
    result = bench.measure(browser, site.url(), site.proc.pid, clicks=3, worker="bench-smoke")
    bench.write_result(result, out)
    got = json.loads(out.read_text())
    assert got["clicks"] == 3 and len(got["latency_ms"]["samples"]) == 3
    assert 0 < got["latency_ms"]["p50"] <= got["latency_ms"]["p95"]
    assert got["kernel_rss_mb"]["after_clicks"] > 10
    assert len(labels(site.database_url)) == 3


def test_postgres_label_then_database_outage_and_retry(pg_server, context, pg_admin_url):
    from sqlalchemy import create_engine, text

    url = pg_server.database_url
    reset_database(url)
    seed_items(url, 6)
    tab = Tab(context, pg_server.url("pia"))
    first = tab.shown()
    tab.click("Advocacy")
    second = tab.wait_next(first)
    assert labels(url) == [(first, "Advocacy", "pia")]

    name = make_url(url).database
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # the database goes away under the open page
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name})
        tab.click("Others")
        tab.page.get_by_text("The database cannot be reached right now.").wait_for()
        content = tab.page.content()
        assert "Traceback" not in content and "Every label you submitted before this is saved." in content
        assert tab.button("Retry").is_visible()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    tab.button("Retry").click()
    tab.wait_next(second)
    assert labels(url) == [(first, "Advocacy", "pia"), (second, "Others", "pia")]


def test_serve_execs_into_voila_and_its_kernels_stop_with_it(tmp_path):
    import psutil

    url = new_sqlite_database(tmp_path)
    seed_items(url, 2)
    server = start_server(url, tmp_path)
    try:
        proc = psutil.Process(server.proc.pid)
        assert "voila" in " ".join(proc.cmdline())  # the launcher became Voila
        html = urllib.request.urlopen(server.url("lee"), timeout=120).read().decode()
        assert "voila" in html.lower()
        kernels = server.kernel_processes()
        assert kernels
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE
                                                  for k in kernels):
            time.sleep(0.2)
        assert not [k.pid for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
        out = server.output()
        assert f"Labelling page: http://127.0.0.1:{server.port}/" in out
    finally:
        stop_server(server)
