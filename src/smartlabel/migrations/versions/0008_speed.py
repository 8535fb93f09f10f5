"""speed at scale: progress counts in O(1), and predictions written without per-row key checks

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-02

Every post shown asks for the progress bar's "done of total". Counting `items` costs a
scan of the whole pool (316 ms at 300k posts on SQLite); `item_counts` holds the two
numbers, and triggers on `items` keep them exact inside the same transaction as the
change (insert, delete, an item becoming done or open again).

- PostgreSQL: statement-level triggers with transition tables (one counter update per
  statement, so an import of 100k rows adds one update, not 100k), spread over 8 shard
  rows chosen by the backend's pid, so two labellers' submits rarely wait on the same
  row; the trigger function is SECURITY DEFINER (the page's role needs no write right on
  the counters) with a fixed search path. An UPDATE that changes no `done` flag (a pop's
  lease, a retraction) writes nothing.
- SQLite: row triggers on one counter row (SQLite has one writer at a time anyway).

The counts are read as SUM over the shard rows. TRUNCATE is not counted (it fires no
row or statement DELETE trigger here): nothing in smartlabel truncates `items`.

`predictions` loses its two foreign keys: COPYing 80k rows checked both, row by row
(about 1.3 s of a 1.6 s cycle). A run's predictions are written only by the orchestrator
for ids it has just read, and readers join `predictions` to `items`, so nothing reads an
orphan; deleting a post still deletes its predictions (the delete trigger above does what
ON DELETE CASCADE did). Runs are never deleted. Downgrade deletes orphans, then restores
the keys.
"""
from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0005'
branch_labels = None
depends_on = None

SHARDS = 8


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table('item_counts',
    sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('total', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('done', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('shard', name=op.f('pk_item_counts'))
    )
    with _views_left_alone(dialect), op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_predictions_item_id_items'), type_='foreignkey')
        batch_op.drop_constraint(op.f('fk_predictions_run_id_model_runs'), type_='foreignkey')
    shards = SHARDS if dialect == 'postgresql' else 1
    op.execute(sa.text(
        "INSERT INTO item_counts (shard, total, done) "
        "SELECT 0, COUNT(*), COALESCE(SUM(CASE WHEN done THEN 1 ELSE 0 END), 0) FROM items"))
    for shard in range(1, shards):
        op.execute(sa.text(f"INSERT INTO item_counts (shard, total, done) VALUES ({shard}, 0, 0)"))
    if dialect == 'postgresql':
        schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
        for statement in PG_UPGRADE:
            op.execute(sa.text(statement.format(schema=schema, shards=SHARDS)))
    else:
        for statement in SQLITE_UPGRADE:
            op.execute(sa.text(statement))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
        for statement in PG_DOWNGRADE:
            op.execute(sa.text(statement.format(schema=schema)))
    else:
        for statement in SQLITE_DOWNGRADE:
            op.execute(sa.text(statement))
    op.drop_table('item_counts')
    op.execute(sa.text("DELETE FROM predictions WHERE item_id NOT IN (SELECT id FROM items) "
                       "OR run_id NOT IN (SELECT id FROM model_runs)"))
    with _views_left_alone(dialect), op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_foreign_key(op.f('fk_predictions_item_id_items'), 'items', ['item_id'], ['id'],
                                    ondelete='CASCADE')
        batch_op.create_foreign_key(op.f('fk_predictions_run_id_model_runs'), 'model_runs', ['run_id'], ['id'],
                                    ondelete='CASCADE')


@contextmanager
def _views_left_alone(dialect: str):
    """SQLite rebuilds `predictions` (copy, drop, rename): the views that read it would make
    the rename fail ("no such table") unless the rename leaves views alone while it runs.
    Their text names `predictions`, which is the table's name again afterwards."""
    if dialect == 'sqlite':
        op.execute(sa.text("PRAGMA legacy_alter_table = ON"))
    try:
        yield
    finally:
        if dialect == 'sqlite':
            op.execute(sa.text("PRAGMA legacy_alter_table = OFF"))


# --- PostgreSQL (frozen here) ------------------------------------------------------------

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.smartlabel_count_items() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {schema}, pg_temp
AS $fn$
DECLARE
    d_total bigint := 0;
    d_done bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT COUNT(*), COUNT(*) FILTER (WHERE n.done) INTO d_total, d_done FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT -COUNT(*), -COUNT(*) FILTER (WHERE o.done) INTO d_total, d_done FROM old_rows o;
        -- what ON DELETE CASCADE on predictions.item_id did
        DELETE FROM predictions p USING old_rows o WHERE p.item_id = o.id;
    ELSE
        SELECT COALESCE(SUM(n.done::int - o.done::int), 0) INTO d_done
        FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.done IS DISTINCT FROM o.done;
    END IF;
    IF d_total <> 0 OR d_done <> 0 THEN
        UPDATE item_counts SET total = total + d_total, done = done + d_done
        WHERE shard = pg_backend_pid() % {shards};
    END IF;
    RETURN NULL;
END
$fn$"""

PG_UPGRADE = [
    PG_FUNCTION,
    "REVOKE ALL ON FUNCTION {schema}.smartlabel_count_items() FROM PUBLIC",
    "CREATE TRIGGER items_count_insert AFTER INSERT ON {schema}.items "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {schema}.smartlabel_count_items()",
    "CREATE TRIGGER items_count_delete AFTER DELETE ON {schema}.items "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {schema}.smartlabel_count_items()",
    "CREATE TRIGGER items_count_update AFTER UPDATE ON {schema}.items "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION {schema}.smartlabel_count_items()",
]

PG_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS items_count_insert ON {schema}.items",
    "DROP TRIGGER IF EXISTS items_count_delete ON {schema}.items",
    "DROP TRIGGER IF EXISTS items_count_update ON {schema}.items",
    "DROP FUNCTION IF EXISTS {schema}.smartlabel_count_items()",
]

# --- SQLite (frozen here) ----------------------------------------------------------------

SQLITE_UPGRADE = [
    "CREATE TRIGGER items_count_insert AFTER INSERT ON items BEGIN "
    "UPDATE item_counts SET total = total + 1, done = done + (CASE WHEN NEW.done THEN 1 ELSE 0 END) "
    "WHERE shard = 0; END",
    "CREATE TRIGGER items_count_delete AFTER DELETE ON items BEGIN "
    "UPDATE item_counts SET total = total - 1, done = done - (CASE WHEN OLD.done THEN 1 ELSE 0 END) "
    "WHERE shard = 0; "
    "DELETE FROM predictions WHERE item_id = OLD.id; END",
    "CREATE TRIGGER items_count_update AFTER UPDATE OF done ON items "
    "WHEN (OLD.done IS NOT NEW.done) BEGIN "
    "UPDATE item_counts SET done = done + (CASE WHEN NEW.done THEN 1 ELSE 0 END) "
    "- (CASE WHEN OLD.done THEN 1 ELSE 0 END) WHERE shard = 0; END",
]

SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS items_count_insert",
    "DROP TRIGGER IF EXISTS items_count_delete",
    "DROP TRIGGER IF EXISTS items_count_update",
]
