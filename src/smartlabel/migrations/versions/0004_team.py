"""a labelling team: labellers with personal keys; undo retracts a label instead of deleting it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

- table `labellers` (canonical name, case-folded `name_key`, SHA-256 of the personal key);
- `labels.retracted_at`, `labels.retracted_by`: an undo marks the label, it stays in the table;
- the views ignore retracted labels (new frozen copies below) and show them apart
  (`item_status.retracted_labels`, `labeller_stats.retracted`);
- PostgreSQL: two SECURITY DEFINER functions through which the labelling page (role
  smartlabel_labeller, which may not read `labellers`) looks a key or a typed name up.

Downgrade: the old schema knew no retraction (its undo deleted), so retracted labels are
deleted before the columns go; live labels, and so every count, stay as they were.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table('labellers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_key', sa.String(length=200), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.Column('rotated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labellers')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_labellers_key_hash')),
    sa.UniqueConstraint('name_key', name=op.f('uq_labellers_name_key'))
    )
    for statement in _drop_view_sql():
        op.execute(sa.text(statement))
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retracted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('retracted_by', sa.String(length=200), nullable=True))
    for statement in _create_view_sql(dialect, NEW_VIEWS):
        op.execute(sa.text(statement))
    if dialect == 'postgresql':
        schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
        for statement in FUNCTIONS:
            op.execute(sa.text(statement.format(schema=schema)))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        for statement in DROP_FUNCTIONS:
            op.execute(sa.text(statement))
    for statement in _drop_view_sql():
        op.execute(sa.text(statement))
    op.execute(sa.text("DELETE FROM labels WHERE retracted_at IS NOT NULL"))
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_column('retracted_by')
        batch_op.drop_column('retracted_at')
    for statement in _create_view_sql(dialect, OLD_VIEWS):
        op.execute(sa.text(statement))
    op.drop_table('labellers')


# --- PostgreSQL functions (frozen here). SECURITY DEFINER: they run with the rights of
# their owner (the role that ran this migration), so the labeller role needs EXECUTE on
# them and nothing on `labellers`; the search path is fixed (pg_temp last) so no object
# the caller creates can stand in for ours. EXECUTE is revoked from PUBLIC: only roles
# `smartlabel db roles` grants it to may call them.

BY_KEY = """
CREATE OR REPLACE FUNCTION {schema}.smartlabel_labeller_by_key(p_key_hash text, p_now timestamp)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {schema}, pg_temp
AS $fn$
DECLARE
    v_id integer;
    v_name text;
    v_seen timestamp;
BEGIN
    SELECT l.id, l.name, l.last_seen_at INTO v_id, v_name, v_seen
    FROM labellers l WHERE l.key_hash = p_key_hash AND l.enabled;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    -- last seen, to the minute: a click does not rewrite the row every time
    IF v_seen IS NULL OR v_seen < p_now - interval '60 seconds' THEN
        UPDATE labellers SET last_seen_at = p_now WHERE id = v_id;
    END IF;
    RETURN v_name;
