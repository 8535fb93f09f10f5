"""The labelling team: `smartlabel labellers` and personal links on the page, on SQLite and PostgreSQL.

The page is driven in Python here (the widgets Voila shows, their buttons pressed);
tests/test_interface_browser.py drives personal links in Chromium.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from smartlabel import db, labellers
from smartlabel.cli import app
from smartlabel.interface import LabellingPage
from smartlabel.settings import load_settings

from helpers import seed_items

LINK = re.compile(r"^  (?P<url>\S+)$", re.MULTILINE)
NOT_VALID = "This link is not valid: ask your admin for your personal link"


def cli(url, *args, **env):
    return CliRunner().invoke(app, list(args), env={"DATABASE_URL": url, "LABELLER_KEYS": "required",
                                                    "DOMAIN": "", "PAGE_URL": "", "VOILA_TOKEN": "", **env},
                              prog_name="smartlabel")


def add(url, name, **env) -> str:
    """`smartlabel labellers add NAME`; returns the key of the printed link."""
    result = cli(url, "labellers", "add", name, **env)
    assert result.exit_code == 0, result.output
    return LINK.search(result.output)["url"].rsplit("key=", 1)[1]


def snapshot(engine) -> dict:
    """Every row of every table: what "nothing written" is checked against."""
    with engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(t.select())), key=repr) for t in db.TABLES}


def key_page(url, query, **overrides):
    settings = load_settings(database_url=url, labeller_keys="required", shuffle_prop=0.0, audit_share=0.0,
                             review_share=0.0, **overrides)
    return LabellingPage(settings, query, min_seconds_on_post=0)


def name_page(url, name, **overrides):
    settings = load_settings(database_url=url, labeller_keys="off", shuffle_prop=0.0, audit_share=0.0,
                             review_share=0.0, **overrides)
    return LabellingPage(settings, f"worker={name}", min_seconds_on_post=0)


def click(page, label):
    page.widget.labelling_widget.control_elements.buttons[label].button.click()


def live_labels(engine):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT item_id, label, worker_id FROM labels WHERE retracted_at IS NULL ORDER BY id"))]


# --- the commands -----------------------------------------------------------------------


def test_add_prints_a_personal_link_and_stores_only_the_keys_hash(db_url, engine_for):
    engine = engine_for(db_url)
    result = cli(db_url, "labellers", "add", "  Ann   Lee ", DOMAIN="label.example.org", VOILA_TOKEN="tok")
    assert result.exit_code == 0, result.output
    url = LINK.search(result.output)["url"]
    assert url.startswith("https://label.example.org/?token=tok&key=")
    key = url.rsplit("key=", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)  # token_urlsafe(32): 256 bits
    with engine.connect() as conn:
        (row,) = conn.execute(text("SELECT * FROM labellers")).mappings().all()
    assert (row["name"], row["name_key"], bool(row["enabled"])) == ("Ann Lee", "ann lee", True)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(snapshot(engine)), "the key itself is stored nowhere"
    # without DOMAIN: PAGE_URL, else this machine's page address
    other = add(db_url, "Bo", PAGE_URL="https://ec2-1-2-3-4.compute.amazonaws.com/")
    assert labellers.name_for_key(engine, other) == "Bo"
    plain = cli(db_url, "labellers", "add", "Cy")
    assert LINK.search(plain.output)["url"].startswith("http://127.0.0.1:8866/?key=")


@pytest.mark.parametrize("taken", ["ann", " ANN ", "Ann"])
def test_a_taken_name_is_one_line_exit_1_and_nothing_written(db_url, engine_for, taken):
    engine = engine_for(db_url)
    add(db_url, "Ann")
    before = snapshot(engine)
    result = cli(db_url, "labellers", "add", taken)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "exists already" in result.output
    assert "Traceback" not in result.output
    assert snapshot(engine) == before


@pytest.mark.parametrize("command", ["disable", "enable", "rotate"])
def test_an_unknown_name_is_one_line_exit_1_and_nothing_written(db_url, engine_for, command):
    engine = engine_for(db_url)
    add(db_url, "Ann")
    before = snapshot(engine)
    result = cli(db_url, "labellers", command, "nobody")
    assert result.exit_code == 1
    assert result.output.strip() == ("error: there is no labeller named 'nobody'; "
                                     "`smartlabel labellers list` shows who there is")
    assert snapshot(engine) == before


@pytest.mark.parametrize("name, says", [("   ", "needs a name"), ("x" * 101, "limit is 100"),
                                        ("bad\x07name", "control characters")])
def test_a_bad_name_is_refused(sqlite_url, engine_for, name, says):
    result = cli(sqlite_url, "labellers", "add", name)
    assert result.exit_code == 1 and says in result.output
    assert snapshot(engine_for(sqlite_url))["labellers"] == []


def test_list_shows_the_team_and_never_a_key(db_url, engine_for):
    engine = engine_for(db_url)
    ann = add(db_url, "Ann")
    add(db_url, "Bob")
    cli(db_url, "labellers", "disable", "bob")
    (post, other) = seed_items(db_url, 2)
    page = key_page(db_url, f"key={ann}")
    click(page, "Advocacy")
    page.widget.labelling_widget.undo_button.click()  # retracts it
    click(page, "Others")
    result = cli(db_url, "labellers", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in result.output.splitlines() if line.startswith("│")}
    assert lines["Ann"][0] == "yes" and lines["Ann"][3:5] == ["1", "1"]  # 1 label, 1 retracted
    assert lines["Ann"][2] != "-"  # last seen
    assert lines["Bob"][0] == "no" and lines["Bob"][3:5] == ["0", "0"]
    hashes = [h for (h,) in engine.connect().execute(text("SELECT key_hash FROM labellers"))]
    assert ann not in result.output and not any(h in result.output for h in hashes)


# --- the page with LABELLER_KEYS=required -------------------------------------------------------


def test_a_valid_key_labels_as_its_owner_without_asking(db_url, engine_for):
    engine = engine_for(db_url)
    key = add(db_url, "Ann Lee")
    ids = seed_items(db_url, 3)
    page = key_page(db_url, f"worker=mallory&key={key}")  # ?worker= is ignored
    assert page.worker == "Ann Lee" and page.widget.state == "item"
    assert "Labelling as <b class='sl-worker'>Ann Lee</b>" in page.header.value
    assert not hasattr(page, "name_box"), "no name box with a personal link"
    first = page.widget.current_item_id
    click(page, "Advocacy")
    assert live_labels(engine) == [(first, "Advocacy", "Ann Lee")]
    assert first in ids


@pytest.mark.parametrize("query", ["", "worker=ann", "key=", "key=short", "key=" + "A" * 43,
                                   "key=" + "!" * 43, "key=%00%01"])
def test_a_missing_malformed_or_wrong_key_gets_the_invalid_link_page(db_url, engine_for, query):
    engine = engine_for(db_url)
    add(db_url, "Ann")
    seed_items(db_url, 3)
    before = snapshot(engine)
    page = key_page(db_url, query)
    assert page.widget is None
    (html,) = [c.value for c in page.body.children]
    assert NOT_VALID in html and "Labelling as" not in page.header.value
    assert snapshot(engine) == before, "nothing handed out, nothing written"


def test_a_disabled_labellers_key_is_refused_and_nothing_written(db_url, engine_for):
    engine = engine_for(db_url)
    key = add(db_url, "Ann")
    seed_items(db_url, 3)
    assert cli(db_url, "labellers", "disable", "ANN").exit_code == 0
    before = snapshot(engine)
    page = key_page(db_url, f"key={key}")
    assert page.widget is None and NOT_VALID in page.body.children[0].value
    assert snapshot(engine) == before
    assert cli(db_url, "labellers", "enable", "ann").exit_code == 0
    assert key_page(db_url, f"key={key}").widget.state == "item"


def test_rotating_a_key_stops_an_open_page_at_its_next_click(db_url, engine_for):
    """A leaked link: after `rotate`, the open page's next action is refused and writes nothing;
    the new link works (and gets back the post the labeller held)."""
    engine = engine_for(db_url)
    old = add(db_url, "Ann")
    seed_items(db_url, 4)
    page = key_page(db_url, f"key={old}")
    shown = page.widget.current_item_id
    result = cli(db_url, "labellers", "rotate", "ann")
    assert result.exit_code == 0 and "New link for Ann" in result.output
    new = LINK.search(result.output)["url"].rsplit("key=", 1)[1]
    before = snapshot(engine)
    click(page, "Advocacy")
    assert page.widget.state == "broken" and NOT_VALID in page.widget.message.value
    page.widget.labelling_widget.undo_button.click()
    assert snapshot(engine) == before, "the refused click wrote nothing"
    assert key_page(db_url, f"key={old}").widget is None  # a reload with the old link
    again = key_page(db_url, f"key={new}")
    assert again.worker == "Ann" and again.widget.current_item_id == shown


def test_disabling_frees_the_posts_the_labeller_held(db_url, engine_for):
    engine = engine_for(db_url)
    key = add(db_url, "Ann")
    seed_items(db_url, 2)
    page = key_page(db_url, f"key={key}")
    assert page.widget.state == "item"
    assert cli(db_url, "labellers", "disable", "Ann").exit_code == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM leases")).scalar_one() == 0
    click(page, "Others")
    assert NOT_VALID in page.widget.message.value and live_labels(engine) == []


# --- typed names (LABELLER_KEYS=off): one labeller per name, whatever its case -------------------


def test_typed_names_are_the_labellers_canonical_name(db_url, engine_for):
    engine = engine_for(db_url)
    add(db_url, "Alice")
    (post,) = seed_items(db_url, 1)
    page = name_page(db_url, "%20alice%20")
    assert page.worker == "Alice" and page.widget.queue.worker_id == "Alice"
    click(page, "Advocacy")
    # "ALICE" in another tab is the same labeller: with OVERLAP=2 she cannot give the second label
    other = name_page(db_url, "ALICE", overlap=2)
    assert other.worker == "Alice" and other.widget.state == "done"
    assert live_labels(engine) == [(post, "Advocacy", "Alice")]
    new = name_page(db_url, "Zoë%20Ng")  # a new name gets a row (without a key)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, name_key, key_hash FROM labellers ORDER BY id")).all()
    assert rows[1] == ("Zoë Ng", "zoë ng", None) and new.worker == "Zoë Ng"
    name_page(db_url, "ZOË   NG")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM labellers")).scalar_one() == 2


def test_a_disabled_name_cannot_be_typed(db_url, engine_for):
    engine = engine_for(db_url)
    add(db_url, "Alice")
    seed_items(db_url, 2)
    cli(db_url, "labellers", "disable", "alice")
    page = name_page(db_url, "alice")
    assert page.widget is None and "may not label now" in page.name_error.value
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM handouts")).scalar_one() == 0


def test_name_keys_fold_case_spaces_and_unicode_forms():
    assert labellers.name_key("  Zoe\u0308   NG ") == labellers.name_key("zoë ng") == "zoë ng"
    assert labellers.name_key("STRASSE") == labellers.name_key("straße")
    assert labellers.clean_name("  a \t b ") == "a b"
