"""the progress counters on PostgreSQL: 64 shard rows instead of 8

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

A submit that makes a post done updates its backend's `item_counts` shard row (the
counting trigger of 0008, shard = `pg_backend_pid() % shards`) and holds that row's lock
until its durable commit returns. With 8 shards, 16 labellers' backends (pids handed out
in sequence) shared a shard two by two, and a submit waited for the other one's commit:
the only lock wait left in the hand-out with 16 labeller processes (BENCHMARKS.md, "The
hand-out under contention"). 64 rows keep backends started together on rows of their
own; the progress read sums 64 small rows instead of 8.

SQLite: nothing changes (one writer at a time, one counter row). Downgrade folds the
new rows into shard 0 and restores the 8-shard function.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

SHARDS = 64
OLD_SHARDS = 8


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(sa.text(
        f"INSERT INTO item_counts (shard, total, done) SELECT g, 0, 0 FROM generate_series({OLD_SHARDS}, "
        f"{SHARDS - 1}) g"))
    _function(SHARDS)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    _function(OLD_SHARDS)
    op.execute(sa.text(
        "UPDATE item_counts SET total = item_counts.total + x.total, done = item_counts.done + x.done FROM "
        f"(SELECT COALESCE(SUM(total), 0) AS total, COALESCE(SUM(done), 0) AS done FROM item_counts "
        f"WHERE shard >= {OLD_SHARDS}) x WHERE item_counts.shard = 0"))
    op.execute(sa.text(f"DELETE FROM item_counts WHERE shard >= {OLD_SHARDS}"))


def _function(shards: int) -> None:
    """0008's counting function (frozen here) over `shards` rows; CREATE OR REPLACE keeps its
    owner, its grants and its triggers."""
    schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    op.execute(sa.text(PG_FUNCTION.format(schema=schema, shards=shards)))


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
