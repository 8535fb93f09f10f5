"""The shipped demo data `aldata.csv`: its shape, and importing it for real on both backends."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from smartlabel.importer import import_file
from smartlabel.settings import load_settings
from smartlabel.text import clean_text, content_hash

ROOT = Path(__file__).resolve().parents[1]
ALDATA = ROOT / "aldata.csv"


def read_rows():
    with open(ALDATA, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_aldata_has_the_articles_columns_and_real_readable_posts():
    rows = read_rows()
    assert 2000 <= len(rows) <= 5000
    assert ALDATA.stat().st_size < 5_000_000
    assert list(rows[0]) == [
        "id", "title", "selftext", "clean_selftext", "reuters_topics", "reuters_places", "reuters_date",
    ]
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({content_hash(r["title"], r["selftext"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["title"].strip() and len(r["selftext"]) >= 200
        assert r["reuters_topics"]
        # clean_selftext is exactly what the project's cleaner makes of the body: the file
        # was built with the current smartlabel.text (rebuild with scripts/make_aldata.py)
        assert r["clean_selftext"] == clean_text(r["selftext"])
        assert "\x03" not in r["selftext"] and not r["selftext"].rstrip().lower().endswith("reuter")
    first = next(r for r in rows if r["id"] == "reuters21578-19")
    assert first["title"] == "BONUS WHEAT FLOUR FOR NORTH YEMEN -- USDA"
    assert first["selftext"].startswith("The Commodity Credit Corporation, CCC, has accepted an export bonus")
    assert first["reuters_topics"] == "wheat;grain"


def test_importing_aldata_adds_every_post_once(db_url, engine_for):
    expected = len(read_rows())
    settings = load_settings(database_url=db_url)
    first = import_file(ALDATA, db_url, settings=settings, progress=False)
    assert (first.rows, first.added, first.already_present, first.labels_added) == (expected, expected, 0, 0)
    second = import_file(ALDATA, db_url, settings=settings, progress=False)
    assert (second.rows, second.added, second.already_present) == (expected, 0, expected)
    with engine_for(db_url).connect() as conn:
        n, n_ext, n_extra = conn.execute(
            text("SELECT COUNT(*), COUNT(DISTINCT external_id), COUNT(extra) FROM items")
        ).one()
        topics = conn.execute(
            text("SELECT extra FROM items WHERE external_id = 'reuters21578-19'")
        ).scalar_one()
    assert (n, n_ext, n_extra) == (expected, expected, expected)
    topics = topics if isinstance(topics, dict) else json.loads(topics)
    assert topics["reuters_topics"] == "wheat;grain"


def test_make_aldata_script_explains_itself():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_aldata.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "--check" in res.stdout and "--tarball" in res.stdout
