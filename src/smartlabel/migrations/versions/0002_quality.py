"""label quality: agreement, suspect labels, quality runs; audit index; prediction clusters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Additive only: three new tables, one partial index on items (audit hand-outs),
one nullable column on predictions (diversity group of a candidate).
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quality_runs',
    sa.Column('run_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.Column('n_labels', sa.Integer(), nullable=False),
    sa.Column('n_items_multi', sa.Integer(), nullable=False),
    sa.Column('alpha', sa.Float(), nullable=True),
    sa.Column('n_checked', sa.Integer(), nullable=False),
    sa.Column('n_suspects', sa.Integer(), nullable=False),
    sa.Column('n_ties', sa.Integer(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_quality_runs'))
    )
    op.create_table('agreement',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('worker_a', sa.String(length=200), nullable=True),
    sa.Column('worker_b', sa.String(length=200), nullable=True),
    sa.Column('metric', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('n_items', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreement'))
    )
    op.create_index('ix_agreement_run_id_scope', 'agreement', ['run_id', 'scope'], unique=False)
    op.create_table('suspect_labels',
    sa.Column('run_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('given_label', sa.String(length=200), nullable=True),
    sa.Column('suggested_label', sa.String(length=200), nullable=True),
    sa.Column('given_confidence', sa.Float(), nullable=True),
    sa.Column('suggested_confidence', sa.Float(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_suspect_labels_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'item_id', name=op.f('pk_suspect_labels'))
    )
    op.create_index('ix_suspect_labels_run_id_score', 'suspect_labels', ['run_id', 'score'], unique=False)
    op.create_index('ix_items_audit_rand', 'items', ['rand_key'], unique=False,
                    postgresql_where=sa.text('done AND label_count = 1'),
                    sqlite_where=sa.text('done AND label_count = 1'))
    op.add_column('predictions', sa.Column('cluster', sa.Integer(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table; the views that read it go first.
    for statement in _drop_view_sql():
        op.execute(sa.text(statement))
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_column('cluster')
    for statement in _create_view_sql(op.get_bind().dialect.name):
        op.execute(sa.text(statement))
    op.drop_index('ix_items_audit_rand', table_name='items',
                  postgresql_where=sa.text('done AND label_count = 1'),
                  sqlite_where=sa.text('done AND label_count = 1'))
    op.drop_index('ix_suspect_labels_run_id_score', table_name='suspect_labels')
    op.drop_table('suspect_labels')
    op.drop_index('ix_agreement_run_id_scope', table_name='agreement')
    op.drop_table('agreement')
    op.drop_table('quality_runs')


# --- the views of revision 0001 (unchanged here; the downgrade
# recreates them after SQLite's copy of `predictions`), frozen here : an admin's Adminer views, one definition per dialect ---

# An item's agreed label: the label with strictly more votes than any other
# (ties have none). Used by the orchestrator as its training data too.
AGREED_LABELS = """
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

_ITEM_STATUS = """
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

_LABELLER_STATS = """
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

_DIALECT = {
    "postgresql": {
        "agg": "string_agg(l.worker_id || ': ' || l.label, '; ' ORDER BY l.id)",
        "per_hour": "COUNT(*) * 3600.0 / GREATEST(EXTRACT(EPOCH FROM MAX(created_at) - MIN(created_at)), 60)",
    },
    "sqlite": {
        "agg": "group_concat(l.worker_id || ': ' || l.label, '; ')",
        "per_hour": "COUNT(*) * 3600.0 / MAX((julianday(MAX(created_at)) - julianday(MIN(created_at))) * 86400.0, 60)",
    },
}

VIEW_NAMES = ["item_status", "labeller_stats", "agreed_labels"]  # drop order


def _create_view_sql(dialect: str) -> list[str]:
    d = _DIALECT["postgresql" if dialect == "postgresql" else "sqlite"]
    return [
        AGREED_LABELS,
        _ITEM_STATUS.format(agg=d["agg"]),
        _LABELLER_STATS.format(per_hour=d["per_hour"]),
    ]


def _drop_view_sql() -> list[str]:
    return [f"DROP VIEW IF EXISTS {name}" for name in VIEW_NAMES]
