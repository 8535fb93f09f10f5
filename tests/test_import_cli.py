"""`smartlabel import` as a user runs it: a real subprocess with DATABASE_URL set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def smartlabel(*args, database_url, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("LABELS", "OVERLAP", "MAX_FIELD_CHARS")}
    env.update({"PYTHONPATH": str(SRC), "DATABASE_URL": database_url, **(extra_env or {})})
    return subprocess.run(
        [sys.executable, "-m", "smartlabel", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def counts(engine_for, url):
    with engine_for(url).connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in ("items", "labels")
        )


def test_import_prints_a_summary_and_a_second_run_adds_nothing(db_url, tmp_path, engine_for):
    f = tmp_path / "posts.csv"
    f.write_text(
        "title,selftext,label,worker_id,flair\n"
        "First,body one,Advocacy,ann,x\nSecond,body two,,,y\nThird,body three,Others,,z\n",
        encoding="utf-8",
    )
    article = {"LABELS": "article"}  # the file's labels are the article's tags
    first = smartlabel("import", str(f), database_url=db_url, extra_env=article)
    assert first.returncode == 0, first.stderr
    assert "posts added:      3" in first.stdout
    assert "labels imported:  2" in first.stdout
    assert counts(engine_for, db_url) == (3, 2)

    second = smartlabel("import", str(f), "--no-progress", database_url=db_url, extra_env=article)
    assert second.returncode == 0, second.stderr
    assert "posts added:      0" in second.stdout
    assert "already present:  3" in second.stdout
    assert "labels present:   2" in second.stdout
    assert counts(engine_for, db_url) == (3, 2)


def test_bad_file_exits_non_zero_with_one_clear_line_and_imports_nothing(sqlite_url, tmp_path, engine_for):
    f = tmp_path / "labels.csv"
    f.write_text("title,selftext,label\na,b,Others\nc,d,Spam\n", encoding="utf-8")
    res = smartlabel("import", str(f), database_url=sqlite_url, extra_env={"LABELS": '["Others","Ham"]'})
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"error: {f}, line 3, column 3 (label): label 'Spam' is not one of LABELS: 'Others', 'Ham'. "
        "Fix the label in the file, or add it to LABELS (setting) if it is a tag you want."
    )
    assert "Traceback" not in res.stderr
    assert counts(engine_for, sqlite_url) == (0, 0)


def test_undecodable_file_through_the_cli(sqlite_url, tmp_path, engine_for):
    f = tmp_path / "latin1.csv"
    f.write_bytes("title,selftext\nok,fine\ncaf\u00e9,cr\u00e8me\n".encode("latin-1"))
    res = smartlabel("import", str(f), "--database-url", sqlite_url, database_url="sqlite:///unused.db")
    assert res.returncode == 1
    assert f"{f}, line 3, column 4: byte 0xe9 at byte offset 26 is not valid UTF-8" in res.stderr
    assert "re-save it as UTF-8" in res.stderr
    assert counts(engine_for, sqlite_url) == (0, 0)
    assert not (ROOT / "unused.db").exists()


def test_missing_file_and_help(sqlite_url, tmp_path):
    res = smartlabel("import", str(tmp_path / "nope.csv"), database_url=sqlite_url)
    assert res.returncode == 1 and "no such file" in res.stderr
    helped = smartlabel("import", "--help", database_url=sqlite_url)
    assert helped.returncode == 0
    for option in ("--format", "--worker-id", "--batch-size", "--database-url", "--no-progress"):
        assert option in helped.stdout
