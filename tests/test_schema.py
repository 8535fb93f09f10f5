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


def test_0004_keeps_every_label_and_its_downgrade_drops_only_retracted_ones(db_url, engine_for):
    """Upgrading an existing database to 0004 keeps its labels (none retracted); the downgrade
    (the old schema's undo deleted) removes retracted labels only, and the old views answer."""
    engine = engine_for(db_url)
    downgrade(engine, "0003")
    a, b = seed_items(engine, 2)
    with engine.begin() as conn:
        for item, worker in [(a, "ann"), (b, "ann"), (b, "bob")]:
            conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at) "
                              "VALUES (:i, 'Advocacy', :w, CURRENT_TIMESTAMP)"), {"i": item, "w": worker})
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM labels WHERE retracted_at IS NULL")).scalar_one() == 3
        conn.execute(text("UPDATE labels SET retracted_at = CURRENT_TIMESTAMP, retracted_by = 'bob' "
                          "WHERE worker_id = 'bob'"))
        assert conn.execute(text("SELECT votes FROM agreed_labels WHERE item_id = :b"), {"b": b}).scalar_one() == 1
    downgrade(engine, "0003")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT item_id, worker_id FROM labels ORDER BY id")).all() == [(a, "ann"), (b, "ann")]
        assert conn.execute(text("SELECT votes FROM agreed_labels WHERE item_id = :b"), {"b": b}).scalar_one() == 1
    assert "labellers" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_the_key_lookup_functions_are_not_public(pg_url, engine_for):
    """PostgreSQL: the SECURITY DEFINER functions exist with a fixed search path, and PUBLIC may
    not call them (only the roles `smartlabel db roles` grants EXECUTE to; the counting
    trigger's function runs from its triggers only)."""
    engine = engine_for(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT p.proname, p.prosecdef, p.proconfig,
                   has_function_privilege('public', p.oid, 'EXECUTE') AS public_may
            FROM pg_proc p WHERE p.proname LIKE 'smartlabel\\_%' ORDER BY 1""")).all()
    assert [r.proname for r in rows] == ["smartlabel_count_items", "smartlabel_labeller_by_key",
                                         "smartlabel_labeller_by_name"]
    for r in rows:
        assert r.prosecdef and not r.public_may
        assert r.proconfig == ["search_path=public, pg_temp"]
