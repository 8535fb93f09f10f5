"""The HTTPS proxy: the project's Caddyfile run by the real caddy binary (Debian's), in front of
a real Voila (`smartlabel serve`), driven by Chromium through it.

Everything stays on loopback: the test sets the Caddyfile's ports, bind address and
upstream through its environment variables, and DOMAIN as docker compose passes it when
.env leaves it empty (`localhost`: no ACME, no network, Caddy's own CA signs it), and the browser is told to accept
that certificate, as a labeller clicks through the warning once. The labelling page's
WebSockets (the kernel's channel) go through the proxy: a label submitted in the page
reaching the database proves it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import new_pg_database
from helpers import seed_items
from voila_browser import (
    PAGE_TIMEOUT_MS, ROOT, chromium, free_port, query, start_server, stop_process, stop_server, wait_for_port,
)

pytestmark = pytest.mark.browser

CADDYFILE = ROOT / "Caddyfile"
TOKEN = "proxy-test-token"
NOT_VALID = "This link is not valid: ask your admin for your personal link"


def caddy_binary() -> str:
    found = shutil.which("caddy")
    if not found:
        pytest.fail("the proxy tests need Caddy: `apt-get install -y caddy` (`make test` installs it)")
    return found


def caddy(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([caddy_binary(), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def adapted(**env) -> dict:
    """The Caddyfile as Caddy's JSON config (what it would run), with these variables set."""
    result = caddy("adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile",
                   env={"DOMAIN": "localhost", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- the config -------------------------------------------------------------------------------


def test_the_caddyfile_is_valid_for_this_caddy():
    result = caddy("validate", "--config", str(CADDYFILE), "--adapter", "caddyfile", env={"DOMAIN": "localhost"})
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr
    formatted = caddy("fmt", str(CADDYFILE))
    assert formatted.stdout == CADDYFILE.read_text(encoding="utf-8"), "run `caddy fmt --overwrite Caddyfile`"


def test_the_caddyfile_routes_the_page_and_the_dashboard():
    """Defaults as docker compose runs it: the page from voila:8866 on 443 (any name), the
    dashboard from dashboard:8867 on 8867; no admin endpoint; DOMAIN gets a public certificate,
    every other name Caddy's own CA (on demand)."""
    config = adapted()
    assert config["admin"] == {"disabled": True}
    servers = config["apps"]["http"]["servers"].values()
    dial = {s["listen"][0]: [h["upstreams"][0]["dial"] for r in s["routes"] for h in _handlers(r)
                             if h.get("handler") == "reverse_proxy"] for s in servers}
    assert set(dial["0.0.0.0:443"]) == {"voila:8866"}
    assert dial["0.0.0.0:8867"] == ["dashboard:8867"]
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert policies == [{"issuers": [{"module": "internal"}], "on_demand": True}]

    with_domain = adapted(DOMAIN="label.example.org")
    policies = with_domain["apps"]["tls"]["automation"]["policies"]
    assert policies[0] == {"subjects": ["label.example.org"]}  # Caddy's default issuers: ACME
    assert policies[1]["issuers"] == [{"module": "internal"}]
    hosts = [m["host"] for s in with_domain["apps"]["http"]["servers"].values() for r in s["routes"]
             for m in r.get("match", []) if "host" in m]
    assert ["label.example.org"] in hosts


def _handlers(route: dict):
    for handler in route.get("handle", []):
        yield handler
        for sub in handler.get("routes", []):
            yield from _handlers(sub)


# --- a real Voila behind the real Caddy, in Chromium ---------------------------------------------


@pytest.fixture(scope="module")
def site(pg_admin_url, tmp_path_factory):
    """Voila (LABELLER_KEYS=required, PostgreSQL) on a loopback port, Caddy in front of it."""
    folder = tmp_path_factory.mktemp("proxy")
    url = new_pg_database(pg_admin_url)
    voila = start_server(url, folder, token=TOKEN, env={"LABELLER_KEYS": "required"})
    ports = {"PROXY_HTTP_PORT": free_port(), "PROXY_HTTPS_PORT": free_port(), "PROXY_DASHBOARD_PORT": free_port()}
    env = {**{k: str(v) for k, v in ports.items()}, "PROXY_BIND": "127.0.0.1", "DOMAIN": "localhost",
           "VOILA_UPSTREAM": f"127.0.0.1:{voila.port}", "DASHBOARD_UPSTREAM": f"127.0.0.1:{free_port()}",
           "HOME": str(folder), "XDG_DATA_HOME": str(folder / "data"), "XDG_CONFIG_HOME": str(folder / "config")}
    log = open(folder / "caddy.log", "wb")
    proc = subprocess.Popen([caddy_binary(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(ports["PROXY_HTTPS_PORT"], proc, "caddy",
                      lambda: (folder / "caddy.log").read_text(errors="replace"))
        yield {"url": url, "voila": voila, "https": ports["PROXY_HTTPS_PORT"], "http": ports["PROXY_HTTP_PORT"]}
    finally:
        stop_process(proc)
        log.close()
        stop_server(voila)


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser):
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 820})
    yield ctx
    ctx.close()


def _reset(url: str) -> None:
    from voila_browser import reset_database

    reset_database(url)
    query(url, "DELETE FROM labellers")


def _add(url: str, name: str) -> str:
    from smartlabel import labellers
    from smartlabel.db import make_engine

    engine = make_engine(url)
    try:
        return labellers.add(engine, name).key
    finally:
        engine.dispose()


def _snapshot(url: str) -> dict:
    tables = ("items", "labels", "leases", "handouts", "skips", "labellers")
    return {t: sorted(map(repr, query(url, f"SELECT * FROM {t}"))) for t in tables}


def _page(context, address: str):
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(address)
    return page


def _label(page, name: str) -> None:
    page.wait_for_timeout(350)  # a click sooner than 0.25 s after a post appears is ignored
    page.locator("button").filter(has_text=name).first.click()


def test_a_personal_link_labels_through_the_proxy(site, context):
    """HTTPS page, the kernel's WebSocket through Caddy, a label in the database; plain HTTP
    is only a redirect to HTTPS."""
    from playwright.sync_api import expect

    _reset(site["url"])
    (first, second) = seed_items(site["url"], 2)
    key = _add(site["url"], "Ann Lee")
    page = _page(context, f"https://localhost:{site['https']}/?token={TOKEN}&key={key}")
    assert page.locator(".sl-worker").inner_text() == "Ann Lee"
    assert page.get_by_placeholder("Your name").count() == 0
    shown = int(page.locator(".sl-post").get_attribute("data-item-id"))
    _label(page, "Advocacy")
    expect(page.locator(".sl-post")).not_to_have_attribute("data-item-id", str(shown), timeout=PAGE_TIMEOUT_MS)
    assert query(site["url"], "SELECT item_id, label, worker_id FROM labels") == [(shown, "Advocacy", "Ann Lee")]
    assert {shown, int(page.locator(".sl-post").get_attribute("data-item-id"))} == {first, second}

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.build_opener(NoRedirect).open(f"http://localhost:{site['http']}/?token=x", timeout=30)
    assert err.value.code == 308 and err.value.headers["Location"].startswith("https://localhost")


@pytest.mark.parametrize("key", ["", "not-a-key", "A" * 43])
def test_a_bad_link_gets_the_invalid_page_and_writes_nothing(site, context, key):
    _reset(site["url"])
    seed_items(site["url"], 2)
    _add(site["url"], "Ann")
    before = _snapshot(site["url"])
    page = _page(context, f"https://localhost:{site['https']}/?token={TOKEN}&worker=ann&key={key}")
    page.get_by_text(NOT_VALID).wait_for()
    assert page.locator(".sl-post").count() == 0 and page.locator(".sl-worker").count() == 0
    assert _snapshot(site["url"]) == before


def test_a_rotated_link_stops_the_open_page_at_its_next_click(site, context):
    from typer.testing import CliRunner

    from smartlabel.cli import app

    _reset(site["url"])
    seed_items(site["url"], 3)
    key = _add(site["url"], "Ann")
    page = _page(context, f"https://localhost:{site['https']}/?token={TOKEN}&key={key}")
    page.locator(".sl-post").wait_for()
    result = CliRunner().invoke(app, ["labellers", "rotate", "Ann"], env={"DATABASE_URL": site["url"]})
    assert result.exit_code == 0, result.output
    before = _snapshot(site["url"])
    _label(page, "Others")
    page.get_by_text(NOT_VALID).wait_for()
    assert _snapshot(site["url"]) == before, "the refused click saved nothing"
    page.reload()
    page.get_by_text(NOT_VALID).wait_for()
