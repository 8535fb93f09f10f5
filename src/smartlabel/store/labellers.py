"""The team (`labellers`): one row per labeller, with the SHA-256 of their personal key.

Two kinds of callers:
- the admin's commands (`smartlabel labellers ...`, run with the owner's DATABASE_URL):
  add, list, rotate, enable/disable, straight on the table;
- the labelling page, which on PostgreSQL runs as the role smartlabel_labeller and may not
  read this table (it holds the key hashes): it looks a key or a typed name up through the
  SECURITY DEFINER functions of migration 0004, which also note when the labeller was last
  seen. SQLite has one user and no functions: the same steps run as plain statements.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import DateTime, insert, update
from sqlalchemy.engine import Connection, Engine

from smartlabel.db import is_postgres, labellers, leases
from smartlabel.store import reading, sql, writing

SEEN_EVERY = timedelta(seconds=60)  # last_seen_at is kept to the minute (as the functions do)

BY_NAME_KEY = sql("SELECT id, name, enabled, key_hash FROM labellers WHERE name_key = :k")
# every labeller with what they did on the page (imported labels are not theirs)
LIST = sql("""
    SELECT b.name, b.enabled, b.created_at, b.last_seen_at, b.rotated_at,
           CASE WHEN b.key_hash IS NULL THEN 0 ELSE 1 END AS has_key,
           COALESCE(s.labels, 0) AS labels, COALESCE(s.retracted, 0) AS retracted
    FROM labellers b
    LEFT JOIN (
        SELECT worker_id,
               SUM(CASE WHEN retracted_at IS NULL THEN 1 ELSE 0 END) AS labels,
               SUM(CASE WHEN retracted_at IS NOT NULL THEN 1 ELSE 0 END) AS retracted
        FROM labels WHERE handout_reason IS NULL OR handout_reason <> 'import'
        GROUP BY worker_id
    ) s ON s.worker_id = b.name
    ORDER BY b.name_key""")

# the page's lookups on PostgreSQL: through the functions (the labeller role's only way in)
PG_BY_KEY = sql("SELECT smartlabel_labeller_by_key(:key_hash, :now)", now=DateTime())
PG_BY_NAME = sql("SELECT labeller_name, labeller_enabled FROM smartlabel_labeller_by_name(:name, :name_key, :now)",
                 now=DateTime())
# ... and the same steps on SQLite
BY_KEY = sql("SELECT id, name FROM labellers WHERE key_hash = :key_hash AND enabled")
ADD_TYPED = sql("""
    INSERT INTO labellers (name, name_key, enabled, created_at, last_seen_at)
    VALUES (:name, :name_key, 1, :now, :now) ON CONFLICT (name_key) DO NOTHING""", now=DateTime())
BY_NAME = sql("SELECT id, name, enabled FROM labellers WHERE name_key = :name_key")
TOUCH = sql("""
    UPDATE labellers SET last_seen_at = :now
    WHERE id = :id AND (last_seen_at IS NULL OR last_seen_at < :stale)""", now=DateTime(), stale=DateTime())


# --- the admin's commands (owner) ------------------------------------------------------


def find(bind: Engine | Connection, name_key: str) -> dict | None:
    """The labeller with this name key (id, name, enabled, key_hash), or None."""
    with reading(bind) as conn:
        row = conn.execute(BY_NAME_KEY, {"k": name_key}).mappings().first()
    return dict(row) if row else None


def add(bind: Engine | Connection, name: str, name_key: str, key_hash: str, now: datetime) -> None:
    """A new labeller with a key (IntegrityError when the name key is taken)."""
    with writing(bind) as conn:
        conn.execute(insert(labellers).values(name=name, name_key=name_key, key_hash=key_hash, enabled=True,
                                              created_at=now))


def set_key(bind: Engine | Connection, labeller_id: int, key_hash: str, now: datetime) -> None:
    """Replace a labeller's key: the old one stops working with this statement."""
    with writing(bind) as conn:
        conn.execute(update(labellers).where(labellers.c.id == labeller_id).values(key_hash=key_hash,
                                                                                   rotated_at=now))


def set_enabled(bind: Engine | Connection, labeller_id: int, name: str, enabled: bool) -> None:
    """Enable or disable a labeller; disabling also frees the posts they hold right now."""
    with writing(bind) as conn:
        conn.execute(update(labellers).where(labellers.c.id == labeller_id).values(enabled=enabled))
        if not enabled:
            conn.execute(leases.delete().where(leases.c.worker_id == name))


def listing(bind: Engine | Connection) -> list[dict]:
    """Every labeller: name, enabled, created, last seen, rotated, has_key, labels, retracted."""
    with reading(bind) as conn:
        return [dict(r) for r in conn.execute(LIST).mappings()]


# --- the page's lookups (the labeller role on PostgreSQL) --------------------------------


def name_for_key(bind: Engine | Connection, key_hash: str, now: datetime) -> str | None:
    """The enabled labeller whose key has this hash (last seen noted), else None."""
    with writing(bind) as conn:
        if is_postgres(conn.engine):
            return conn.execute(PG_BY_KEY, {"key_hash": key_hash, "now": now}).scalar()
        row = conn.execute(BY_KEY, {"key_hash": key_hash}).first()
        if row is None:
            return None
        conn.execute(TOUCH, {"id": row.id, "now": now, "stale": now - SEEN_EVERY})
        return row.name


def labeller_for_name(bind: Engine | Connection, name: str, name_key: str, now: datetime) -> tuple[str, bool]:
    """(canonical name, enabled) of the labeller with this name key, created (without a key) if
    there is none yet: a name typed with LABELLER_KEYS=off."""
    with writing(bind) as conn:
        if is_postgres(conn.engine):
            row = conn.execute(PG_BY_NAME, {"name": name, "name_key": name_key, "now": now}).one()
            return row.labeller_name, bool(row.labeller_enabled)
        conn.execute(ADD_TYPED, {"name": name, "name_key": name_key, "now": now})
        row = conn.execute(BY_NAME, {"name_key": name_key}).one()
        conn.execute(TOUCH, {"id": row.id, "now": now, "stale": now - SEEN_EVERY})
        return row.name, bool(row.enabled)
