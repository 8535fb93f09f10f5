"""The labelling page's widget logic, driven in Python on SQLite and PostgreSQL.

These build the same widgets Voila shows and press their buttons (`Button.click()` runs
the same handlers a browser click does); tests/test_interface_browser.py drives the real
page in Chromium.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from smartlabel import interface
from smartlabel.interface import (
    LabellingPage,
    clean_name,
    model_line_html,
    reason_text,
    render_post_html,
    worker_from_query,
)
from smartlabel.store import predictions as store_predictions, runs as store_runs
from smartlabel.settings import load_settings

from helpers import seed_items

LABELS = ["Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others"]
DEAD_PG = "postgresql+psycopg2://nobody:x@127.0.0.1:9/none?connect_timeout=2"


def make_page(url, worker="ann", **overrides):
    overrides.setdefault("shuffle_prop", 0.0)
    overrides.setdefault("audit_share", 0.0)
    overrides.setdefault("review_share", 0.0)
    settings = load_settings(database_url=url, **overrides)
    query = f"worker={worker}" if worker else ""
    return LabellingPage(settings, query, min_seconds_on_post=0)


def click(page, label):
    page.widget.labelling_widget.control_elements.buttons[label].button.click()


def key(page, k):
    page.widget.labelling_widget._handle_keystroke({"type": "keyup", "key": k})


def rows(engine, sql):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def shown_id(page):
    return page.widget.current_item_id


# --- flow -------------------------------------------------------------------------------


def test_worker_from_query_string_starts_labelling(db_url, engine_for):
    ids = seed_items(db_url, 5)
    page = make_page(db_url, "ann%20lee")
    assert page.worker == "ann lee"
    w = page.widget
    assert w.state == "item" and w.current_item_id in ids
    assert w.queue.worker_id == "ann lee"
    assert "Labelling as <b class='sl-worker'>ann lee</b>" in page.header.value
    assert f"data-item-id='{w.current_item_id}'" in w.post.value
    assert "<b>0</b> of 5 posts labelled" in w.counts_html.value and "<b>5</b> left" in w.counts_html.value
    assert "none yet" in w.model_html.value
    # the post shown is the one the queue leased to this labeller
    assert rows(engine_for(db_url), "SELECT item_id, worker_id FROM leases") == [(w.current_item_id, "ann lee")]


def test_name_prompt_then_start(sqlite_url, engine_for):
    seed_items(sqlite_url, 3)
    page = make_page(sqlite_url, worker="")
    assert page.widget is None and page.body.children == (page.ask,)
    page.start_button.click()  # empty
    assert "Type your name first" in page.name_error.value and page.widget is None
    page.name_box.value = "x" * 101
    assert "longer than 100" in page.name_error.value and page.widget is None
    page.name_box.value = "  bo   b "  # Enter in the box (continuous_update=False)
    assert page.worker == "bo b" and page.widget.state == "item"
    page.start_button.click()  # a second start changes nothing
    assert page.widget.queue.worker_id == "bo b"
    assert rows(engine_for(sqlite_url), "SELECT worker_id FROM leases") == [("bo b",)]


def test_click_labels_then_next_post_then_undo(db_url, engine_for):
    seed_items(db_url, 6)
    engine = engine_for(db_url)
    page = make_page(db_url)
    w = page.widget
    first = shown_id(page)
    click(page, "Advocacy")
    assert rows(engine, "SELECT item_id, label, worker_id, handout_reason FROM labels WHERE retracted_at IS NULL") == [
        (first, "Advocacy", "ann", "unscored")]
    second = shown_id(page)
    assert second not in (None, first)
    assert "<b>1</b> of 6 posts labelled" in w.counts_html.value and "<b>1</b> by you" in w.counts_html.value
    assert w.progressbar.value == pytest.approx(1 / 6)
    page.widget.labelling_widget.undo_button.click()
    assert rows(engine, "SELECT item_id FROM labels WHERE retracted_at IS NULL") == []
    assert rows(engine, "SELECT item_id, retracted_by FROM labels") == [(first, "ann")], "retracted, not deleted"
    assert shown_id(page) == first and "back after undo" in w.post.value
    assert w.progressbar.value == 0
    click(page, "Others")
    assert rows(engine, "SELECT item_id, label FROM labels WHERE retracted_at IS NULL") == [(first, "Others")]
    assert shown_id(page) == second  # the post undo put aside comes back next


def test_skip_is_stored_and_undo_takes_it_back(db_url, engine_for):
    seed_items(db_url, 4)
    engine = engine_for(db_url)
    page = make_page(db_url)
    first = shown_id(page)
    page.widget.labelling_widget.skip_button.click()
    assert rows(engine, "SELECT item_id, worker_id FROM skips") == [(first, "ann")]
    assert rows(engine, "SELECT * FROM labels WHERE retracted_at IS NULL") == []
    assert shown_id(page) != first
    key(page, "u")
    assert rows(engine, "SELECT * FROM skips") == []
    assert shown_id(page) == first


def test_keyboard_shortcuts_follow_button_order(sqlite_url, engine_for):
    seed_items(sqlite_url, 6)
    engine = engine_for(sqlite_url)
    page = make_page(sqlite_url)
    lab = page.widget.labelling_widget
    # "Sort options" is hidden and does nothing: the keys keep meaning the same tags
    assert lab.sort_button.layout.display == "none"
    lab.sort_button.click()
    assert list(lab.control_elements.buttons) == LABELS
    assert [b.children[1].value for b in lab.control_elements.buttons.values()] == [
        f"<div class='sl-key'>key {i}</div>" for i in range(1, 6)]
    a = shown_id(page)
    key(page, "2")
    b = shown_id(page)
    key(page, "5")
    c = shown_id(page)
    key(page, "9")  # no ninth tag: nothing happens
    key(page, "Enter")  # ClassLabeller ignores Enter
    assert shown_id(page) == c
    key(page, "s")
    assert rows(engine, "SELECT item_id, label FROM labels WHERE retracted_at IS NULL ORDER BY id") == [(a, LABELS[1]), (b, LABELS[4])]
    assert rows(engine, "SELECT item_id FROM skips") == [(c,)]
    key(page, "Backspace")  # undo the skip
    assert shown_id(page) == c and rows(engine, "SELECT item_id FROM skips") == []


def test_double_click_does_not_label_the_next_post(sqlite_url, engine_for):
    seed_items(sqlite_url, 5)
    engine = engine_for(sqlite_url)
    now = [100.0]
    settings = load_settings(database_url=sqlite_url, shuffle_prop=0.0)
    from smartlabel.interface.widget import LabellingWidget
    from smartlabel.queue import LabelQueue

    queue = LabelQueue(sqlite_url, "ann", settings=settings)
    w = LabellingWidget(queue, LABELS, min_seconds_on_post=0.25, clock=lambda: now[0])
    lab = w.labelling_widget
    first = w.current_item_id
    lab.control_elements.buttons["Advocacy"].button.click()  # too soon after the post appeared
    assert rows(engine, "SELECT * FROM labels WHERE retracted_at IS NULL") == [] and w.current_item_id == first
    now[0] += 3.0  # read for 3 seconds
    lab.control_elements.buttons["Advocacy"].button.click()
    second = w.current_item_id
    now[0] += 0.05  # the double click's second half arrives 50 ms after the next post
    lab.control_elements.buttons["Advocacy"].button.click()
    lab.skip_button.click()
    lab.undo_button.click()
    assert w.current_item_id == second
    assert rows(engine, "SELECT item_id, label FROM labels WHERE retracted_at IS NULL") == [(first, "Advocacy")]
    assert rows(engine, "SELECT * FROM skips") == []


def test_undo_with_nothing_to_undo_keeps_the_post(sqlite_url, engine_for):
    seed_items(sqlite_url, 3)
    page = make_page(sqlite_url)
    first = shown_id(page)
    page.widget.labelling_widget.undo_button.click()
    assert shown_id(page) == first
    assert "Nothing to undo yet." in page.widget.notice.value
    assert "not scored yet" in page.widget.post.value  # still why it was chosen, not "back after undo"
    click(page, "Advocacy")
    assert page.widget.notice.value == ""  # a notice lasts one post


def test_two_labellers_get_different_posts(db_url):
    seed_items(db_url, 10)
    ann, bob = make_page(db_url, "ann"), make_page(db_url, "bob")
    seen_a, seen_b = {shown_id(ann)}, {shown_id(bob)}
    for _ in range(3):
        assert shown_id(ann) != shown_id(bob)
        click(ann, "Advocacy")
        click(bob, "Others")
        seen_a.add(shown_id(ann))
        seen_b.add(shown_id(bob))
    assert not seen_a & seen_b


def test_stale_submit_shows_a_notice_and_moves_on(db_url, engine_for):
    """The same labeller in two tabs: the second tab's submit of the same post is refused."""
    seed_items(db_url, 5)
    engine = engine_for(db_url)
    tab1, tab2 = make_page(db_url, "ann"), make_page(db_url, "ann")
    assert shown_id(tab1) == shown_id(tab2)  # tab 2 resumes the post ann holds
    post = shown_id(tab1)
    click(tab1, "Advocacy")
    click(tab2, "Others")
    assert "That post was not saved" in tab2.widget.notice.value
    assert "already labelled" in tab2.widget.notice.value
    assert tab2.widget.state == "item" and shown_id(tab2) != post
    assert rows(engine, "SELECT item_id, label FROM labels WHERE retracted_at IS NULL") == [(post, "Advocacy")]


