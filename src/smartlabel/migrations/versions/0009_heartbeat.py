"""the orchestrator's heartbeat: table orchestrator_heartbeat

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

One row per orchestrator process, which it rewrites every few seconds from a thread of
its own: host, pid, when it started, its last beat and its state. `smartlabel health`
(docker compose's healthcheck of the orchestrator), `smartlabel status` and the dashboard
read it. No view reads it; `smartlabel db roles` grants it (write: the orchestrator;
read: the reader).
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('orchestrator_heartbeat',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('beat_at', sa.DateTime(), nullable=False),
    sa.Column('state', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orchestrator_heartbeat'))
    )


def downgrade() -> None:
    op.drop_table('orchestrator_heartbeat')
