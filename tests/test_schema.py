"""The migrated schema equals the declared tables, and the Adminer views answer."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from smartlabel.db import metadata
from smartlabel.migrate import current_revision, downgrade, head_revision, upgrade
from helpers import seed_items


def test_migrated_schema_equals_declared_tables(db_url, engine_for):
    engine = engine_for(db_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []
    names = set(inspect(engine).get_view_names())
    assert {"item_status", "labeller_stats", "agreed_labels"} <= names


def test_upgrade_is_idempotent_and_downgrade_reverses(db_url, engine_for):
    engine = engine_for(db_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert "items" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_views_show_agreement_and_labeller_stats(db_url, engine_for):
    engine = engine_for(db_url)
    a, b = seed_items(engine, 2)
    with engine.begin() as conn:
        for item, label, worker in [(a, "Advocacy", "ann"), (a, "Advocacy", "bob"), (a, "Others", "cat"),
                                    (b, "Advocacy", "ann"), (b, "Others", "bob")]:
            conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at) "
                              "VALUES (:i, :l, :w, CURRENT_TIMESTAMP)"), {"i": item, "l": label, "w": worker})
        status = {r.item_id: r for r in conn.execute(text("SELECT * FROM item_status"))}
        stats = {r.worker_id: r.labels for r in conn.execute(text("SELECT * FROM labeller_stats"))}
    assert status[a].agreed_label == "Advocacy"  # 2 votes to 1
    assert status[b].agreed_label is None  # a tie has no agreed label
    assert "ann: Advocacy" in status[a].human_labels and "cat: Others" in status[a].human_labels
    assert stats == {"ann": 2, "bob": 2, "cat": 1}
