"""Engine creation and the schema, as SQLAlchemy Core tables.

Names are chosen for the admin reading them in Adminer. Rules:
- `labels` holds one row per human decision and is never deleted or rewritten: an
  undo retracts a label (`retracted_at`, `retracted_by`) and every reader ignores
  retracted labels; an item's agreed label is derived (view `agreed_labels`).
- `labellers` holds the team: a canonical name, the hash of each one's personal key.
- `predictions` holds a model's output per run; `queue_state.current_run_id`
  says which run's priorities the queue uses, so a new run is written aside
  and switched on in one short statement.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url

from smartlabel.errors import ConfigError, DatabaseUnavailable, describe_error

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    """Naive UTC timestamp: the same on SQLite and PostgreSQL columns."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def as_datetime(value) -> datetime | None:
    """A timestamp read through raw SQL: SQLite hands back text."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("external_id", String(200), nullable=True, unique=True),
    Column("title", Text, nullable=False, default=""),
    Column("selftext", Text, nullable=False, default=""),
    Column("clean_selftext", Text, nullable=False, default=""),
    Column("extra", JSON, nullable=True),
    Column("content_hash", String(64), nullable=False, unique=True),
    Column("imported_at", DateTime, nullable=False, default=utcnow),
    # Queue state, kept on the row so the hand-out can use a partial index.
    Column("rand_key", Float, nullable=False),
    Column("label_count", Integer, nullable=False, default=0, server_default="0"),
    Column("done", Boolean, nullable=False, default=False, server_default=text("false")),
    Index(
        "ix_items_open_rand",
        "rand_key",
        postgresql_where=text("NOT done"),
        sqlite_where=text("NOT done"),
    ),
    # audit hand-outs: done posts labelled by exactly one labeller, in random order
    Index(
        "ix_items_audit_rand",
        "rand_key",
        postgresql_where=text("done AND label_count = 1"),
        sqlite_where=text("done AND label_count = 1"),
    ),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(200), nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("seconds_spent", Float, nullable=True),
    # why the post was handed out: 'priority', 'random' (exploration: the unbiased
    # audit sample), 'unscored', 'import' (label came with the file), 'undo', 'retry'
    Column("handout_reason", String(20), nullable=True),
    Column("run_id", Integer, nullable=True),
    # an undo retracts the label instead of deleting it: when, and by whom (the labeller)
    Column("retracted_at", DateTime, nullable=True),
    Column("retracted_by", String(200), nullable=True),
    # a label that came after its lease was lost, when OVERLAP others had labelled the post:
    # counted in agreement, never in the agreed label (the first labels decide)
    Column("second_opinion", Boolean, nullable=False, default=False, server_default=text("false")),
    Index("ix_labels_item_id", "item_id"),
    Index("ix_labels_worker_id_created_at", "worker_id", "created_at"),
)

def _handed(time_column: str) -> list[Column]:
    """Who holds (or was handed) a post, since when, why it was handed out, from which run."""
    return [Column("worker_id", String(200), nullable=False), Column(time_column, DateTime, nullable=False)]


def _why() -> list[Column]:
    return [Column("reason", String(20), nullable=True), Column("run_id", Integer, nullable=True)]


leases = Table(
    "leases",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    *_handed("leased_at"),
    Column("expires_at", DateTime, nullable=False),
    *_why(),
    Index("ix_leases_worker_id", "worker_id"),
)

# Every hand-out ever made: lets a late submit prove the worker held the item.
handouts = Table(
    "handouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    *_handed("handed_at"),
    *_why(),
    Index("ix_handouts_item_id_worker_id", "item_id", "worker_id"),
)

skips = Table(
    "skips",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("worker_id", String(200), primary_key=True),
    Column("skipped_at", DateTime, nullable=False),
)

model_runs = Table(
    "model_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime, nullable=False, default=utcnow),
    Column("finished_at", DateTime, nullable=True),
    # train (the orchestrator's) | autolabel (`smartlabel autolabel`; the queue never follows it)
    Column("kind", String(20), nullable=False, default="train", server_default="train"),
    # running | ok | failed | skipped
    Column("status", String(20), nullable=False, default="running"),
    Column("message", Text, nullable=True),
    Column("model_kind", String(40), nullable=True),
    Column("acquisition", String(40), nullable=True),
    Column("n_labels", Integer, nullable=True),
    Column("n_classes", Integer, nullable=True),
    Column("cv_accuracy", Float, nullable=True),
    Column("cv_macro_f1", Float, nullable=True),
    Column("audit_accuracy", Float, nullable=True),
    Column("n_audit", Integer, nullable=True),
    Column("per_class", JSON, nullable=True),
    Column("model_path", Text, nullable=True),
    Column("n_scored", Integer, nullable=True),
    Column("seconds_train", Float, nullable=True),
    Column("seconds_score", Float, nullable=True),
)

predictions = Table(
    "predictions",
    metadata,
    # no foreign keys (migration 0008): COPY checked both per row; deleting a post deletes
    # its predictions through the counting trigger on `items`, and runs are never deleted
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("item_id", Integer, primary_key=True, autoincrement=False),
    Column("predicted_label", String(200), nullable=True),
    Column("confidence", Float, nullable=True),
    Column("second_label", String(200), nullable=True),
    Column("second_confidence", Float, nullable=True),
    # higher is handed out first
    Column("priority", Float, nullable=False),
    # diversity: among the top uncertain candidates, the id of the post this one
    # near-duplicates (its own id when it leads its group); NULL outside the candidates
    Column("cluster", Integer, nullable=True),
    Index("ix_predictions_run_id_priority", "run_id", "priority"),
)

queue_state = Table(
    "queue_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("current_run_id", Integer, nullable=True),
    Column("updated_at", DateTime, nullable=True),
)

# --- label quality (smartlabel.quality computes these after each model run) ---

# One row per model run the quality pass ran for: the review queue follows the newest.
quality_runs = Table(
    "quality_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("computed_at", DateTime, nullable=False, default=utcnow),
    Column("n_labels", Integer, nullable=False),  # labels the agreement was computed from
    Column("n_items_multi", Integer, nullable=False),  # posts with two or more labels
    Column("alpha", Float, nullable=True),  # Krippendorff's alpha (nominal), all labellers
    Column("n_checked", Integer, nullable=False),  # posts checked for suspect labels
    Column("n_suspects", Integer, nullable=False),  # model confidently contradicts the label
    Column("n_ties", Integer, nullable=False),  # labellers disagree with no majority
    Column("thresholds", JSON, nullable=True),  # per-class confidence thresholds used
)

# Agreement between labellers: scope 'overall' | 'label' | 'pair' | 'worker'.
agreement = Table(
    "agreement",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=True),
    Column("computed_at", DateTime, nullable=False, default=utcnow),
    Column("scope", String(10), nullable=False),
    Column("label", String(200), nullable=True),
    Column("worker_a", String(200), nullable=True),
    Column("worker_b", String(200), nullable=True),
    Column("metric", String(40), nullable=False),
    Column("value", Float, nullable=True),  # NULL when undefined (e.g. kappa with one label used)
    Column("n_items", Integer, nullable=False),
    Index("ix_agreement_run_id_scope", "run_id", "scope"),
)

# Posts to review: kind 'model' (the model confidently contradicts the agreed label)
# or 'tie' (labellers disagree with no majority); higher score is reviewed first.
suspect_labels = Table(
    "suspect_labels",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("given_label", String(200), nullable=True),
    Column("suggested_label", String(200), nullable=True),
    Column("given_confidence", Float, nullable=True),
    Column("suggested_confidence", Float, nullable=True),
    Column("score", Float, nullable=False),
    Index("ix_suspect_labels_run_id_score", "run_id", "score"),
)

# The team: one row per labeller. `name` is what labels, leases, hand-outs and skips
# record as worker_id; `name_key` (trimmed, case-folded) keeps "Alice" and " alice " one
# labeller. `key_hash` is the SHA-256 of the personal link's key (NULL: no key yet, a
# name typed with LABELLER_KEYS=off). Only the owner role reads this table; the page
# looks a key up through a SECURITY DEFINER function (migration 0004).
labellers = Table(
    "labellers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("name_key", String(200), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=True, unique=True),
    Column("enabled", Boolean, nullable=False, default=True, server_default=text("true")),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("last_seen_at", DateTime, nullable=True),
    Column("rotated_at", DateTime, nullable=True),
)

# The orchestrator's heartbeat: one row per orchestrator process, which its heartbeat
# thread rewrites every few seconds, even during a long training run (rows older than a
# day are dropped when a process starts). `smartlabel health` (docker compose's healthcheck
# of the orchestrator), `smartlabel status` and the dashboard read it.
# `state`: waiting | run N | stopping | stopped.
orchestrator_heartbeat = Table(
    "orchestrator_heartbeat",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("beat_at", DateTime, nullable=False),
    Column("state", String(40), nullable=False),
)

# "done of total" for the progress bar without scanning `items`: triggers on `items`
# (migration 0008) keep these rows exact in the same transaction; the counts are the
# SUM over the rows (PostgreSQL spreads the updates over 64 shards since migration 0010,
# SQLite uses one).
item_counts = Table(
    "item_counts",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("total", BigInteger, nullable=False, server_default=text("0")),
    Column("done", BigInteger, nullable=False, server_default=text("0")),
)

TABLES = [items, labels, leases, handouts, skips, model_runs, predictions, queue_state,
          quality_runs, agreement, suspect_labels, labellers, item_counts,
          orchestrator_heartbeat]


def default_sqlite_path(url: str) -> str | None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return u.database
    return None


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn):
    # Our own BEGIN so that `engine.begin()` can take the write lock up front
    # (BEGIN IMMEDIATE) when asked through execution options.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


# PostgreSQL connections per process (the connection budget, README "Connection budget"):
# a labeller's kernel uses one (`connections=1`: a click waits for it, never opens a second);
# every other process (orchestrator, CLI, dashboard) at most POOL_SIZE + POOL_OVERFLOW.
POOL_SIZE = 2
POOL_OVERFLOW = 2
# how long a step waits for the kernel's one connection (the lease renewal may hold it for
# a few milliseconds) before the page says the server is busy
POOL_TIMEOUT_SECONDS = 20.0


def make_engine(url: str | Engine | None = None, *, connections: int | None = None, **kw) -> Engine:
    """An engine for `url` (default: settings' DATABASE_URL), tuned for its dialect.

    `connections=n` (PostgreSQL): at most n connections, none beyond (a step that finds
    them all in use waits up to POOL_TIMEOUT_SECONDS, then fails as "busy"); the default
    is a small bounded pool (POOL_SIZE + POOL_OVERFLOW).
    """
    if isinstance(url, Engine):
        return url
    if url is None:
        from smartlabel.settings import load_settings

        url = load_settings().database_url
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            f"DATABASE_URL {url!r} is not a database URL; use sqlite:///data/smartlabel.db "
            "or postgresql+psycopg2://user:password@host:5432/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = default_sqlite_path(url)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kw)
        # pysqlite's own transaction handling is switched off; we emit BEGIN ourselves.
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, record):
            dbapi_conn.isolation_level = None
            _sqlite_pragmas(dbapi_conn, record)

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        kw.setdefault("pool_pre_ping", True)
        if connections is not None:
            if connections < 1:
                raise ConfigError(f"connections={connections}: an engine needs at least one connection")
            kw.setdefault("pool_size", connections)
            kw.setdefault("max_overflow", 0)
            kw.setdefault("pool_timeout", POOL_TIMEOUT_SECONDS)
        kw.setdefault("pool_size", POOL_SIZE)
        kw.setdefault("max_overflow", POOL_OVERFLOW)
        return create_engine(url, **kw)
    raise ConfigError(f"DATABASE_URL uses {backend!r}; smartlabel supports sqlite and postgresql")


def immediate(engine: Engine):
    """A transaction that holds the write lock from the start on SQLite (BEGIN IMMEDIATE)."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE").begin()
    return engine.begin()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def check_connection(engine: Engine) -> None:
    """Raise DatabaseUnavailable with a readable message when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable(describe_error(exc, engine)) from None
