"""smartlabel.importer on SQLite and PostgreSQL: what is stored, idempotence, labels, bad files.

Every bad-file test starts from a database that already holds posts and a label,
imports a file whose good rows come first (batch size 2, so they are written
before the bad line is reached), and checks the error message and that the
database is exactly as before.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from smartlabel.errors import ImportFileError
from smartlabel.importer import import_file
from smartlabel.settings import load_settings
from smartlabel.text import clean_text, content_hash

LABELS = ["Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others"]


def settings(url, **kw):
    kw.setdefault("labels", LABELS)
    return load_settings(database_url=url, **kw)


def run(path, url, **kw):
    s = settings(url, **{k: kw.pop(k) for k in ("overlap", "max_field_chars", "labels") if k in kw})
    kw.setdefault("progress", False)
    return import_file(path, url, settings=s, **kw)


def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


def rows(engine_for, url, sql):
    with engine_for(url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def snapshot(engine_for, url):
    return (
        rows(
            engine_for,
            url,
            "SELECT id, external_id, title, selftext, clean_selftext, content_hash, rand_key, "
            "label_count, done FROM items ORDER BY id",
        ),
        rows(engine_for, url, "SELECT id, item_id, label, worker_id, handout_reason FROM labels ORDER BY id"),
    )


def items_by_title(engine_for, url):
    out = {}
    with engine_for(url).connect() as conn:
        for r in conn.execute(text("SELECT * FROM items ORDER BY id")).mappings():
            out[r["title"]] = dict(r)
    return out


def labels_of(engine_for, url):
    return rows(
        engine_for,
        url,
        "SELECT i.title, l.worker_id, l.label, l.handout_reason FROM labels l JOIN items i ON i.id = l.item_id "
        "ORDER BY i.title, l.worker_id",
    )


def extra_of(value):
    return json.loads(value) if isinstance(value, str) else value


# --- what gets stored -----------------------------------------------------------


def test_csv_import_stores_posts_clean_text_extra_and_random_keys(db_url, tmp_path, engine_for):
    f = write(
        tmp_path,
        "posts.csv",
        "id,title,selftext,clean_selftext,subreddit,score\n"
        'p1,First post,"Raw **body** with a link https://x.y/z\nand a second line",given clean text,singapore,12\n'
        "p2,Second post,Plain body &amp; more,,singapore,3\n"
        ",Third post,No id here,,askSG,\n",
    )
    res = run(f, db_url, seed=7)
    assert (res.rows, res.added, res.already_present, res.labels_added) == (3, 3, 0, 0)
    got = items_by_title(engine_for, db_url)
    assert set(got) == {"First post", "Second post", "Third post"}
    first, second, third = got["First post"], got["Second post"], got["Third post"]
    assert first["external_id"] == "p1" and third["external_id"] is None
    assert first["selftext"] == "Raw **body** with a link https://x.y/z\nand a second line"
    assert first["clean_selftext"] == "given clean text"  # the file's own clean text is kept
    assert second["clean_selftext"] == clean_text("Plain body &amp; more") == "plain body more"
    assert extra_of(first["extra"]) == {"subreddit": "singapore", "score": "12"}
    assert extra_of(third["extra"]) == {"subreddit": "askSG", "score": ""}
    for item in got.values():
        assert item["content_hash"] == content_hash(item["title"], item["selftext"])
        assert 0.0 <= item["rand_key"] < 1.0
        assert item["label_count"] == 0 and not item["done"]
        assert item["imported_at"] is not None
    assert len({i["rand_key"] for i in got.values()}) == 3


def test_reimport_adds_nothing_and_new_rows_add_only_themselves(db_url, tmp_path, engine_for):
    header = "title,selftext\n"
    old = [f"post {i},body {i}\n" for i in range(5)]
    f1 = write(tmp_path, "a.csv", header + "".join(old))
    assert run(f1, db_url).added == 5
    before = snapshot(engine_for, db_url)

    again = run(f1, db_url)
    assert (again.rows, again.added, again.already_present) == (5, 0, 5)
    assert snapshot(engine_for, db_url) == before

    f2 = write(tmp_path, "b.csv", header + "".join(old[:3]) + "new 1,fresh\r\nnew 2,fresher\n")
    res = run(f2, db_url)
    assert (res.rows, res.added, res.already_present) == (5, 2, 3)
    after_items, _ = snapshot(engine_for, db_url)
    assert after_items[:5] == before[0]  # old posts untouched
    assert [r[2] for r in after_items[5:]] == ["new 1", "new 2"]


def test_rows_repeated_in_the_file_and_empty_rows_are_counted_not_stored(db_url, tmp_path, engine_for):
    f = write(tmp_path, "dups.csv", "title,selftext\nsame,text\nother,text\nsame,text\n , \nsame , text\r\n")
    res = run(f, db_url)
    assert (res.rows, res.added, res.duplicates_in_file, res.empty) == (5, 2, 2, 1)
    assert rows(engine_for, db_url, "SELECT COUNT(*) FROM items") == [(2,)]


def test_an_id_that_belongs_to_another_text_is_reported_not_imported(db_url, tmp_path, engine_for):
    run(write(tmp_path, "a.csv", "id,title,selftext\n1,original,text\n"), db_url)
    res = run(write(tmp_path, "b.csv", "id,title,selftext\n1,edited,other text\n2,new,post\n"), db_url)
    assert (res.added, res.id_conflicts) == (1, 1)
    assert any("id '1' already belongs to a post with another text" in n and "line 2" in n for n in res.notes)
    assert "id conflicts:     1" in res.summary()
    assert sorted(items_by_title(engine_for, db_url)) == ["new", "original"]


@pytest.mark.parametrize("batch_size, says", [(10, "is used earlier in the file"), (1, "already belongs to a post")])
def test_an_id_used_twice_in_one_file_for_different_texts(batch_size, says, db_url, tmp_path, engine_for):
    # in one batch the first use is still to be inserted; in batches of one it is stored already
    f = write(tmp_path, "ids.csv", "id,title,selftext\n7,first,a\n7,second,b\n7,first,a\n8,third,c\n")
    res = run(f, db_url, batch_size=batch_size)
    assert (res.rows, res.added, res.id_conflicts, res.duplicates_in_file) == (4, 2, 1, 1)
    assert any(n.startswith("id conflict: line 3: id '7' " + says) for n in res.notes), res.notes
    assert rows(engine_for, db_url, "SELECT external_id, title FROM items ORDER BY id") == [("7", "first"), ("8", "third")]


def test_id_beside_external_id_and_a_repeated_key_are_kept_as_extra(db_url, tmp_path, engine_for):
    run(write(tmp_path, "a.csv", "external_id,ID,title,selftext,note\ne1,5,A,a,n\n"), db_url)
    run(write(tmp_path, "b.jsonl", '{"Title": "B", "id": 6, "external_id": "e2", "title": "x", "selftext": "b"}\n'),
        db_url)
    got = items_by_title(engine_for, db_url)
    assert got["A"]["external_id"] == "e1" and extra_of(got["A"]["extra"]) == {"ID": "5", "note": "n"}
    # the first key naming a column wins; a later one (any case) is extra
    assert got["B"]["external_id"] == "e2" and extra_of(got["B"]["extra"]) == {"id": 6, "title": "x"}


def test_large_file_in_many_batches(db_url, tmp_path, engine_for):
    lines = ["title,selftext,label,worker_id\n"]
    for i in range(1200):
        lines.append(f"t{i},b{i},{'Others' if i % 3 == 0 else ''},w{i % 2}\n")
    lines.append("t5,b5,Advocacy,w9\n")  # an earlier batch's post, a new worker's label
    lines.append("t1,b1,,\n")  # a repeat across batches
    res = run(write(tmp_path, "big.csv", "".join(lines)), db_url, batch_size=50)
    assert (res.rows, res.added, res.duplicates_in_file, res.labels_added) == (1202, 1200, 2, 401)
    assert rows(engine_for, db_url, "SELECT COUNT(*), SUM(label_count) FROM items") == [(1200, 401)]
    assert rows(engine_for, db_url, "SELECT label_count, done FROM items WHERE title = 't5'") == [(1, True)]


# --- labels -------------------------------------------------------------------------


def test_labels_are_imported_with_workers_counts_and_done(db_url, tmp_path, engine_for):
    f = write(
        tmp_path,
        "labelled.csv",
        "title,selftext,label,worker_id\n"
        "A,body a,Advocacy,ann\n"
        "A,body a,Others,bob\n"  # same post, second labeller
        "B,body b,  personal stories ,\n"  # case and spaces forgiven; default worker
        "C,body c,,\n",
    )
    res = run(f, db_url, overlap=2)
    assert (res.added, res.labels_added, res.duplicates_in_file) == (3, 3, 1)
    assert labels_of(engine_for, db_url) == [
        ("A", "ann", "Advocacy", "import"),
        ("A", "bob", "Others", "import"),
        ("B", "import", "Personal Stories", "import"),
    ]
    got = items_by_title(engine_for, db_url)
    assert (got["A"]["label_count"], bool(got["A"]["done"])) == (2, True)
    assert (got["B"]["label_count"], bool(got["B"]["done"])) == (1, False)
    assert (got["C"]["label_count"], bool(got["C"]["done"])) == (0, False)

    # the same file again: no new label
    again = run(f, db_url, overlap=2)
    assert (again.added, again.labels_added, again.labels_present) == (0, 0, 3)
    assert len(labels_of(engine_for, db_url)) == 3

    # a second labeller's label for B, from another file: B is now done
    more = run(write(tmp_path, "more.jsonl", '{"title": "B", "selftext": "body b", "label": "Others", '
                     '"worker_id": "cy"}\n'), db_url, overlap=2)
    assert (more.added, more.already_present, more.labels_added) == (0, 1, 1)
    b = items_by_title(engine_for, db_url)["B"]
    assert (b["label_count"], bool(b["done"])) == (2, True)


def test_done_follows_overlap_one(db_url, tmp_path, engine_for):
    run(write(tmp_path, "l.csv", "title,selftext,label\nA,a,Others\nB,b,\n"), db_url, overlap=1)
    got = items_by_title(engine_for, db_url)
    assert (got["A"]["label_count"], bool(got["A"]["done"])) == (1, True)
    assert (got["B"]["label_count"], bool(got["B"]["done"])) == (0, False)


def test_a_stored_label_is_never_overwritten(db_url, tmp_path, engine_for):
    run(write(tmp_path, "a.csv", "title,selftext,label\nA,a,Advocacy\n"), db_url)
    res = run(write(tmp_path, "b.csv", "title,selftext,label\nA,a,Others\n"), db_url)
    assert (res.labels_added, res.labels_conflicting) == (0, 1)
    assert any("already labelled this post 'Advocacy'" in n for n in res.notes)
    assert labels_of(engine_for, db_url) == [("A", "import", "Advocacy", "import")]


def test_worker_id_option_names_the_labeller(sqlite_url, tmp_path, engine_for):
    run(write(tmp_path, "a.csv", "title,selftext,label\nA,a,Advocacy\n"), sqlite_url, worker_id="expert-1")
    assert labels_of(engine_for, sqlite_url) == [("A", "expert-1", "Advocacy", "import")]


# --- formats ----------------------------------------------------------------------------


def test_jsonl_import(db_url, tmp_path, engine_for):
    f = write(
        tmp_path,
        "posts.jsonl",
        '{"id": 17, "title": "J1", "selftext": "multi\\nline <b>body</b>", "meta": {"flair": "news", "n": [1, 2]}}\n'
        "\n"
        '{"title": "J2", "selftext": null, "clean_selftext": "kept as given", "score": 4.5}\n',
    )
    res = run(f, db_url)
    assert (res.rows, res.added) == (2, 2)
    got = items_by_title(engine_for, db_url)
    assert got["J1"]["external_id"] == "17"
    assert got["J1"]["selftext"] == "multi\nline <b>body</b>"
    assert got["J1"]["clean_selftext"] == "multi line body"
    assert extra_of(got["J1"]["extra"]) == {"meta": {"flair": "news", "n": [1, 2]}}
    assert got["J2"]["selftext"] == "" and got["J2"]["clean_selftext"] == "kept as given"
    assert extra_of(got["J2"]["extra"]) == {"score": 4.5}
    assert run(f, db_url).added == 0


@pytest.mark.parametrize(
    "name, content",
    [
        ("bom_crlf.csv", b"\xef\xbb\xbfTitle,SelfText\r\nA,\"x\r\ny\"\r\nB,z\r\n"),
        ("semicolon.csv", "title;selftext;note\nA;\"x\ny\";n1\nB;z;n2\n".encode()),
        ("tabs.tsv", "title\tselftext\nA\t\"x\ny\"\nB\tz\n".encode()),
        ("no_suffix", b'{"title": "A", "selftext": "x\\ny"}\n{"title": "B", "selftext": "z"}\n'),
    ],
)
def test_csv_dialects_and_format_detection(name, content, sqlite_url, tmp_path, engine_for):
    res = run(write(tmp_path, name, content), sqlite_url)
    assert res.added == 2
    got = items_by_title(engine_for, sqlite_url)
    assert sorted(got) == ["A", "B"]
    assert got["A"]["selftext"].replace("\r\n", "\n") == "x\ny"
    assert got["B"]["selftext"] == "z"


# --- bad files: one test per case, message and database unchanged ------------------------

GOOD = "title,selftext\nok 1,fine\nok 2,fine\nok 3,fine\n"
GOOD_L = "title,selftext,label\nok 1,fine,Others\nok 2,fine,\nok 3,fine,Advocacy\n"
GOOD_J = '{"title": "ok 1", "selftext": "fine"}\n{"title": "ok 2", "selftext": "fine"}\n'
LATIN1 = (GOOD + "caf").encode() + b"\xe9,au lait\n"  # line 5, 'café' in Latin-1
LATIN1_AT = LATIN1.index(b"\xe9")

BAD_FILES = {
    "missing_column": (
        "bad.csv",
        "title,body,score\nx,y,1\n",
        ["bad.csv, line 1:", "missing required column 'selftext'", "found: 'title', 'body', 'score'",
         "Rename 'body' to 'selftext'"],
        {},
    ),
    "empty_file": ("bad.csv", b"", ["bad.csv: the file is empty", "header line"], {}),
    "blank_file": ("bad.csv", b"\n  \r\n\n", ["bad.csv: the file is empty"], {}),
    "header_only": ("bad.csv", "title,selftext\n", ["bad.csv: the file has a header but no rows"], {}),
    "empty_jsonl": ("bad.jsonl", b"\n\n", ["bad.jsonl: the file is empty", "one object per line"], {}),
    "undecodable_bytes": (
        "bad.csv",
        LATIN1,
        ["bad.csv, line 5, column 4:", f"byte 0xe9 at byte offset {LATIN1_AT}",
         "not valid UTF-8", "re-save it as UTF-8"],
        {},
    ),
    "nul_byte": (
        "bad.csv",
        (GOOD + "ok 4,a").encode() + b"\x00b\n",
        ["bad.csv, line 5, column 7:", "NUL byte (0x00)", "Re-save it as UTF-8"],
        {},
    ),
    "utf16": ("bad.csv", GOOD.encode("utf-16"), ["bad.csv, line 1:", "UTF-16", "Re-save it as UTF-8"], {}),
    "unterminated_quote": (
        "bad.csv",
        GOOD + 'ok 4,"this quote is never closed\nok 5,fine\nok 6,fine\n',
        ["bad.csv, line 5, column 2 (selftext):", "double quote opened here is never closed",
         "Add the missing closing quote"],
        {},
    ),
    "text_after_closing_quote": (
        "bad.csv",
        GOOD + 'ok 4,"she said "hi" loudly"\n',
        ["bad.csv, line 5:", 'must be written as two quotes ("")'],
        {},
    ),
    "too_many_fields": (
        "bad.csv",
        GOOD + "ok 4,one,two\n",
        ["bad.csv, line 5:", "3 fields but the header has 2 columns", "must be in double quotes"],
        {},
    ),
    "duplicate_column": (
        "bad.csv",
        "title,selftext,Title\na,b,c\n",
        ["bad.csv, line 1:", "names the column 'Title' twice (columns 1 and 3)"],
        {},
    ),
    "label_not_in_labels": (
        "bad.csv",
        GOOD_L + "ok 4,fine,Advocay\n",
        ["bad.csv, line 5, column 3 (label):", "label 'Advocay' is not one of LABELS:",
         "'Social Issue Discussion', 'Personal Stories', 'Advocacy', 'Factual Queries/Sharing', 'Others'",
         "Did you mean 'Advocacy'?"],
        {},
    ),
    "field_over_limit": (
        "bad.csv",
        GOOD + "ok 4," + "x" * 101 + "\n",
        ["bad.csv, line 5, column 2 (selftext):", "101 characters, more than MAX_FIELD_CHARS=100",
         "raise MAX_FIELD_CHARS"],
        {"max_field_chars": 100},
    ),
    "multiline_field_over_limit": (
        "bad.csv",
        GOOD + 'ok 4,"' + "y\n" * 60 + '"\n',
        ["bad.csv, lines 5-65, column 2 (selftext):", "120 characters, more than MAX_FIELD_CHARS=100"],
        {"max_field_chars": 100},
    ),
    "id_over_limit": (
        "bad.csv",
        "id,title,selftext\n1,a,b\n2,c,d\n3,e,f\n" + "x" * 201 + ",g,h\n",
        ["bad.csv, line 5, column 1 (id):", "201 characters, more than the id limit=200"],
        {},
    ),
    "malformed_jsonl_line": (
        "bad.jsonl",
        GOOD_J * 2 + '{"title": "broken", "selftext": "no closing brace"\n',
        ["bad.jsonl, line 5, column 51:", "not valid JSON", "one complete object per line"],
        {},
    ),
    "jsonl_missing_key": (
        "bad.jsonl",
        GOOD_J * 2 + '{"title": "x", "body": "y"}\n',
        ["bad.jsonl, line 5:", "missing key 'selftext'", "found: 'title', 'body'"],
        {},
    ),
    "jsonl_not_an_object": (
        "bad.jsonl",
        GOOD_J * 2 + '["x", "y"]\n',
        ["bad.jsonl, line 5:", "expected a JSON object, found an array"],
        {},
    ),
    "jsonl_label_not_in_labels": (
        "bad.jsonl",
        GOOD_J * 2 + '{"title": "x", "selftext": "y", "label": "spam"}\n',
        ["bad.jsonl, line 5, column 'label':", "label 'spam' is not one of LABELS"],
        {},
    ),
    "jsonl_nul_character": (
        "bad.jsonl",
        GOOD_J * 2 + '{"title": "x", "selftext": "a\\u0000b"}\n',
        ["bad.jsonl, line 5:", "NUL character"],
        {},
    ),
    "jsonl_nan": (
        "bad.jsonl",
        GOOD_J * 2 + '{"title": "x", "selftext": "y", "score": NaN}\n',
        ["bad.jsonl, line 5:", "NaN is not valid JSON"],
        {},
    ),
    "json_array_file": (
        "bad.json",
        '[\n  {"title": "x", "selftext": "y"}\n]\n',
        ["bad.json, line 1:", "JSON array of posts, which is not supported", "JSON Lines"],
        {},
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_names_the_problem_and_changes_nothing(case, db_url, tmp_path, engine_for):
    run(write(tmp_path, "seed.csv", "title,selftext,label\nseeded,post,Others\nseed 2,post,\n"), db_url)
    before = snapshot(engine_for, db_url)
    assert len(before[0]) == 2 and len(before[1]) == 1

    name, content, expected, kw = BAD_FILES[case]
    with pytest.raises(ImportFileError) as info:
        run(write(tmp_path, name, content), db_url, batch_size=2, **kw)
    message = str(info.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert str(tmp_path) in message  # the file is named in full
    assert snapshot(engine_for, db_url) == before


def test_missing_file_and_folder(sqlite_url, tmp_path):
    with pytest.raises(ImportFileError, match="no such file"):
        run(tmp_path / "nope.csv", sqlite_url)
    with pytest.raises(ImportFileError, match="is a folder"):
        run(tmp_path, sqlite_url)


def test_import_migrates_a_new_database(tmp_path, engine_for):
    url = f"sqlite:///{tmp_path / 'fresh' / 'new.db'}"
    res = run(write(tmp_path, "a.csv", GOOD), url)
    assert res.added == 3
    assert rows(engine_for, url, "SELECT COUNT(*) FROM items") == [(3,)]


def test_format_option_overrides_the_file_name(sqlite_url, tmp_path, engine_for):
    f = write(tmp_path, "export.txt", '{"title": "A", "selftext": "x"}\n')
    with pytest.raises(ImportFileError, match="missing required column"):
        run(f, sqlite_url)  # .txt is read as CSV
    assert run(f, sqlite_url, fmt="jsonl").added == 1
    with pytest.raises(ImportFileError, match="unknown format 'xml'"):
        run(f, sqlite_url, fmt="xml")
