"""The PostgreSQL import (new posts written with COPY, model texts cleaned one batch ahead in
worker processes) against SQLite's unchanged executemany path: the same file gives the same
posts, labels, counts and notes on both; a bad line after COPYed batches leaves nothing."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import text

from smartlabel.errors import ImportFileError
from smartlabel.importer import ahead, import_file
from smartlabel.settings import load_settings
from smartlabel.text import clean_text

LABELS = ["Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others"]
HEADER = "id,title,selftext,label,worker_id,subreddit\n"


def run(path, url, **kw):
    s = load_settings(database_url=url, labels=LABELS, overlap=kw.pop("overlap", 1))
    return import_file(path, url, settings=s, progress=False, seed=3, **kw)


def q(c: str) -> str:
    return '"' + c.replace('"', '""') + '"'


def mixed_file(path, n: int, seed: int = 0) -> None:
    """n rows with every case the importer tells apart, and texts COPY must escape."""
    rng = random.Random(seed)
    odd = ["tab\there", "back\\slash \\N", "new\nline", "carriage\r\nreturn", "quote \" and , comma",
           "unicode é ü 中文 \u200b", "&amp; <b>tag</b> [link](http://x.y) 1,000 don't", "\\.", ""]
    out = [HEADER]
    posts, exts = [], []
    for i in range(n):
        kind = rng.random()
        body = f"body {i} " + rng.choice(odd) + " " + " ".join(rng.choice(["alpha", "beta", "gamma"])
                                                               for _ in range(rng.randint(3, 30)))
        ext = f"e{i}" if rng.random() < 0.8 else ""
        title = f"title {i}"
        if kind < 0.1 and posts:  # the same text again, under its id, another id or none
            title, body, old = rng.choice(posts)
            ext = rng.choice(["", f"x{i}", old])
            kind = -1.0  # labelled: by a worker who may have labelled it before
        elif kind < 0.2 and exts:  # an id used earlier for another text
            ext = rng.choice(exts)
        elif kind < 0.23:  # empty row
            title, body, ext = " ", "", ""
        if title.strip():
            posts.append((title, body, ext))
        if ext:
            exts.append(ext)
        label = rng.choice(LABELS) if rng.random() < 0.3 or kind < 0 else ""
        worker = rng.choice(["", "ann", "bob"]) if label else ""
        extra = rng.choice(["sg", "", "a\tb", "multi\nline"])
        out.append(",".join([q(ext), q(title), q(body), q(label), q(worker), q(extra)]) + "\n")
    path.write_text("".join(out), encoding="utf-8")


def stored(engine_for, url):
    with engine_for(url).connect() as conn:
        items = [
            (r.id, r.external_id, r.title, r.selftext, r.clean_selftext,
             json.loads(r.extra) if isinstance(r.extra, str) else r.extra, r.content_hash, r.rand_key,
             r.label_count, bool(r.done))
            for r in conn.execute(text("SELECT * FROM items ORDER BY id"))
        ]
        labels = [tuple(r) for r in conn.execute(text(
            "SELECT i.content_hash, l.worker_id, l.label, l.handout_reason FROM labels l "
            "JOIN items i ON i.id = l.item_id ORDER BY l.id"))]
        counts = conn.execute(text("SELECT SUM(total), SUM(done) FROM item_counts")).one()
        actual = conn.execute(text("SELECT COUNT(*), SUM(CASE WHEN done THEN 1 ELSE 0 END) FROM items")).one()
    return items, labels, tuple(int(c or 0) for c in counts), tuple(int(c or 0) for c in actual)


def outcome(res):
    return (res.rows, res.added, res.already_present, res.duplicates_in_file, res.empty, res.id_conflicts,
            res.labels_added, res.labels_present, res.labels_conflicting, res.notes)


def comparable(state):
    """Posts without their ids (a sequence may leave gaps), in id order."""
    items, labels, counts, actual = state
    return [i[1:] for i in items], labels, counts, actual


@pytest.mark.parametrize("rows, batch_size", [(60, 1), (60, 7), (5000, 2100)])
def test_postgresql_copy_import_matches_sqlite_row_for_row(rows, batch_size, pg_url, sqlite_url, tmp_path,
                                                           engine_for):
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    mixed_file(first, rows, seed=1)
    mixed_file(second, rows + rows // 3, seed=1)  # the same rows and more: a re-import that adds
    assert second.read_text().startswith(first.read_text())
    for f in (first, second):
        a = run(f, sqlite_url, batch_size=batch_size)
        b = run(f, pg_url, batch_size=batch_size)
        assert outcome(b) == outcome(a)
        assert b.added > 0 and b.duplicates_in_file > 0 and b.id_conflicts > 0 and b.labels_added > 0
        assert b.empty > 0 and (rows < 1000 or b.labels_conflicting > 0 and b.labels_present > 0)
    sqlite_state, pg_state = stored(engine_for, sqlite_url), stored(engine_for, pg_url)
    assert comparable(pg_state) == comparable(sqlite_state)
    assert pg_state[2] == pg_state[3]  # item_counts (statement trigger on the COPY) equals a full count
    # every text survived COPY's escaping, the model text is clean_text's
    with engine_for(pg_url).connect() as conn:
        for title, selftext, clean in conn.execute(text("SELECT title, selftext, clean_selftext FROM items")):
            assert clean == clean_text(selftext)
    again = run(first, pg_url, batch_size=batch_size)
    assert again.added == 0 and again.labels_added == 0
    assert stored(engine_for, pg_url) == pg_state


def test_a_bad_line_after_copied_batches_names_file_and_line_and_writes_nothing(pg_url, tmp_path, engine_for):
    seed_file = tmp_path / "seed.csv"
    seed_file.write_text("id,title,selftext,label\ns1,seeded,post,Others\n", encoding="utf-8")
    run(seed_file, pg_url)
    before = stored(engine_for, pg_url)
    n = 3 * ahead.AHEAD_MIN_ROWS  # several COPYed batches, cleaned by the worker processes
    lines = [HEADER] + [f"b{i},post {i},body number {i} &amp; more,,,sg\n" for i in range(n)]
    lines.insert(n - 10, "bad,a post,with a label,Spam,,sg\n")  # data row n-10: file line n-9
    bad = tmp_path / "big.csv"
    bad.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        run(bad, pg_url, batch_size=ahead.AHEAD_MIN_ROWS)
    message = str(info.value)
    assert f"{bad}, line {n - 9}, column 4 (label):" in message
    assert "label 'Spam' is not one of LABELS" in message
    assert stored(engine_for, pg_url) == before  # posts, labels and item_counts as they were
    # the sequence moved on; the next import still works and counts right
    good = tmp_path / "good.csv"
    good.write_text("".join(ln for ln in lines if not ln.startswith("bad,")), encoding="utf-8")
    res = run(good, pg_url)
    assert (res.added, res.already_present) == (n, 0)
    items, _labels, counts, actual = stored(engine_for, pg_url)
    assert counts == actual == (n + 1, 1)


def _preparer():
    from smartlabel.importer.validate import Validator

    return ahead.Preparer(Validator("f.csv", LABELS, 10_000, "import"))


def _record(line: int, body: str, label: str = ""):
    from smartlabel.importer.records import Record

    title = f"t{line}" if body.strip() else ""  # a blank body: an empty row
    return Record(line, line, {"title": title, "selftext": body, "label": label}, None,
                  {"title": "1 (title)", "selftext": "2 (selftext)", "label": "3 (label)"})


def test_rows_prepared_in_worker_processes_are_those_prepared_here():
    from smartlabel.store.items import copy_fields

    n = 3 * ahead.AHEAD_MIN_ROWS + 7
    records = [_record(i + 2, f"**Body** {i} &amp; https://x.y/{i} don't" if i % 9 else " ") for i in range(n)]
    here = _preparer()(records)
    batches = list(ahead.prepared_ahead(iter(records), ahead.AHEAD_MIN_ROWS, _preparer(), 2))
    assert [len(b) for b in batches] == [ahead.AHEAD_MIN_ROWS] * 3 + [7]
    assert [r for b in batches for r in b] == here
    assert here[0] is None and here[1].line == 3  # the empty row, and a post
    assert here[1].copy_fields == copy_fields("t3", records[1].values["selftext"],
                                              clean_text(records[1].values["selftext"]), None)


def _read_then_fail(records, error):
    yield from records
    raise error


@pytest.mark.parametrize("bad_at", [10, ahead.AHEAD_MIN_ROWS + 10, 2 * ahead.AHEAD_MIN_ROWS + 10, None])
def test_the_first_error_in_the_file_wins_over_a_later_reading_error(bad_at):
    """A bad label in a batch sent to the workers (collected when the next one is read, or
    still out when reading fails), or in the rows read since, comes before a reading error
    further on; with no bad label the reading error is raised."""
    from smartlabel.importer.records import file_error

    n = 2 * ahead.AHEAD_MIN_ROWS + 50
    records = [_record(i + 2, f"body {i}", "Spam" if i == bad_at else "") for i in range(n)]
    reading = file_error("f.csv", "not valid CSV", line=n + 2)
    with pytest.raises(ImportFileError) as info:
        list(ahead.prepared_ahead(_read_then_fail(records, reading), ahead.AHEAD_MIN_ROWS, _preparer(), 2))
    if bad_at is None:
        assert info.value is reading
    else:
        assert str(info.value).startswith(f"f.csv, line {bad_at + 2}, column 3 (label): label 'Spam'")


class _SlowMarking:
    """A stand-in for ahead.Preparer: each slice takes a while and leaves a file behind
    when it is finished (the workers are forked: the folder is shared)."""

    def __init__(self, folder):
        self.folder = folder

    def __call__(self, items):
        import os
        import time

        time.sleep(0.3)
        (self.folder / f"{items[0]}-{os.getpid()}").touch()
        return [None] * len(items)


def test_an_import_that_stops_early_lets_the_workers_finish_before_stopping_them(tmp_path):
    """Pool.terminate on a worker that is sending a result can hang for ever (the result
    queue's lock dies with it): an import that stops early (here: its reader stops after
    the first batch, as on a bad row) first lets every slice sent finish."""
    batches = ahead.prepared_ahead(iter(range(3000)), 1000, _SlowMarking(tmp_path), workers=2)
    first = next(batches)  # the first batch back; the second is being prepared meanwhile
    assert len(first) == 1000
    batches.close()
    done = sorted(int(p.name.split("-")[0]) for p in tmp_path.iterdir())
    # both batches' slices (4 each: 2 workers x 2) finished, none killed half-way
    assert done == [0, 250, 500, 750, 1000, 1250, 1500, 1750], done
