"""smartlabel.store.items on both backends: the pool (ids, hashes, open posts) and the model
texts, read by id range for long ascending runs (a first fit) and by IN lists otherwise."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from smartlabel.errors import SmartlabelError
from smartlabel.importer import import_file
from smartlabel.settings import load_settings
from smartlabel.store import items as store_items
from smartlabel.text import model_input


@pytest.fixture
def pool_db(db_url, tmp_path, engine_for):
    n = store_items.RANGE_CHUNK + 1500  # two range queries, the second one short
    f = tmp_path / "posts.csv"
    f.write_text("title,selftext\n" + "".join(f"post {i},body {i} &amp; more\n" for i in range(n)), encoding="utf-8")
    import_file(f, db_url, settings=load_settings(database_url=db_url), progress=False, seed=1)
    engine = engine_for(db_url)
    with engine.begin() as conn:  # gaps in the ids, and a few done posts
        conn.execute(text("DELETE FROM items WHERE id IN (5, 6, 7, 20100)"))
        conn.execute(text("UPDATE items SET done = TRUE WHERE id IN (1, 2, 30, 21000)"))
    with engine.connect() as conn:
        expected = {i: model_input(t, c) for i, t, c in conn.execute(text("SELECT id, title, clean_selftext FROM items"))}
    return engine, expected


def test_pool_gives_ids_hashes_and_open_posts_in_id_order(pool_db):
    engine, expected = pool_db
    ids, hashes, open_ids = store_items.pool(engine)
    assert ids.tolist() == sorted(expected)
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT id, content_hash FROM items")).all())
    assert hashes == [stored[i] for i in ids.tolist()]
    assert open_ids.tolist() == [i for i in sorted(expected) if i not in (1, 2, 30, 21000)]


def test_texts_of_the_whole_pool_by_range_and_of_scattered_ids(pool_db):
    engine, expected = pool_db
    ids = sorted(expected)
    assert list(store_items.texts(engine, ids)) == [expected[i] for i in ids]
    scattered = [21400, 3, 17000, 3, 9]  # unsorted, repeated
    assert list(store_items.texts(engine, scattered)) == [expected[i] for i in scattered]
    sparse = ids[::40]  # ascending but far apart: IN lists
    assert list(store_items.texts(engine, sparse)) == [expected[i] for i in sparse]


def test_a_post_gone_from_a_range_is_an_error_not_a_silent_skip(pool_db):
    engine, expected = pool_db
    ids = sorted(expected)
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM items WHERE id = {ids[1234]}"))
    with pytest.raises(SmartlabelError, match=f"post {ids[1234]} disappeared"):
        list(store_items.texts(engine, ids))
