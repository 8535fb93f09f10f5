"""The importer stores exactly what it stored before it was made faster (issue 16).

Two varied files (a CSV with CRLF line ends, a byte-order mark, quoted multi-line fields,
blank lines, an unnamed extra column; and a JSON Lines file with nulls, numbers and nested
extras) hold every case the importer tells apart: new posts, posts repeated in the file
(also with CRLF or outer whitespace), ids reused for another text, empty rows, labels in odd
case, worker ids, a `clean_selftext` given, blank or absent, and bodies full of markdown,
HTML, entities, URLs, Unicode and characters COPY must escape. Each is imported on SQLite and
PostgreSQL, in one batch and in several (several batches are cleaned by the worker processes
on PostgreSQL), then again (nothing added). What is stored, row by row (ids, texts, model
texts, content hashes, extras, queue keys, label counts, labels), and what the import reports
must match tests/data/import_golden.json, written by the importer before the speed-up.

Copies of the CSV with one malformed row late in the file (after several written batches)
must fail with the same message (file, line, column) as before and leave the database empty.

To rewrite the golden file (only when a change of results is intended; say why in the
commit): PYTHONPATH=src python tests/test_import_golden.py --write
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from smartlabel.errors import ImportFileError
from smartlabel.importer import import_file
from smartlabel.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_text_reference import varied_texts  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "data" / "import_golden.json"
LABELS = ["Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others"]
LABEL_SPELLINGS = LABELS + ["others", "ADVOCACY", " Personal Stories ", "factual queries/sharing"]
MAX_FIELD_CHARS = 5000
ROWS = 2000
BATCH_SIZES = [None, 600]  # the backend's default (one batch), and several (cleaned ahead on PostgreSQL)
ODD = ["tab\there", "back\\slash \\N \\.", "new\nline", "crlf\r\ninside", "lone\rcarriage", 'a "quote", comma',
       "semi;colon", "\u00e9\u00fc\u4e2d\u6587 \U0001f600", "&amp; <b>x</b> [l](http://x.y) 1,000 don't", "", " "]


def varied_posts(n: int, seed: int) -> list[dict]:
    """Rows as dicts (column -> text); about 10% repeat an earlier post, 8% reuse an id."""
    rng = random.Random(seed)
    bodies = varied_texts(n, seed=seed + 100, ascii_share=0.5)
    posts, ids, out = [], [], []
    for i in range(n):
        body = rng.choice(ODD) + " " + bodies[i] if rng.random() < 0.3 else bodies[i]
        # NUL is a malformed row of its own (below); lone surrogates are not UTF-8
        body = "".join(" " if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in body)
        row = {"id": f"p{i}" if rng.random() < 0.8 else "", "title": f"Post {i} " + rng.choice(["", "\u00e9t\u00e9", "&amp;"]),
               "selftext": body[:MAX_FIELD_CHARS]}
        kind = rng.random()
        if kind < 0.1 and posts:  # the same post again: maybe CRLF, outer spaces, another id or none
            title, body, old_id = rng.choice(posts)
            variant = rng.choice([body, body.replace("\n", "\r\n"), f"  {body}\n", body])
            row.update(title=rng.choice([title, f" {title} "]), selftext=variant, id=rng.choice(["", f"q{i}", old_id]))
        elif kind < 0.18 and ids:  # an id used before for another text
            row["id"] = rng.choice(ids)
        elif kind < 0.21:  # empty row
            row.update(title=rng.choice(["", " ", "\t"]), selftext=rng.choice(["", "  ", "\r\n"]))
        elif kind < 0.25:
            row["title"] = ""  # a body without a title is a post
        if (row["title"] + row["selftext"]).strip():
            posts.append((row["title"], row["selftext"], row["id"]))
        if row["id"]:
            ids.append(row["id"])
        labelled = rng.random() < 0.3
        row["label"] = rng.choice(LABEL_SPELLINGS) if labelled else rng.choice(["", "", " "])
        row["worker_id"] = rng.choice(["", "ann", " bob ", "carol"]) if labelled else ""
        row["clean_selftext"] = rng.choice(["", "", "", "", " ", f"given model text {i}"])
        row["subreddit"] = rng.choice(["singapore", "askSG", "", "multi\nline", "\u4e2d\u6587"])
        row["score"] = str(rng.randint(-5, 500))
        out.append(row)
    return out


CSV_COLUMNS = ["ID", "Title", "selftext", "clean_selftext", "label", "worker_id", "subreddit", "", "score"]


def csv_lines(posts: list[dict], seed: int) -> list[str]:
    """The CSV's lines (CRLF ends; a record may span lines), blank lines here and there."""
    rng = random.Random(seed)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    out = [buf.getvalue()]
    for p in posts:
        buf.seek(0)
        buf.truncate()
        w.writerow([p["id"], p["title"], p["selftext"], p["clean_selftext"], p["label"], p["worker_id"],
                    p["subreddit"], "unnamed", p["score"]])
        out.append(buf.getvalue())
        if rng.random() < 0.02:
            out.append("\r\n")
    return out