END
$fn$
"""

BY_NAME = """
CREATE OR REPLACE FUNCTION {schema}.smartlabel_labeller_by_name(p_name text, p_name_key text, p_now timestamp)
RETURNS TABLE (labeller_name text, labeller_enabled boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {schema}, pg_temp
AS $fn$
BEGIN
    INSERT INTO labellers AS l (name, name_key, enabled, created_at, last_seen_at)
    VALUES (p_name, p_name_key, true, p_now, p_now)
    ON CONFLICT (name_key) DO UPDATE SET last_seen_at = p_now
        WHERE l.last_seen_at IS NULL OR l.last_seen_at < p_now - interval '60 seconds';
    RETURN QUERY SELECT l.name::text, l.enabled FROM labellers l WHERE l.name_key = p_name_key;
END
$fn$
"""

FUNCTIONS = [
    BY_KEY,
    BY_NAME,
    "REVOKE ALL ON FUNCTION {schema}.smartlabel_labeller_by_key(text, timestamp) FROM PUBLIC",
    "REVOKE ALL ON FUNCTION {schema}.smartlabel_labeller_by_name(text, text, timestamp) FROM PUBLIC",
]

DROP_FUNCTIONS = [
    "DROP FUNCTION IF EXISTS smartlabel_labeller_by_key(text, timestamp)",
    "DROP FUNCTION IF EXISTS smartlabel_labeller_by_name(text, text, timestamp)",
]


# --- the views of this revision, frozen here: retracted labels are left out ---

NEW_AGREED_LABELS = """
CREATE VIEW agreed_labels AS
WITH votes AS (
    SELECT item_id, label, COUNT(*) AS n FROM labels WHERE retracted_at IS NULL GROUP BY item_id, label
)
SELECT v.item_id, v.label AS agreed_label, v.n AS votes
FROM votes v
WHERE NOT EXISTS (
    SELECT 1 FROM votes o
    WHERE o.item_id = v.item_id AND o.label <> v.label AND o.n >= v.n
)
"""

NEW_ITEM_STATUS = """
CREATE VIEW item_status AS
SELECT
    i.id AS item_id,
    i.external_id,
    i.title,
    i.label_count,
    i.done,
    (SELECT {agg} FROM labels l WHERE l.item_id = i.id AND l.retracted_at IS NULL) AS human_labels,
    (SELECT COUNT(*) FROM labels r WHERE r.item_id = i.id AND r.retracted_at IS NOT NULL) AS retracted_labels,
    a.agreed_label,
    p.predicted_label,
    p.confidence,
    p.priority,
    p.run_id AS prediction_run_id,
    le.worker_id AS leased_to,
    le.expires_at AS lease_expires_at
FROM items i
LEFT JOIN agreed_labels a ON a.item_id = i.id
LEFT JOIN queue_state q ON q.id = 1
LEFT JOIN predictions p ON p.run_id = q.current_run_id AND p.item_id = i.id
LEFT JOIN leases le ON le.item_id = i.id
"""

NEW_LABELLER_STATS = """
CREATE VIEW labeller_stats AS
SELECT
    l.worker_id,
    COUNT(*) AS labels,
    COUNT(DISTINCT l.item_id) AS items,
    MIN(l.created_at) AS first_label_at,
    MAX(l.created_at) AS last_label_at,
    ROUND(CAST({per_hour} AS NUMERIC), 1) AS labels_per_hour,
    ROUND(CAST(AVG(l.seconds_spent) AS NUMERIC), 1) AS avg_seconds_per_label,
    (SELECT COUNT(*) FROM labels r WHERE r.worker_id = l.worker_id AND r.retracted_at IS NOT NULL) AS retracted
FROM labels l
WHERE (l.handout_reason IS NULL OR l.handout_reason <> 'import') AND l.retracted_at IS NULL
GROUP BY l.worker_id
"""

NEW_DIALECT = {
    "postgresql": {
        "agg": "string_agg(l.worker_id || ': ' || l.label, '; ' ORDER BY l.id)",
        "per_hour": "COUNT(*) * 3600.0 / GREATEST(EXTRACT(EPOCH FROM MAX(l.created_at) - MIN(l.created_at)), 60)",
    },
    "sqlite": {
        "agg": "group_concat(l.worker_id || ': ' || l.label, '; ')",
        "per_hour": "COUNT(*) * 3600.0 / MAX((julianday(MAX(l.created_at)) - julianday(MIN(l.created_at))) * 86400.0, 60)",
    },
}

NEW_VIEWS = (NEW_AGREED_LABELS, NEW_ITEM_STATUS, NEW_LABELLER_STATS, NEW_DIALECT)


# --- the views of revision 0001 (what the downgrade restores), frozen here ---

OLD_AGREED_LABELS = """
CREATE VIEW agreed_labels AS
WITH votes AS (
    SELECT item_id, label, COUNT(*) AS n FROM labels GROUP BY item_id, label
)
SELECT v.item_id, v.label AS agreed_label, v.n AS votes
FROM votes v
WHERE NOT EXISTS (
    SELECT 1 FROM votes o
    WHERE o.item_id = v.item_id AND o.label <> v.label AND o.n >= v.n
)
"""

OLD_ITEM_STATUS = """
CREATE VIEW item_status AS
SELECT
    i.id AS item_id,
    i.external_id,
    i.title,
    i.label_count,
    i.done,
    (SELECT {agg} FROM labels l WHERE l.item_id = i.id) AS human_labels,
    a.agreed_label,
    p.predicted_label,
    p.confidence,
    p.priority,
    p.run_id AS prediction_run_id,
    le.worker_id AS leased_to,
    le.expires_at AS lease_expires_at
FROM items i
LEFT JOIN agreed_labels a ON a.item_id = i.id
LEFT JOIN queue_state q ON q.id = 1
LEFT JOIN predictions p ON p.run_id = q.current_run_id AND p.item_id = i.id
LEFT JOIN leases le ON le.item_id = i.id
"""

OLD_LABELLER_STATS = """
CREATE VIEW labeller_stats AS
SELECT
    worker_id,
    COUNT(*) AS labels,
    COUNT(DISTINCT item_id) AS items,
    MIN(created_at) AS first_label_at,
    MAX(created_at) AS last_label_at,
    ROUND(CAST({per_hour} AS NUMERIC), 1) AS labels_per_hour,
    ROUND(CAST(AVG(seconds_spent) AS NUMERIC), 1) AS avg_seconds_per_label
FROM labels
WHERE handout_reason IS NULL OR handout_reason <> 'import'
GROUP BY worker_id
"""

OLD_DIALECT = {
    "postgresql": {
        "agg": "string_agg(l.worker_id || ': ' || l.label, '; ' ORDER BY l.id)",
        "per_hour": "COUNT(*) * 3600.0 / GREATEST(EXTRACT(EPOCH FROM MAX(created_at) - MIN(created_at)), 60)",
    },
    "sqlite": {
        "agg": "group_concat(l.worker_id || ': ' || l.label, '; ')",
        "per_hour": "COUNT(*) * 3600.0 / MAX((julianday(MAX(created_at)) - julianday(MIN(created_at))) * 86400.0, 60)",
    },
}

OLD_VIEWS = (OLD_AGREED_LABELS, OLD_ITEM_STATUS, OLD_LABELLER_STATS, OLD_DIALECT)

VIEW_NAMES = ["item_status", "labeller_stats", "agreed_labels"]  # drop order


def _create_view_sql(dialect: str, views) -> list[str]:
    agreed, item_status, labeller_stats, per_dialect = views
    d = per_dialect["postgresql" if dialect == "postgresql" else "sqlite"]
    return [agreed, item_status.format(agg=d["agg"]), labeller_stats.format(per_hour=d["per_hour"])]


def _drop_view_sql() -> list[str]:
    return [f"DROP VIEW IF EXISTS {name}" for name in VIEW_NAMES]
