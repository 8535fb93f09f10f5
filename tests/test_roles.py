"""Least-privilege database roles (`smartlabel db roles`) on the real PostgreSQL (pgserver).

Each test creates the three roles in a fresh test database and then connects AS them: the
labelling flow runs as smartlabel_labeller, retraining and autolabel as
smartlabel_orchestrator, the dashboard and export as smartlabel_reader, and what a role may
not do fails with PostgreSQL's own "permission denied".

About passwords: pgserver's initdb trusts every local connection (`--auth=trust`), which
would accept any password. The `scram` fixture therefore puts lines for the three roles at
the top of the server's pg_hba.conf (first match wins) so that their logins need the
SCRAM password `db roles` set, and takes them out again afterwards. With that, these tests
prove privileges AND password logins for the roles; they do not prove docker compose's own
pg_hba (the postgres image's scram-sha-256 for every host connection, tests/test_deploy.py
checks its settings). With TEST_DATABASE_URL (a server whose pg_hba we leave alone) the
password checks are skipped and only privileges are proven.
"""

from __future__ import annotations

import logging

import os
from pathlib import Path

import pytest
import scipy.stats  # noqa: F401  before the page's widget is imported: see the note in the orchestrator test
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from typer.testing import CliRunner

from smartlabel.cli import app
from smartlabel.store.roles import LABELLER, ORCHESTRATOR, READER, ROLES

from helpers import seed_items

PASSWORDS = {LABELLER: "labeller-test-password-1", ORCHESTRATOR: "orchestrator-test-password-2",
             READER: "reader-test-password-3"}
ENV = {"LABELLER_DB_PASSWORD": PASSWORDS[LABELLER], "ORCHESTRATOR_DB_PASSWORD": PASSWORDS[ORCHESTRATOR],
       "READER_DB_PASSWORD": PASSWORDS[READER]}
DENIED = "42501"  # SQLSTATE insufficient_privilege