def jsonl_lines(posts: list[dict], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for p in posts:
        obj = {"id": p["id"] or None, "title": p["title"], "selftext": p["selftext"]}
        if rng.random() < 0.5:
            obj["clean_selftext"] = p["clean_selftext"] or rng.choice([None, ""])
        if p["label"].strip():
            obj["label"], obj["worker_id"] = p["label"], p["worker_id"] or None
        obj["subreddit"] = p["subreddit"] or None
        obj["score"] = int(p["score"])
        if rng.random() < 0.2:
            obj["meta"] = {"flair": rng.choice(["a", "\u00e9"]), "tags": [1, 2]}
        out.append(json.dumps(obj, ensure_ascii=rng.random() < 0.5) + "\n")
        if rng.random() < 0.02:
            out.append("\n")
    return out


def write_files(folder: Path) -> dict[str, Path]:
    posts = varied_posts(ROWS, seed=11)
    files = {"csv": folder / "varied.csv", "jsonl": folder / "varied.jsonl"}
    files["csv"].write_bytes(b"\xef\xbb\xbf" + "".join(csv_lines(posts, seed=12)).encode("utf-8"))
    files["jsonl"].write_text("".join(jsonl_lines(posts, seed=13)), encoding="utf-8")
    return files


# one malformed row, inserted as data row BAD_AT (after several batches of 600)
BAD_AT = 1500
MALFORMED = {
    "unclosed quote": b'p9001,"a title never closed,body,,,,,x,1\r\n',
    "too many fields": b"p9001,title,body,,,,,x,1,extra\r\n",
    "too few fields": b"p9001,title,body\r\n",
    "text after a closing quote": b'p9001,"title"junk,body,,,,,x,1\r\n',
    "unknown label": b"p9001,title,body,,Spam,,,x,1\r\n",
    "field too long": b"p9001,title," + b"x" * (MAX_FIELD_CHARS + 1) + b",,,,,x,1\r\n",
    "id too long": b"p" * 201 + b",title,body,,,,,x,1\r\n",
    "worker id too long": b"p9001,title,body,,Others," + b"w" * 201 + b",,x,1\r\n",
    "not UTF-8": b"p9001,caf\xe9,body,,,,,x,1\r\n",
    "NUL byte": b"p9001,title,bo\x00dy,,,,,x,1\r\n",
}


def malformed_file(folder: Path, good_csv: Path, bad_row: bytes) -> Path:
    data = good_csv.read_bytes()
    lines = data.splitlines(keepends=True)
    # the start of data record BAD_AT: count records with the csv module (fields span lines)
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    for _ in range(BAD_AT + 1):
        next(reader)
    at = reader.line_num
    path = folder / "malformed.csv"
    path.write_bytes(b"".join(lines[:at]) + bad_row + b"".join(lines[at:]))
    return path


def _digest(values) -> str:
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def stored(url: str) -> dict:
    """What the database holds: a digest per post and per label, the counters."""
    from smartlabel.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            items = [
                _digest([r.id, r.external_id, r.title, r.selftext, r.clean_selftext,
                         json.loads(r.extra) if isinstance(r.extra, str) else r.extra, r.content_hash, r.rand_key,
                         r.label_count, bool(r.done)])
                for r in conn.execute(text("SELECT * FROM items ORDER BY id"))
            ]
            labels = [_digest([r.id, r.item_id, r.label, r.worker_id, r.handout_reason, bool(r.second_opinion)])
                      for r in conn.execute(text("SELECT * FROM labels ORDER BY id"))]
            counts = conn.execute(text("SELECT SUM(total), SUM(done) FROM item_counts")).one()
    finally:
        engine.dispose()
    return {"items": items, "labels": labels, "counts": [int(c or 0) for c in counts]}


def outcome(res) -> list:
    return [res.rows, res.added, res.already_present, res.duplicates_in_file, res.empty, res.id_conflicts,
            res.labels_added, res.labels_present, res.labels_conflicting, res.notes]


def run(path: Path, url: str, batch_size: int | None):
    s = load_settings(database_url=url, labels=LABELS, max_field_chars=MAX_FIELD_CHARS)
    return import_file(path, url, settings=s, progress=False, seed=7, batch_size=batch_size)


def import_twice(path: Path, url: str, batch_size: int | None) -> dict:
    first = outcome(run(path, url, batch_size))
    state = stored(url)
    second = outcome(run(path, url, batch_size))
    assert stored(url) == state  # the second import adds nothing
    return {"first": first, "second": second, **state}


def error_of(path: Path, url: str, batch_size: int | None) -> str:
    with pytest.raises(ImportFileError) as info:
        run(path, url, batch_size)
    return str(info.value).replace(str(path), "<file>")


def golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def _first_difference(got: list, want: list) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"first difference at position {i} (id order)"
    return f"lengths {len(got)} and {len(want)}"


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_import_stores_what_it_stored_before(kind, batch_size, db_url, tmp_path):
    path = write_files(tmp_path)[kind]
    got, want = import_twice(path, db_url, batch_size), golden()[kind]
    assert got["first"] == want["first"]
    assert got["second"] == want["second"]
    for part in ("items", "labels"):
        assert got[part] == want[part], f"{part}: {_first_difference(got[part], want[part])}"
    assert got["counts"] == want["counts"]
    # the file has every case in it
    rows, added, present, repeated, empty, conflicts, labels, _, _, _ = got["first"]
    assert min(added, repeated, empty, conflicts, labels) > 0 and present == 0


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_row_gives_the_same_error_and_stores_nothing(case, db_url, tmp_path):
    good = write_files(tmp_path)["csv"]
    bad = malformed_file(tmp_path, good, MALFORMED[case])
    before = stored(db_url)
    assert error_of(bad, db_url, 600) == golden()["errors"][case]
    assert stored(db_url) == before


def write_golden() -> None:
    """Write GOLDEN from the importer as it is now, checking SQLite and PostgreSQL agree."""
    import tempfile

    import pgserver
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from smartlabel.migrate import upgrade

    out: dict = {"errors": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_files(folder)
        srv = pgserver.get_server(str(folder / "pg"), cleanup_mode="stop")
        admin = srv.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        counter = iter(range(1000))

        def fresh(backend: str) -> str:
            n = next(counter)
            if backend == "sqlite":
                url = f"sqlite:///{folder / f'g{n}.db'}"
            else:
                eng = create_engine(admin, isolation_level="AUTOCOMMIT")
                with eng.connect() as conn:
                    conn.execute(text(f"CREATE DATABASE g{n}"))
                eng.dispose()
                url = make_url(admin).set(database=f"g{n}").render_as_string(hide_password=False)
            upgrade(url).dispose()
            return url

        try:
            for kind, path in files.items():
                results = [import_twice(path, fresh(b), bs) for b in ("sqlite", "postgresql") for bs in BATCH_SIZES]
                for i, r in enumerate(results[1:]):
                    diff = {k: _first_difference(r[k], results[0][k]) for k in r if r[k] != results[0][k]}
                    assert not diff, f"{kind}: run {i + 1} disagrees with run 0: {diff}"
                out[kind] = results[0]
            for case, row in MALFORMED.items():
                bad = malformed_file(folder, files["csv"], row)
                messages = {error_of(bad, fresh(b), 600) for b in ("sqlite", "postgresql")}
                assert len(messages) == 1, messages
                out["errors"][case] = messages.pop()
        finally:
            srv.cleanup()
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    write_golden()
