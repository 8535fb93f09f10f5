"""PostgreSQL login roles with least privilege (`smartlabel db roles`): the statements.

Each service logs in as a role that may do what it needs and nothing else:

| role                      | for                             | may                                                    |
|---------------------------|---------------------------------|--------------------------------------------------------|
| `smartlabel_labeller`     | the labelling page (Voila)      | read posts, the current run, quality passes; write hand-outs, leases, skips, labels; retract a label; recount a post; no DDL, no DELETE on labels, nothing on `labellers` but the two lookup functions |
| `smartlabel_orchestrator` | retraining, `smartlabel autolabel` | read all but `labellers`; write runs, predictions, the current run, quality tables, its heartbeat; PostgreSQL 17+: MAINTAIN (ANALYZE) on the tables a run changes |
| `smartlabel_reader`       | the dashboard, export, Adminer  | read all but `labellers.key_hash`                       |

How it stays idempotent: every privilege these roles hold in the schema is revoked, then
exactly the matrix below is granted, in one transaction; running it twice gives the same
grants, and a privilege someone granted by hand is taken away again. Tables a later
migration adds get nothing until `smartlabel db roles` runs again (docker compose runs it
after every `db upgrade`).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from smartlabel.store import sql

LABELLER = "smartlabel_labeller"
ORCHESTRATOR = "smartlabel_orchestrator"
READER = "smartlabel_reader"
ROLES = (LABELLER, ORCHESTRATOR, READER)

TABLES = ("items", "labels", "leases", "handouts", "skips", "model_runs", "predictions", "queue_state",
          "quality_runs", "agreement", "suspect_labels", "item_counts", "orchestrator_heartbeat",
          "alembic_version")
VIEWS = ("agreed_labels", "item_status", "labeller_stats")
LABELLER_COLUMNS_NOT_SECRET = ("id", "name", "name_key", "enabled", "created_at", "last_seen_at", "rotated_at")
FUNCTIONS = ("smartlabel_labeller_by_key(text, timestamp)", "smartlabel_labeller_by_name(text, text, timestamp)")

# role -> (privilege, object) pairs; an object "t(a, b)" grants on those columns only
GRANTS: dict[str, list[tuple[str, str]]] = {
    LABELLER: (
        [("SELECT", t) for t in ("items", "labels", "leases", "handouts", "skips", "predictions", "queue_state",
                                 "model_runs", "quality_runs", "suspect_labels", "item_counts",
                                 "alembic_version")]
        + [("INSERT", t) for t in ("labels", "leases", "handouts", "skips")]
        + [("UPDATE", "leases"), ("UPDATE", "items (label_count, done)"), ("UPDATE", "predictions (priority)"),
           ("UPDATE", "labels (retracted_at, retracted_by)")]
        + [("DELETE", "leases"), ("DELETE", "skips")]
    ),
    ORCHESTRATOR: (
        [("SELECT", t) for t in TABLES + VIEWS]
        + [("INSERT", t) for t in ("model_runs", "predictions", "quality_runs", "agreement", "suspect_labels",
                                   "orchestrator_heartbeat")]
        + [("UPDATE", "model_runs"), ("UPDATE", "queue_state (current_run_id, updated_at)"),
           ("UPDATE", "orchestrator_heartbeat (beat_at, state)")]
        + [("DELETE", t) for t in ("predictions", "quality_runs", "agreement", "suspect_labels",
                                   "orchestrator_heartbeat")]
    ),
    READER: (
        [("SELECT", t) for t in TABLES + VIEWS]
        + [("SELECT", f"labellers ({', '.join(LABELLER_COLUMNS_NOT_SECRET)})")]
    ),
}
# PostgreSQL 17+: the orchestrator may ANALYZE the tables a run changes (`smartlabel.store.stats`);
# before 17 only an owner may, and the orchestrator leaves it to autovacuum and the importer
MAINTAIN_FROM = 170000
MAINTAIN = {ORCHESTRATOR: ("items", "labels", "predictions", "model_runs", "leases", "handouts", "skips")}
# sequences behind the id columns a role inserts into (nextval needs USAGE)
SEQUENCES = {LABELLER: ("labels", "handouts"), ORCHESTRATOR: ("model_runs", "agreement", "orchestrator_heartbeat"),
             READER: ()}
EXECUTE = {LABELLER: FUNCTIONS, ORCHESTRATOR: (), READER: ()}

WHO_AM_I = sql("""
    SELECT current_user, quote_ident(current_schema()), current_database(), r.rolsuper, r.rolcreaterole
    FROM pg_roles r WHERE r.rolname = current_user""")
ROLE_EXISTS = sql("SELECT 1 FROM pg_roles WHERE rolname = :role")
SERIAL_SEQUENCE = sql("SELECT pg_get_serial_sequence(:table, 'id')")
# what a role holds here, for checks and tests: table, column and function privileges
TABLE_GRANTS = sql("""
    SELECT table_name, privilege_type FROM information_schema.role_table_grants
    WHERE grantee = :role AND table_schema = current_schema() ORDER BY 1, 2""")
COLUMN_GRANTS = sql("""
    SELECT table_name, column_name, privilege_type FROM information_schema.column_privileges
    WHERE grantee = :role AND table_schema = current_schema() ORDER BY 1, 2, 3""")
ROUTINE_GRANTS = sql("""
    SELECT routine_name, privilege_type FROM information_schema.role_routine_grants
    WHERE grantee = :role AND routine_schema = current_schema() ORDER BY 1, 2""")


def whoami(conn: Connection) -> dict:
    """current_user, the schema (quoted), the database, and whether the user may create roles."""
    user, schema, database, superuser, createrole = conn.execute(WHO_AM_I).one()
    return {"user": user, "schema": schema, "database": database, "may_create_roles": superuser or createrole}


def _ident(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def ensure_role(conn: Connection, role: str, verifier: str) -> bool:
    """Create the login role if missing (True when created); set its attributes and password (a
    SCRAM verifier, so the clear password never reaches the server or its log)."""
    who = _ident(conn, role)
    new = conn.execute(ROLE_EXISTS, {"role": role}).first() is None
    if new:
        conn.exec_driver_sql(f"CREATE ROLE {who} LOGIN")
    conn.execute(sql(f"ALTER ROLE {who} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                     "NOBYPASSRLS PASSWORD :verifier"), {"verifier": verifier})
    return new


def grant(conn: Connection, role: str, schema: str, database: str) -> None:
    """Revoke all the role holds in the schema, then grant exactly its privileges."""
    who = _ident(conn, role)
    for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
        conn.exec_driver_sql(f"REVOKE ALL ON ALL {kind} IN SCHEMA {schema} FROM {who}")
    conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {_ident(conn, database)} TO {who}")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {who}")
    for privilege, target in GRANTS[role]:
        conn.exec_driver_sql(f"GRANT {privilege} {_columns(target)} ON {schema}.{target.split(' ')[0]} TO {who}")
    if int(conn.exec_driver_sql("SHOW server_version_num").scalar()) >= MAINTAIN_FROM:
        for table in MAINTAIN.get(role, ()):
            conn.exec_driver_sql(f"GRANT MAINTAIN ON {schema}.{table} TO {who}")
    for table in SEQUENCES[role]:
        sequence = conn.execute(SERIAL_SEQUENCE, {"table": f"{schema}.{table}"}).scalar_one()
        conn.exec_driver_sql(f"GRANT USAGE ON SEQUENCE {sequence} TO {who}")
    for function in EXECUTE[role]:
        conn.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION {schema}.{function} TO {who}")


def close_the_schema(conn: Connection, schema: str) -> None:
    """No role but the schema's owner may create objects in it (PostgreSQL before 15 let PUBLIC)."""
    conn.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC")


def _columns(target: str) -> str:
    """'t (a, b)' -> '(a, b)' (column privileges), 't' -> ''."""
    return target[target.index("("):] if "(" in target else ""


def held(conn: Connection, role: str) -> dict[str, list[tuple]]:
    """The role's privileges in this schema: tables, columns, functions."""
    return {name: [tuple(r) for r in conn.execute(stmt, {"role": role})]
            for name, stmt in (("tables", TABLE_GRANTS), ("columns", COLUMN_GRANTS), ("functions", ROUTINE_GRANTS))}