@pytest.fixture(scope="module")
def scram(pg_admin_url):
    """True when the three roles must log in with their passwords (see the module docstring)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield False
        return
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        hba = Path(conn.execute(text("SHOW hba_file")).scalar_one())
    original = hba.read_text()
    who = ",".join(ROLES)
    hba.write_text(f"local all {who} scram-sha-256\nhost all {who} 127.0.0.1/32 scram-sha-256\n"
                   f"host all {who} ::1/128 scram-sha-256\n{original}")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_reload_conf()"))
        yield True
    finally:
        hba.write_text(original)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_reload_conf()"))
        admin.dispose()


def db_roles(url, **env):
    return CliRunner().invoke(app, ["db", "roles"], env={"DATABASE_URL": url, **ENV, **env}, prog_name="smartlabel")


def as_role(url: str, role: str, password: str | None = None) -> str:
    return make_url(url).set(username=role, password=password or PASSWORDS[role]).render_as_string(
        hide_password=False)


@pytest.fixture
def team_db(pg_url, scram):
    """A fresh migrated database with the three roles granted; {role: its URL} plus 'owner'."""
    result = db_roles(pg_url)
    assert result.exit_code == 0, result.output
    urls = {role: as_role(pg_url, role) for role in ROLES}
    urls["owner"] = pg_url
    return urls


def denied(engine, statement: str, params: dict | None = None) -> bool:
    """True when PostgreSQL refuses the statement for lack of privilege (nothing is changed)."""
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params or {})
    except ProgrammingError as exc:
        return getattr(exc.orig, "pgcode", None) == DENIED
    return False


def one(url, sql, **params):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).all()
    finally:
        engine.dispose()


# --- the command ---------------------------------------------------------------------------


def test_db_roles_creates_three_login_roles_that_are_not_superusers(team_db):
    rows = one(team_db["owner"], """
        SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
               left(rolpassword, 14) FROM pg_authid WHERE rolname LIKE 'smartlabel\\_%' ORDER BY rolname""")
    assert rows == [(role, True, False, False, False, False, False, "SCRAM-SHA-256$") for role in sorted(ROLES)]
    members = one(team_db["owner"], """
        SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
        WHERE r.rolname LIKE 'smartlabel\\_%'""")
    assert members == [], "no role is a member of another (pg_read_server_files and the like)"


def test_db_roles_is_idempotent_and_takes_back_what_was_granted_by_hand(team_db):
    from smartlabel.store import roles as store_roles

    def grants():
        engine = create_engine(team_db["owner"])
        try:
            with engine.connect() as conn:
                return {role: store_roles.held(conn, role) for role in ROLES}
        finally:
            engine.dispose()

    first = grants()
    assert db_roles(team_db["owner"]).exit_code == 0
    assert grants() == first
    labeller = first[LABELLER]
    assert ("labels", "DELETE") not in labeller["tables"] and ("labels", "INSERT") in labeller["tables"]
    assert {c for t, c, p in labeller["columns"] if t == "labels" and p == "UPDATE"} == {"retracted_at",
                                                                                         "retracted_by"}
    assert {c for t, c, p in labeller["columns"] if t == "items" and p == "UPDATE"} == {"label_count", "done"}
    assert not [g for g in labeller["tables"] if g[0] == "labellers"]
    assert {r for r, _ in labeller["functions"]} == {"smartlabel_labeller_by_key", "smartlabel_labeller_by_name"}
    assert {c for t, c, _ in first[READER]["columns"] if t == "labellers"} == {
        "id", "name", "name_key", "enabled", "created_at", "last_seen_at", "rotated_at"}
    assert {p for _, p in first[READER]["tables"]} == {"SELECT"}
    owner = create_engine(team_db["owner"])
    with owner.begin() as conn:  # someone widens a role by hand ...
        conn.execute(text(f"GRANT DELETE ON labels TO {LABELLER}"))
        conn.execute(text(f"GRANT SELECT ON labellers TO {READER}"))
    owner.dispose()
    assert grants() != first
    assert db_roles(team_db["owner"]).exit_code == 0  # ... and running it again takes it back
    assert grants() == first


def test_db_roles_refuses_sqlite(tmp_path):
    path = tmp_path / "one-user.db"
    result = db_roles(f"sqlite:///{path}")
    assert result.exit_code == 1
    assert result.output.strip() == "error: roles are a PostgreSQL feature; SQLite has one user (nothing to do)"
    assert not path.exists()


@pytest.mark.parametrize("missing", ["LABELLER_DB_PASSWORD", "READER_DB_PASSWORD"])
def test_a_missing_password_is_named_and_nothing_changes(pg_url, missing):
    before = one(pg_url, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE 'smartlabel\\_%' ORDER BY 1")
    grants = "SELECT COUNT(*) FROM information_schema.role_table_grants WHERE grantee LIKE 'smartlabel\\_%'"
    granted = one(pg_url, grants)
    result = db_roles(pg_url, **{missing: ""})
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"error: {missing} is not set")
    assert "nothing was changed" in result.output and result.output.strip().count("\n") == 0
    assert one(pg_url, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE 'smartlabel\\_%' "
                       "ORDER BY 1") == before
    assert one(pg_url, grants) == granted


def test_a_short_password_is_refused(pg_url):
    result = db_roles(pg_url, ORCHESTRATOR_DB_PASSWORD="short")
    assert result.exit_code == 1 and "ORCHESTRATOR_DB_PASSWORD: use at least 16 characters" in result.output


def test_only_the_owner_may_run_it(team_db):
    result = db_roles(team_db[LABELLER])
    assert result.exit_code == 1
    assert "smartlabel_labeller may not create roles" in result.output or "may not do this" in result.output


# --- what the labeller role may not do ---------------------------------------------------------


def test_the_labeller_role_cannot_change_the_schema_delete_labels_or_read_secrets(team_db, scram):
    (post,) = seed_items(team_db["owner"], 1)
    one_label = "INSERT INTO labels (item_id, label, worker_id, created_at) VALUES (:i, 'Advocacy', 'ann', now())"
    owner = create_engine(team_db["owner"])
    with owner.begin() as conn:
        conn.execute(text(one_label), {"i": post})
    engine = create_engine(team_db[LABELLER])
    try:
        for statement in ("DROP TABLE labels", "ALTER TABLE items ADD COLUMN evil integer",
                          "ALTER TABLE labels DROP COLUMN label", "CREATE TABLE evil (x integer)",
                          "CREATE VIEW evil AS SELECT 1", "DELETE FROM labels", "TRUNCATE labels",
                          "UPDATE labels SET label = 'Others'", "UPDATE labels SET worker_id = 'bob'",
                          "UPDATE items SET title = 'changed'", "DELETE FROM items", "DELETE FROM model_runs",
                          "SELECT * FROM labellers", "SELECT key_hash FROM labellers", "SELECT name FROM labellers",
                          "SELECT * FROM pg_authid", "SELECT rolpassword FROM pg_authid",
                          "COPY labels TO PROGRAM 'true'", "COPY labels FROM PROGRAM 'true'",
                          "SELECT pg_read_file('/etc/passwd')"):
            assert denied(engine, statement), statement
        with engine.connect() as conn:
            assert conn.execute(text("SELECT rolsuper, rolcreaterole FROM pg_roles "
                                     "WHERE rolname = current_user")).one() == (False, False)
            assert conn.execute(text("SELECT COUNT(*) FROM labels")).scalar_one() == 1  # reading is fine
    finally:
        engine.dispose()
        owner.dispose()
    assert one(team_db["owner"], "SELECT COUNT(*), MIN(label) FROM labels") == [(1, "Advocacy")]


def test_the_reader_only_reads_and_the_orchestrator_cannot_touch_labels(team_db):
    seed_items(team_db["owner"], 1)
    reader, orch = create_engine(team_db[READER]), create_engine(team_db[ORCHESTRATOR])
    try:
        for statement in ("INSERT INTO labels (item_id, label, worker_id, created_at) "
                          "SELECT id, 'Advocacy', 'r', now() FROM items", "UPDATE items SET done = true",
                          "DELETE FROM predictions", "UPDATE queue_state SET current_run_id = NULL",
                          "SELECT key_hash FROM labellers", "SELECT smartlabel_labeller_by_key('x', now()::timestamp)"):
            assert denied(reader, statement), statement
        with reader.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM labellers")).scalar_one() == 0  # names, not keys
            assert conn.execute(text("SELECT COUNT(*) FROM item_status")).scalar_one() == 1
        for statement in ("INSERT INTO labels (item_id, label, worker_id, created_at) "
                          "SELECT id, 'Advocacy', 'o', now() FROM items", "DELETE FROM labels",
                          "UPDATE labels SET retracted_at = now()", "UPDATE items SET done = true",
                          "SELECT name FROM labellers", "DROP TABLE predictions"):
            assert denied(orch, statement), statement
    finally:
        reader.dispose()
        orch.dispose()


def test_a_wrong_password_is_refused(team_db, scram):
    if not scram:
        pytest.skip("TEST_DATABASE_URL: this server's pg_hba decides about passwords, not this test")
    engine = create_engine(as_role(team_db["owner"], LABELLER, "not-the-password"))
    with pytest.raises(OperationalError, match="password authentication failed"):
        engine.connect().close()
    engine.dispose()
    assert one(team_db[LABELLER], "SELECT current_user") == [(LABELLER,)]


# --- each service's work, as its role -------------------------------------------------------------


def test_the_whole_labelling_flow_runs_as_the_labeller_role(team_db):
    from smartlabel import labellers
    from smartlabel.db import make_engine
    from smartlabel.interface import LabellingPage
    from smartlabel.settings import load_settings
    from smartlabel.store import predictions, runs

    owner = make_engine(team_db["owner"])
    ids = seed_items(owner, 6)
    run = runs.start(owner, model_kind="lr")
    runs.finish(owner, run, "ok", n_labels=40, cv_accuracy=0.77)
    predictions.write(owner, run, ids, [float(len(ids) - k) for k in range(len(ids))],
                      predicted_labels=["Advocacy"] * 6, confidences=[0.5] * 6)
    runs.set_current(owner, run)
    key = labellers.add(owner, "Ann").key

    def page(query, **extra):
        settings = load_settings(**{"database_url": team_db[LABELLER], "shuffle_prop": 0.0, "audit_share": 0.0,
                                    "review_share": 0.0, **extra})
        return LabellingPage(settings, query, min_seconds_on_post=0)

    def press(p, name):
        p.widget.labelling_widget.control_elements.buttons[name].button.click()

    ann = page(f"key={key}", labeller_keys="required")
    w = ann.widget
    assert ann.worker == "Ann" and w.state == "item", ann.body.children
    assert "CV accuracy 77%" in w.model_html.value and "40 labels" in w.model_html.value
    first = w.current_item_id
    assert first == ids[0]  # the current run's top priority
    press(ann, "Advocacy")  # submit (recount, sink, release)
    second = w.current_item_id
    w.labelling_widget.skip_button.click()  # skip
    third = w.current_item_id
    press(ann, "Others")
    w.labelling_widget.undo_button.click()  # un-pop, then retract the label of `third`
    assert w.current_item_id == third
    assert "<b>1</b> by you" in w.counts_html.value
    assert page("key=" + "x" * 43, labeller_keys="required").widget is None  # the invalid-link page
    bob = page("worker=%20BOB%20", labeller_keys="off")  # a typed name: the by-name function
    assert bob.worker == "BOB" and bob.widget.state == "item"
    for share in ("audit_share", "review_share", "shuffle_prop"):  # every hand-out path's SQL
        page("worker=cat", labeller_keys="off", **{share: 1.0}).widget.labelling_widget.skip_button.click()
    assert one(team_db["owner"], "SELECT item_id, label, worker_id, retracted_by FROM labels ORDER BY id") == [
        (first, "Advocacy", "Ann", None), (third, "Others", "Ann", "Ann")]
    assert one(team_db["owner"], "SELECT item_id, worker_id FROM skips WHERE worker_id = 'Ann'") == [(second, "Ann")]
    assert one(team_db["owner"], "SELECT done FROM items WHERE id = :i", i=first) == [(True,)]
    assert one(team_db["owner"], "SELECT last_seen_at IS NOT NULL FROM labellers WHERE name = 'Ann'") == [(True,)]
    owner.dispose()


@pytest.mark.slow
def test_orchestrator_and_autolabel_run_as_the_orchestrator_role(team_db, tmp_path, caplog):
    from smartlabel.export import autolabel

    from test_orchestrator import orchestrator
    from text_corpus import label_with_queue, queue_settings, seed_corpus

    # Note: the page's widget imports superintendent with its training stack stood in
    # (interface.stand_ins: only while it is imported, only modules not loaded yet); this module
    # imports scipy.stats first, so in this test process, which trains too, no stand-in is made.
    ids, truth = seed_corpus(team_db["owner"], 10)
    label_with_queue(team_db["owner"], dict(zip(ids, truth)), per_worker=8)
    models = tmp_path / "models"
    with caplog.at_level(logging.INFO, logger="smartlabel.orchestrator"):
        result = orchestrator(team_db[ORCHESTRATOR], models).tick()
    assert result.status == "ok", result
    # ANALYZE: PostgreSQL 17+ lets the role (MAINTAIN from `db roles`); before 17 it is skipped, said once
    analyzed = one(team_db["owner"], "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                   "WHERE relname = 'predictions'")
    if one(team_db["owner"], "SHOW server_version_num")[0][0] >= "170000":
        assert analyzed == [(True,)]
    else:
        assert analyzed == [(False,)]
        said = [r.getMessage() for r in caplog.records if "ANALYZE skipped" in r.getMessage()]
        assert len(said) == 1 and f"role {ORCHESTRATOR} may not" in said[0] and "before 17" in said[0]
    assert one(team_db["owner"], "SELECT COUNT(*) FROM quality_runs WHERE run_id = :r", r=result.run_id) == [(1,)]
    assert one(team_db["owner"], "SELECT current_run_id FROM queue_state") == [(result.run_id,)]
    auto = autolabel(queue_settings(team_db[ORCHESTRATOR], models_dir=str(models)), progress=False)
    assert auto.n_scored == len(ids) - 24
    assert one(team_db["owner"], "SELECT kind, status FROM model_runs WHERE id = :r", r=auto.run_id) == [
        ("autolabel", "ok")]


def test_the_dashboard_and_export_read_as_the_reader_role(team_db, tmp_path):
    from smartlabel.dashboard import check_schema, dashboard_data
    from smartlabel.db import make_engine
    from smartlabel.export import export

    from text_corpus import label_with_queue, queue_settings, seed_corpus

    ids, truth = seed_corpus(team_db["owner"], 4)
    label_with_queue(team_db["owner"], dict(zip(ids, truth)), per_worker=2)
    reader = make_engine(team_db[READER])
    check_schema(reader)
    data = dashboard_data(reader, ["Advocacy", "Others", "Personal Stories"])
    assert data["pool"]["labels"] == 6 and len(data["labellers"]) == 3
    result = export(tmp_path / "out.csv", queue_settings(team_db[READER]), progress=False)
    assert result.rows == len(ids) and result.human == 6
    reader.dispose()
