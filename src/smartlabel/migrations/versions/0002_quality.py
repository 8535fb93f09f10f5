"""label quality: agreement, suspect labels, quality runs; audit index; prediction clusters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Additive only: three new tables, one partial index on items (audit hand-outs),
one nullable column on predictions (diversity group of a candidate).
"""
from alembic import op
import sqlalchemy as sa

from smartlabel.views import create_view_sql, drop_view_sql


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
    for statement in drop_view_sql():
        op.execute(sa.text(statement))
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_column('cluster')
    for statement in create_view_sql(op.get_bind().dialect.name):
        op.execute(sa.text(statement))
    op.drop_index('ix_items_audit_rand', table_name='items',
                  postgresql_where=sa.text('done AND label_count = 1'),
                  sqlite_where=sa.text('done AND label_count = 1'))
    op.drop_index('ix_suspect_labels_run_id_score', table_name='suspect_labels')
    op.drop_table('suspect_labels')
    op.drop_index('ix_agreement_run_id_scope', table_name='agreement')
    op.drop_table('agreement')
    op.drop_table('quality_runs')