def test_all_done_then_check_again_and_undo_from_there(db_url, engine_for):
    seed_items(db_url, 2)
    engine = engine_for(db_url)
    page = make_page(db_url)
    w = page.widget
    a = shown_id(page)
    click(page, "Advocacy")
    b = shown_id(page)
    click(page, "Others")
    assert w.state == "done" and shown_id(page) is None
    assert "All done, ann!" in w.message.value and "2 labelled by you" in w.message.value
    assert w.check_button in w.children[-1].children and w.progressbar.bar_style == "success"
    w.check_button.click()
    assert w.state == "done"
    new = seed_items(db_url, 1, prefix="late")[0]
    w.check_button.click()
    assert w.state == "item" and shown_id(page) == new
    click(page, "Advocacy")
    assert w.state == "done"
    w.undo_last_button.click()  # one undo from the done screen: the last label only
    assert shown_id(page) == new
    assert sorted(rows(engine, "SELECT item_id FROM labels WHERE retracted_at IS NULL")) == sorted([(a,), (b,)])


def test_done_screen_escapes_the_name(sqlite_url):
    page = make_page(sqlite_url, "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert page.widget.state == "done"
    assert "<img" not in page.widget.message.value + page.header.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.widget.message.value


# --- what a post shows ------------------------------------------------------------------------


def test_post_text_is_escaped_and_keeps_line_breaks(sqlite_url, engine_for):
    seed_items(sqlite_url, 1)
    engine = engine_for(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE items SET title = :t, selftext = :b"),
                     {"t": "<img src=x onerror=alert(1)>", "b": "one <script>alert(2)</script>\ntwo & three"})
    page = make_page(sqlite_url)
    value = page.widget.post.value
    assert "<img" not in value and "<script" not in value
    assert "<div class='sl-title'>&lt;img src=x onerror=alert(1)&gt;</div>" in value
    assert "one &lt;script&gt;alert(2)&lt;/script&gt;\ntwo &amp; three" in value


def test_model_line_guess_and_reason_from_the_current_run(db_url, engine_for):
    ids = seed_items(db_url, 3)
    engine = engine_for(db_url)
    with engine.begin() as conn:
        run = conn.execute(text(
            "INSERT INTO model_runs (started_at, finished_at, status, model_kind, n_labels, cv_accuracy) "
            "VALUES (:t, :t, 'ok', 'lr', 120, 0.8123) RETURNING id"), {"t": "2026-11-20 09:15:00"}).scalar_one()
    store_predictions.write(engine, run, ids, [1.0, 3.0, 2.0], predicted_labels=["Advocacy", "Others", "Advocacy"],
                      confidences=[0.5, 0.41, 0.6], second_labels=["Others", "Personal Stories", "Others"],
                      second_confidences=[0.3, 0.38, 0.2])
    store_runs.set_current(engine, run)
    page = make_page(db_url)
    w = page.widget
    assert shown_id(page) == ids[1]  # highest priority first
    assert "<b>Model (lr):</b> trained 2026-11-20 09:15 UTC" in w.model_html.value
    assert "120 labels" in w.model_html.value and "CV accuracy 81%" in w.model_html.value
    assert "the model is torn between Others (41%) and Personal Stories (38%)" in w.post.value
    assert "<b>Model's guess:</b> Others (41% sure)" in w.post.value


def test_reason_texts():
    item = {"id": 1, "title": "t", "selftext": "", "predicted_label": "A<", "confidence": 0.55,
            "second_label": "B", "second_confidence": 0.25}
    assert reason_text({**item, "reason": "priority"}) == "the model is torn between A&lt; (55%) and B (25%)"
    assert reason_text({**item, "reason": "random"}).startswith("random exploration")
    assert "second opinion" in reason_text({"reason": "audit"})
    assert "second look" in reason_text({"reason": "review"})
    assert reason_text({"reason": "unscored"}) == "not scored yet"
    assert "skipped it earlier" in reason_text({"reason": "skipped"})
    assert "reloaded" in reason_text({"reason": "held"})
    # the random sample, audits and reviews must not lean on the model: no guess shown there
    for reason in ("random", "audit", "review"):
        blind = render_post_html({**item, "reason": reason})
        assert "hidden on this post" in blind and "55%" not in blind
        assert "(no text)" in blind
    assert "A&lt; (55% sure)" in render_post_html({**item, "reason": "priority"})


def test_model_line_without_a_finished_run():
    assert "none yet" in model_line_html(None)
    line = model_line_html({"finished_at": None, "n_labels": 10, "cv_accuracy": None, "model_kind": "keras"})
    assert line == "<b>Model (keras):</b> still training · 10 labels"


def test_names_from_the_query_string():
    assert worker_from_query("token=abc&worker=Ann%20Lee") == "Ann Lee"
    assert worker_from_query("worker=+ann++b+") == "ann b"
    assert worker_from_query("worker=") == "" and worker_from_query("") == "" and worker_from_query(None) == ""
    assert clean_name("\tann\n") == "ann"


def test_browser_url_script_escapes_the_name(sqlite_url, capsys):
    page = make_page(sqlite_url, worker="")
    from IPython.display import Javascript

    shown = []
    import smartlabel.interface.page as mod

    real = mod.display
    mod.display = lambda obj: shown.append(obj)
    try:
        page.name_box.value = "</script><b>x'"
    finally:
        mod.display = real
    scripts = [o.data for o in shown if isinstance(o, Javascript)]
    assert len(scripts) == 1
    assert "u.searchParams.set('worker', \"\\u003c/script\\u003e\\u003cb\\u003ex'\")" in scripts[0]
    assert "history.replaceState" in scripts[0]


# --- trouble ---------------------------------------------------------------------------------


def test_database_gone_shows_a_message_and_retry_recovers(db_url, engine_for):
    from smartlabel.db import make_engine

    seed_items(db_url, 4)
    engine = engine_for(db_url)
    page = make_page(db_url)
    w = page.widget
    first = shown_id(page)
    good = w.queue.engine
    w.queue.engine = dead = make_engine(DEAD_PG)  # the database server goes away
    try:
        click(page, "Advocacy")
        assert w.state == "error"
        assert "The database cannot be reached right now." in w.message.value
        assert "Every label you submitted before this is saved." in w.message.value
        assert "Traceback" not in w.message.value and w.retry_button in w.children
        # buttons do nothing while the message is up
        click(page, "Others")
        w.retry_button.click()
        assert w.state == "error"
    finally:
        w.queue.engine = good
        dead.dispose()
    w.retry_button.click()  # the database is back: the click that failed is saved now
    assert rows(engine, "SELECT item_id, label FROM labels WHERE retracted_at IS NULL") == [(first, "Advocacy")]
    assert w.state == "item" and shown_id(page) not in (None, first)


def test_database_unreachable_from_the_start(pg_url):
    from smartlabel.db import make_engine

    seed_items(pg_url, 2)
    settings = load_settings(database_url=DEAD_PG, shuffle_prop=0.0)
    page = LabellingPage(settings, "worker=ann", min_seconds_on_post=0)
    message, retry = page.body.children
    assert page.widget is None and "cannot be reached" in message.value
    assert "connect" in message.value.lower()  # the driver's one-line reason
    page._engine = make_engine(pg_url)  # the server is up now
    retry.click()
    assert page.widget.state == "item" and page.worker == "ann"


def test_missing_schema_says_what_to_run(tmp_path):
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    page = LabellingPage(settings, "worker=ann", min_seconds_on_post=0)
    html = page.body.children[0].value
    assert page.widget is None
    assert "no smartlabel tables yet" in html and "smartlabel db upgrade" in html


def test_bad_setting_is_a_message_not_a_traceback(monkeypatch):
    monkeypatch.setenv("LABELS", "only-one")
    page = interface.labelling_page(query_string="worker=ann")
    assert isinstance(page, LabellingPage) and page.widget is None
    html = page.body.children[0].value
    assert "A setting is wrong." in html and "LABELS" in html and "Traceback" not in html


def test_bad_database_url_is_a_message(sqlite_url):
    settings = load_settings(database_url=sqlite_url)
    settings.database_url = "mysql://x@y/z"
    page = LabellingPage(settings, "worker=ann")
    html = page.body.children[0].value
    assert page.widget is None and "A setting is wrong." in html and "supports sqlite and postgresql" in html


# --- the kernel stays small --------------------------------------------------------------------


def test_kernel_imports_no_training_stack(sqlite_url):
    """What a labeller's kernel imports: no TensorFlow, scikit-learn, SciPy, pandas, NumPy, nor
    superintendent's own queue (sqlmodel, SQLAlchemy's ORM)."""
    seed_items(sqlite_url, 2)
    code = textwrap.dedent(f"""
        import json, sys
        from smartlabel.interface import labelling_page
        from smartlabel.settings import load_settings
        page = labelling_page(load_settings(database_url={sqlite_url!r}), "worker=ann")
        assert page.widget.state == "item", page.widget.state
        heavy = sorted(m for m in ("tensorflow", "keras", "sklearn", "scipy", "pandas", "torch", "numpy",
                                   "sqlmodel", "sqlalchemy.orm", "superintendent.db_queue")
                       if m in sys.modules)
        import superintendent
        import sklearn.base  # the real ones are still importable afterwards
        import superintendent.db_queue
        print(json.dumps({{"heavy": heavy, "estimator": sklearn.base.BaseEstimator.__module__,
                          "queue": superintendent.db_queue.DatabaseQueue.__module__,
                          "cls": type(page.widget).__mro__[1].__module__}}))
    """)
    src = str(Path(interface.__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": src})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"heavy": [], "estimator": "sklearn.base", "queue": "superintendent.db_queue",
                   "cls": "superintendent"}
