"""labels.second_opinion: a late label on a post others already decided

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A label submitted after its lease was lost, when OVERLAP other labellers had labelled the
post meanwhile, is stored with `second_opinion = true`: it counts in agreement, never in
the post's agreed label (view `agreed_labels`, recreated below), so the first labels
decide and a post is never left without an agreed label by a late click. Existing labels
are no second opinions.

PostgreSQL: the view is replaced in place (CREATE OR REPLACE, same columns), so
`item_status`, which reads it, and the roles' grants on it stay. SQLite: dropped and
created again (SQLite binds a view's dependents when they are read).
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('labels', sa.Column('second_opinion', sa.Boolean(), server_default=sa.text('false'),
                                      nullable=False))
    _replace_agreed_labels(AGREED_LABELS)


def downgrade() -> None:
    _replace_agreed_labels(OLD_AGREED_LABELS)
    # no view reads the column any more (SQLite >= 3.35 drops a column in place)
    op.execute(sa.text("ALTER TABLE labels DROP COLUMN second_opinion"))


def _replace_agreed_labels(view: str) -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(sa.text("CREATE OR REPLACE " + view))
    else:
        op.execute(sa.text("DROP VIEW IF EXISTS agreed_labels"))
        op.execute(sa.text("CREATE " + view))


# --- the view of this revision, frozen here: second opinions do not vote ---

AGREED_LABELS = """
VIEW agreed_labels AS
WITH votes AS (
    SELECT item_id, label, COUNT(*) AS n FROM labels
    WHERE retracted_at IS NULL AND NOT second_opinion GROUP BY item_id, label
)
SELECT v.item_id, v.label AS agreed_label, v.n AS votes
FROM votes v
WHERE NOT EXISTS (
    SELECT 1 FROM votes o
    WHERE o.item_id = v.item_id AND o.label <> v.label AND o.n >= v.n
)
"""

# --- the view of revision 0004 (what the downgrade restores), frozen here ---

OLD_AGREED_LABELS = """
VIEW agreed_labels AS
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
