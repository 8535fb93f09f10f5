"""model_runs.kind: 'train' or 'autolabel' (was acquisition = 'autolabel')

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

An auto-label run used to be told apart by `acquisition = 'autolabel'`. It now has
`kind = 'autolabel'` and the acquisition its priorities follow ('certainty': least
sure first, for a human review). No view reads either column.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('model_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), server_default='train', nullable=False))
    op.execute(sa.text("UPDATE model_runs SET kind = 'autolabel', acquisition = 'certainty' "
                       "WHERE acquisition = 'autolabel'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE model_runs SET acquisition = 'autolabel' WHERE kind = 'autolabel'"))
    with op.batch_alter_table('model_runs', schema=None) as batch_op:
        batch_op.drop_column('kind')
