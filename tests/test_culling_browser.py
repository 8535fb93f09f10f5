"""Kernel culling (issue 14) with the real `smartlabel serve` (Voila) and Chromium: a kernel
whose tab is gone is shut down after KERNEL_IDLE_SECONDS, an open tab's kernel stays however
idle, and a labeller who comes back gets a working page with the post they still hold.

Tabs are closed without running `beforeunload` (Playwright's default): that is a crashed tab,
a killed browser or a laptop lid, where Voila's own "shut my kernel down" beacon never
leaves the browser. Only the culler can reclaim those kernels.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from conftest import new_sqlite_database
from helpers import seed_items
from test_interface_browser import TOKEN, Tab, labels
from voila_browser import chromium, start_server, stop_server

pytestmark = pytest.mark.browser

IDLE = 5  # KERNEL_IDLE_SECONDS for this server: culled 5-8 s after its tab is gone (checked every 2 s)


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voila-cull")
    srv = start_server(new_sqlite_database(folder), folder, token=TOKEN, env={"KERNEL_IDLE_SECONDS": str(IDLE)})
    yield srv
    stop_server(srv)


def kernel_ids(server) -> set[str]:
    """The ids of the kernels running under the Voila process (from their connection files)."""
    found = set()
    for proc in server.kernel_processes():
        m = re.search(r"kernel-([0-9a-f-]{36})\.json", " ".join(proc.cmdline()))
        if m:
            found.add(m.group(1))
    return found


def kernel_model(server, kernel_id: str) -> dict | None:
    """Voila's /api/kernels/<id> (with the token): the kernel's model, or None once it is gone.
    (Voila serves no kernel listing: /api/kernels without an id would render the page.)"""
    url = f"http://127.0.0.1:{server.port}/api/kernels/{kernel_id}?token={TOKEN}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def wait_until(condition, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting until {what}")


def test_a_gone_tab_is_culled_an_open_one_is_kept_and_coming_back_works(server, browser):
    seed_items(server.database_url, 6)
    contexts = [browser.new_context(), browser.new_context()]
    try:
        ann = Tab(contexts[0], server.url("ann"))
        ann_post = ann.shown()
        (ann_kernel,) = kernel_ids(server)
        bob = Tab(contexts[1], server.url("bob"))
        bob_post = bob.shown()
        (bob_kernel,) = kernel_ids(server) - {ann_kernel}
        assert kernel_model(server, bob_kernel)["connections"] >= 1

        bob.page.close()  # no beforeunload: the tab is just gone
        wait_until(lambda: kernel_model(server, bob_kernel) is None, "bob's kernel is culled")
        assert re.search(rf"Culling '\w+' kernel '\w+' \({bob_kernel}\) with 0 connections", server.output())
        # ann's kernel has been idle longer than bob's (her page finished first), yet it stays:
        # her tab is connected. Two more culler passes change nothing.
        time.sleep(2 * 2 + 1)
        model = kernel_model(server, ann_kernel)
        assert model is not None and model["connections"] >= 1
        assert kernel_ids(server) == {ann_kernel}
        ann.click("Advocacy")
        ann.wait_next(ann_post)
        assert labels(server.database_url) == [(ann_post, "Advocacy", "ann")]

        # bob comes back (his lease, LEASE_SECONDS=600, is still live): a new kernel, his post
        back = Tab(contexts[1], server.url("bob"))
        assert back.shown() == bob_post
        assert "reloaded" in back.page.locator(".sl-why").inner_text()
        back.click("Others")
        back.wait_next(bob_post)
        assert sorted(labels(server.database_url)) == sorted([(ann_post, "Advocacy", "ann"),
                                                              (bob_post, "Others", "bob")])
        assert "Traceback" not in back.page.content()

        # every tab gone: no kernel left
        for ctx in contexts:
            for page in ctx.pages:
                page.close()
        wait_until(lambda: not kernel_ids(server), "every kernel is culled")
        assert kernel_model(server, ann_kernel) is None
    finally:
        for ctx in contexts:
            ctx.close()
