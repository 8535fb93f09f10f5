"""The labelling queue: atomic hand-out with leases, submit, skip, undo, progress.

`LabelQueue` speaks the protocol superintendent's widget expects from its queue
(`pop`, `submit`, `undo`, `progress`, iteration, `url`), so the widget can be fed
by it, and adds `skip` and `counts`.

How a hand-out stays atomic:
- PostgreSQL: one statement picks the best open item with `FOR NO KEY UPDATE
  SKIP LOCKED` (NO KEY: a KEY SHARE lock on items, as a foreign key check takes,
  never hides items from labellers; `predictions` has no foreign key since
  migration 0008, so the orchestrator's bulk write takes none), claims it in `leases` with an upsert that only succeeds when no one
  else holds a live lease (re-checked on the latest row, so a race is lost
  cleanly, never won twice), and logs it in `handouts`.
- SQLite: the same queries inside `BEGIN IMMEDIATE` (one writer at a time).

An item is held by at most one labeller at a time; with OVERLAP=k it returns to
the pool after each label until k distinct labellers have labelled it.

Leases and late labels: the page renews its lease (`renew`) while a post is on screen, so
a post read for long is not handed to someone else. A label that arrives after the lease
was lost is still stored; if OVERLAP labellers already labelled the post meanwhile, the
first labels decide and the late one is a *second opinion* (`labels.second_opinion`):
counted in agreement, never in the post's agreed label, training or export. Audit and
review hand-outs (posts handed out *because* they are done) are votes, never second opinions.

Priorities live in `predictions` per model run; `queue_state.current_run_id`
says which run the queue follows, so a new run is written aside and switched on
in one short statement (`smartlabel.store.runs.set_current`).

Every statement of the hand-out (pop, submit, skip, undo, progress) is a named
constant here; everything else the database is asked lives in `smartlabel.store`.

Round trips on PostgreSQL (a pair costs 9, was 21): a pop sends its `SET LOCAL` and its
statement, which also returns the post, as one query string; a submit sends its lock and
checks as one, its five writes as another. Their statements are prepared once per
connection (`_PgStatements`). One fsync per label: the submit's commit.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from smartlabel.db import as_datetime, immediate, is_postgres, make_engine, utcnow
from smartlabel.store import items as store_items
from smartlabel.errors import (
    AlreadyLabelledError,
    NotHeldError,
    NothingToUndoError,
    QueueError,
    UnknownItemError,
    UnknownLabelError,
)

# --- named queries -------------------------------------------------------------

# Conditions the candidates are built from: nobody (or nobody else) holds a live lease,
# this worker has not labelled it (a retracted label does not count), nor skipped it.
_UNHELD = """NOT EXISTS (SELECT 1 FROM leases le WHERE le.item_id = i.id
                    AND le.expires_at > :now {mine})"""
_NOT_LABELLED_BY_ME = """NOT EXISTS (SELECT 1 FROM labels l WHERE l.item_id = i.id AND l.worker_id = :worker
                    AND l.retracted_at IS NULL)"""
_NOT_SKIPPED = "AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.item_id = i.id AND s.worker_id = :worker)"
# open and held by no one (new hand-outs); or held by no one else (held, given)
_FREE = f"NOT i.done AND {_UNHELD.format(mine='')} AND {_NOT_LABELLED_BY_ME}"
_NOT_OTHERS_NOR_MINE = f"{_UNHELD.format(mine='AND le.worker_id <> :worker')} AND {_NOT_LABELLED_BY_ME}"
_NOT_OTHERS = f"NOT i.done AND {_NOT_OTHERS_NOR_MINE}"
# audit and review hand out posts whatever their `done` flag: held by no one,
# not labelled or skipped by this worker
_AVAILABLE = f"{_UNHELD.format(mine='')} AND {_NOT_LABELLED_BY_ME} {_NOT_SKIPPED}"
_CURRENT_RUN = "(SELECT current_run_id FROM queue_state WHERE id = 1)"

_CANDIDATES = {
    # items this worker holds a live lease on (a reloaded tab gets its post back)
    "held": f"""
        SELECT i.id, le0.run_id FROM leases le0 JOIN items i ON i.id = le0.item_id
        WHERE le0.worker_id = :worker AND le0.expires_at > :now AND {_NOT_OTHERS}
        ORDER BY le0.leased_at LIMIT 1""",
    # the current run's priorities, best first; while they are a cold-start order
    # (smartlabel.coldstart: a representative order of the pool, before a model can rank
    # posts) the hand-out's reason is 'coldstart' ("chosen to represent the pool"). A LEFT
    # JOIN: `predictions` has no foreign key to `model_runs` (migration 0008), and a run's
    # row gone (deleted by hand) must not hide its posts from every path
    "priority": f"""
        SELECT i.id, p.run_id, CASE WHEN r.acquisition = 'coldstart' THEN 'coldstart' ELSE :reason END AS reason
        FROM predictions p JOIN items i ON i.id = p.item_id LEFT JOIN model_runs r ON r.id = p.run_id
        WHERE p.run_id = {_CURRENT_RUN}
          AND {_FREE} {_NOT_SKIPPED}
        ORDER BY p.priority DESC LIMIT 1""",
    # exploration: a uniformly random open item (rand_key is i.i.d. per item)
    "random": f"""
        SELECT i.id, {_CURRENT_RUN} AS run_id
        FROM items i WHERE {_FREE} {_NOT_SKIPPED}
        ORDER BY i.rand_key LIMIT 1""",
    # items the current run has not scored (new imports, or no run yet): random order
    "unscored": f"""
        SELECT i.id, CAST(NULL AS INTEGER) AS run_id FROM items i
        WHERE {_FREE} {_NOT_SKIPPED}
          AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.item_id = i.id
                          AND p.run_id = {_CURRENT_RUN})
        ORDER BY i.rand_key LIMIT 1""",
    # last resort: what this worker skipped, oldest skip first
    "skipped": f"""
        SELECT i.id, CAST(NULL AS INTEGER) AS run_id FROM skips s JOIN items i ON i.id = s.item_id
        WHERE s.worker_id = :worker AND {_FREE}
        ORDER BY s.skipped_at LIMIT 1""",
    # audit (AUDIT_SHARE of pops): a random post one other labeller has labelled, so
    # agreement is measured even at OVERLAP=1 (partial index ix_items_audit_rand)
    "audit": f"""
        SELECT i.id, {_CURRENT_RUN} AS run_id FROM items i
        WHERE i.done AND i.label_count = 1 AND {_AVAILABLE}
        ORDER BY i.rand_key LIMIT 1""",
    # review (REVIEW_SHARE of pops): the newest quality pass's suspect posts, most suspect
    # first; each at most once per pass (a review label since the pass ends it), and no
    # post more than twice in all (a disputed label, then one tie-breaker)
    "review": f"""
        SELECT i.id, {_CURRENT_RUN} AS run_id
        FROM suspect_labels sl JOIN quality_runs qr ON qr.run_id = sl.run_id JOIN items i ON i.id = sl.item_id
        WHERE sl.run_id = (SELECT MAX(run_id) FROM quality_runs) AND {_AVAILABLE}
          AND NOT EXISTS (SELECT 1 FROM labels r WHERE r.item_id = i.id AND r.handout_reason = 'review'
                          AND r.retracted_at IS NULL AND r.created_at >= qr.computed_at)
          AND (SELECT COUNT(*) FROM labels r WHERE r.item_id = i.id AND r.handout_reason = 'review'
               AND r.retracted_at IS NULL) < 2
        ORDER BY sl.score DESC, i.rand_key LIMIT 1""",
    # one given item (undo gives it back), done or not: an undone audit or review label
    # leaves its post done, and the labeller still gets it back
    "given": f"""
        SELECT i.id, CAST(NULL AS INTEGER) AS run_id FROM items i WHERE i.id = :item_id
          AND {_NOT_OTHERS_NOR_MINE}""",
}

# A lease is taken only if nobody else holds a live one: re-checked on the latest row,
# so a race is lost cleanly, never won twice.
_LEASE_INSERT = "INSERT INTO leases (item_id, worker_id, leased_at, expires_at, reason, run_id)"
_LEASE_UPSERT = """
    ON CONFLICT (item_id) DO UPDATE SET worker_id = excluded.worker_id,
        leased_at = excluded.leased_at, expires_at = excluded.expires_at,
        reason = excluded.reason, run_id = excluded.run_id
    WHERE leases.expires_at <= :now OR leases.worker_id = excluded.worker_id
    RETURNING item_id, run_id, reason"""
_CLAIM_VALUES = f"""
    {_LEASE_INSERT}
    VALUES (:item_id, :worker, :now, :expires, :reason, :run_id) {_LEASE_UPSERT}"""

_LOG_HANDOUT = """
    INSERT INTO handouts (item_id, worker_id, handed_at, reason, run_id)
    VALUES (:item_id, :worker, :now, :reason, :run_id)"""


_ITEM_COLUMNS = """i.id, i.external_id, i.title, i.selftext, i.clean_selftext, i.extra,
           p.run_id AS pred_run_id, p.predicted_label, p.confidence,
           p.second_label, p.second_confidence, p.priority"""
_ITEM = f"""
    SELECT {_ITEM_COLUMNS}
    FROM items i
    LEFT JOIN predictions p ON p.item_id = i.id AND p.run_id = {_CURRENT_RUN}
    WHERE i.id = :item_id"""

# A hand-out need not survive a server crash (its lease and log row lost, the post comes
# back to the pool): its commit does not wait for the WAL flush. Labels stay durable.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit TO OFF"


def _pg_pop_sql(candidate: str) -> tuple[str, ...]:
    """Pick, claim, log and read the post, in one round trip on PostgreSQL.

    Two statements sent as one query string (see _PgStatements): the SET LOCAL (this
    transaction only), then one statement that picks, claims and logs the post and
    returns what the page shows of it. The reason is the path's (`:reason`) unless the
    candidate names its own (a `reason` column: "priority" during a cold start).

    No row: the path has no post for this worker. A row with `candidate_id` but no `id`:
    a lost race (another labeller's hand-out of that post committed after this statement's
    snapshot was taken; its lease is live, so the claim did nothing): see LOST_RACE."""
    reason = "reason" if "AS reason" in candidate else ":reason"
    return (_ASYNC_COMMIT, f"""
    WITH cand AS ({candidate} FOR NO KEY UPDATE OF i SKIP LOCKED),
    claimed AS (
        {_LEASE_INSERT}
        SELECT id, :worker, :now, :expires, {reason}, run_id FROM cand {_LEASE_UPSERT}
    ),
    logged AS (
        INSERT INTO handouts (item_id, worker_id, handed_at, reason, run_id)
        SELECT item_id, :worker, :now, reason, run_id FROM claimed
        RETURNING item_id, reason
    )
    SELECT c.id AS candidate_id, {_ITEM_COLUMNS}, g.reason AS handout_reason
    FROM cand c LEFT JOIN logged g ON g.item_id = c.id
    LEFT JOIN items i ON i.id = g.item_id
    LEFT JOIN predictions p ON p.item_id = i.id AND p.run_id = {_CURRENT_RUN}""")


_PG_POP = {name: _pg_pop_sql(sql) for name, sql in _CANDIDATES.items()}

_LOCK_ITEM = {
    "postgresql": "SELECT id FROM items WHERE id = :item_id FOR NO KEY UPDATE",
    "sqlite": "SELECT id FROM items WHERE id = :item_id",
}

# A post that just became done sinks to the bottom of the current run's order, so the
# "priority" hand-out does not walk past every post labelled since the run was written
# (measured: +4 us per such post per pop, 10 ms after 2,300 labels at 100k posts). The
# next run leaves done posts out anyway; an undo hands its post straight back to the same
# labeller, and the run after it restores its priority.
DONE_PRIORITY = -1.0e300
_SINK_DONE = f"""
    UPDATE predictions SET priority = :floor
    WHERE item_id = :item_id AND run_id = {_CURRENT_RUN}
      AND EXISTS (SELECT 1 FROM items WHERE id = :item_id AND done)"""

# submit: the newest hand-out of this post to this worker, whether they labelled it already,
# the label
_LAST_HANDOUT = """
    SELECT handed_at, reason, run_id FROM handouts
    WHERE item_id = :item_id AND worker_id = :worker ORDER BY id DESC LIMIT 1"""
_MY_LIVE_LABEL = "SELECT 1 FROM labels WHERE item_id = :item_id AND worker_id = :worker AND retracted_at IS NULL"
_INSERT_LABEL = """
    INSERT INTO labels (item_id, label, worker_id, created_at, seconds_spent, handout_reason, run_id,
                        second_opinion)
    VALUES (:item_id, :label, :worker, :now, :spent, :reason, :run_id, :second)"""
# how many other labellers' labels already decide this post (second opinions left out)
_DECIDED_BY_OTHERS = """
    SELECT COUNT(DISTINCT worker_id) FROM labels WHERE item_id = :item_id AND worker_id <> :worker
      AND retracted_at IS NULL AND NOT second_opinion"""
# after an undo the post is handed back as 'undo': why the label it replaces was handed out
_REPLACED_REASON = """
    SELECT handout_reason FROM labels WHERE item_id = :item_id AND worker_id = :worker
      AND retracted_at IS NOT NULL AND (handout_reason IS NULL OR handout_reason <> 'undo')
    ORDER BY id DESC LIMIT 1"""
# hand-outs of posts that are done on purpose: their labels are votes, not second opinions
VOTE_ON_DONE = ("audit", "review")
# the recount of store.items for the one post a submit labels
_RECOUNT_ONE = store_items.RECOUNT.text.replace("WHERE id IN :ids", "WHERE id = :item_id")
assert _RECOUNT_ONE != store_items.RECOUNT.text, "store.items.RECOUNT changed: update _RECOUNT_ONE"
# renew: only this worker's own lease, and only while it is live
_RENEW = """
    UPDATE leases SET expires_at = :expires
    WHERE item_id = :item_id AND worker_id = :worker AND expires_at > :now"""
# skip
_HANDED_TO_ME = "SELECT 1 FROM handouts WHERE item_id = :item_id AND worker_id = :worker"
_INSERT_SKIP = "INSERT INTO skips (item_id, worker_id, skipped_at) VALUES (:item_id, :worker, :now)"
_DELETE_SKIP = "DELETE FROM skips WHERE item_id = :item_id AND worker_id = :worker"
_DELETE_LEASE = "DELETE FROM leases WHERE item_id = :item_id AND worker_id = :worker"

# submit on PostgreSQL: two round trips inside its (durable) transaction, each a query
# string of several statements (see _PgStatements). Every statement takes its own
# snapshot, so the checks that follow the lock see every label committed before the
# lock was granted.
_PG_SUBMIT_CHECK = (_LOCK_ITEM["postgresql"], f"""
    SELECT EXISTS (SELECT 1 FROM items WHERE id = :item_id) AS item_found,
           h.handed_at, h.reason, h.run_id,
           EXISTS ({_MY_LIVE_LABEL}) AS mine,
           ({_REPLACED_REASON}) AS replaced_reason,
           ({_DECIDED_BY_OTHERS}) AS decided
    FROM (SELECT 1 AS one) x LEFT JOIN LATERAL ({_LAST_HANDOUT}) h ON TRUE""")
_PG_SUBMIT_WRITE = (_INSERT_LABEL, _RECOUNT_ONE, _SINK_DONE, _DELETE_LEASE, _DELETE_SKIP)
# undo: this worker's newest live label (of one post, or of any post given on the page);
# it is retracted, never deleted, and only ever the worker's own (worker_id in the WHERE)
_MY_NEWEST_LABEL_OF = """
    SELECT id, item_id FROM labels WHERE worker_id = :worker AND item_id = :item_id
      AND retracted_at IS NULL ORDER BY id DESC LIMIT 1"""
_MY_NEWEST_LABEL = """
    SELECT id, item_id FROM labels WHERE worker_id = :worker AND retracted_at IS NULL
      AND (handout_reason IS NULL OR handout_reason <> 'import') ORDER BY id DESC LIMIT 1"""
_RETRACT = """
    UPDATE labels SET retracted_at = :now, retracted_by = :worker
    WHERE id = :id AND worker_id = :worker AND retracted_at IS NULL"""
# progress
# O(1) at any pool size: the counter rows triggers on `items` keep (migration 0008)
_COUNT_ITEMS = "SELECT COALESCE(SUM(total), 0), COALESCE(SUM(done), 0) FROM item_counts"
_COUNT_MINE = "SELECT COUNT(*) FROM labels WHERE worker_id = :worker AND retracted_at IS NULL"
_COUNT_LEASED = "SELECT COUNT(*) FROM leases WHERE expires_at > :now"
# all four in one statement (one round trip per post shown)
_COUNTS = f"""
    SELECT (SELECT COALESCE(SUM(total), 0) FROM item_counts), (SELECT COALESCE(SUM(done), 0) FROM item_counts),
           ({_COUNT_MINE}), ({_COUNT_LEASED})"""
# is anything still open for this worker (possibly held by others right now)?
_ANY_OPEN_FOR = f"""
    SELECT 1 FROM items i WHERE NOT i.done AND {_NOT_LABELLED_BY_ME}
      AND NOT EXISTS (SELECT 1 FROM leases le WHERE le.item_id = i.id
                      AND le.expires_at > :now AND le.worker_id <> :worker)
    LIMIT 1"""

# What LabelQueue._claim answers when a path saw a post as free but lost it: on PostgreSQL
# another labeller's hand-out of it committed after the statement's snapshot was taken and
# before it locked the row (SKIP LOCKED skips only rows locked *now*), so the claim met a
# live lease. The pop tries the same draw again at once, on a fresh snapshot that sees the
# winner's lease: it gets the next best post. Falling through to the next paths instead
# handed the loser an unscored or skipped post while better ones were free, and, when the
# run scored every post, walked all open posts for nothing (0.4 s at 100k posts) holding
# the lost post's row lock, which the winner's submit then waited for (BENCHMARKS.md, "The
# hand-out under contention"; tests/test_queue_races.py). Every lost race is another
# labeller's hand-out, so retries end; MAX_LOST_RACES in a row is only a guard.
LOST_RACE = object()
MAX_LOST_RACES = 50

# Hand-out paths in the order tried; with probability SHUFFLE_PROP a pop explores first.
_ORDER = ("held", "priority", "unscored", "skipped")
_EXPLORE_ORDER = ("held", "random", "priority", "unscored", "skipped")
# AUDIT_SHARE / REVIEW_SHARE of pops try these first; nothing to audit or review
# falls through to the usual order
_AUDIT_ORDER = ("held", "audit", "priority", "unscored", "skipped")
_REVIEW_ORDER = ("held", "review", "priority", "unscored", "skipped")


log = logging.getLogger(__name__)

# PostgreSQL types of the hand-out statements' parameters (their columns' types)
_PG_PARAM_TYPES = {
    "worker": "text", "now": "timestamp", "expires": "timestamp", "reason": "text", "item_id": "integer",
    "run_id": "integer", "label": "text", "spent": "double precision", "second": "boolean",
    "overlap": "integer", "floor": "double precision",
}
_PARAM = re.compile(r"(?<![:\w]):(\w+)")
# what PostgreSQL says when a prepared statement is not (or already) on the connection:
# a pooler in transaction mode (PgBouncer) hands each transaction another server connection
_PREPARED_LOST = ("26000", "42P05")


class _PgStatements:
    """The hand-out's statements on PostgreSQL, prepared once per connection.

    A pop or submit sends a few statements as one query string (psycopg2 binds the
    parameters on the client; the result seen is the last statement's), so each costs one
    round trip. Each statement that has parameters is a server-side prepared statement
    (`PREPARE` the first time a connection runs it, in the same query string, then
    `EXECUTE`): planning the pop's statement costs the server about four times what running
    it does (measured: 0.75 ms of backend CPU per pop planned each time, 0.15 ms prepared).
    Which statements a connection has prepared is kept in its pool record's `info`, so a
    new connection (after a reconnect) prepares them again. Should the server not have them
    (a pooler in transaction mode, a `DISCARD ALL`), the queue falls back to plain statements.
    """

    def __init__(self, statements: Sequence[str]):
        self.parts = []  # (plain, name or None, PREPARE text, EXECUTE text)
        for stmt in statements:
            names: list[str] = []
            for name in _PARAM.findall(stmt):
                if name not in names:
                    names.append(name)
            if not names:
                self.parts.append((stmt.strip(), None, None, stmt.strip()))
                continue
            body = _PARAM.sub(lambda m: f"${names.index(m.group(1)) + 1}", stmt).strip()
            pname = "smartlabel_" + hashlib.sha1(body.encode()).hexdigest()[:16]
            types = ", ".join(_PG_PARAM_TYPES[n] for n in names)
            # text() reads ":x" as a parameter: PREPARE's body has none left, only $n
            self.parts.append((stmt.strip(), pname, f"PREPARE {pname} ({types}) AS {body}",
                               f"EXECUTE {pname} ({', '.join(':' + n for n in names)})"))
        self.plain = text(";\n".join(p[0] for p in self.parts))
        self._texts: dict[frozenset, Any] = {}

    def execute(self, conn: Connection, params: dict, prepared: bool):
        if not prepared:
            return conn.execute(self.plain, params)
        have = conn.connection.info.setdefault("smartlabel_prepared", set())
        missing = frozenset(p[1] for p in self.parts if p[1] and p[1] not in have)
        stmt = self._texts.get(missing)
        if stmt is None:
            stmt = text(";\n".join([p[2] for p in self.parts if p[1] in missing] + [p[3] for p in self.parts]))
            self._texts[missing] = stmt
        # recorded before it runs: PREPARE is not undone by a rollback, and the PREPAREs come
        # first in the string, so an error further on leaves them prepared
        have.update(missing)
        return conn.execute(stmt, params)


def _prepared_lost(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "pgcode", None) in _PREPARED_LOST


_PG_POP_STATEMENTS = {name: _PgStatements(stmts) for name, stmts in _PG_POP.items()}
_PG_SUBMIT_CHECK_STATEMENTS = _PgStatements(_PG_SUBMIT_CHECK)
_PG_SUBMIT_WRITE_STATEMENTS = _PgStatements(_PG_SUBMIT_WRITE)


class LabelQueue:
    """One labeller's view of the shared queue (one instance per browser tab)."""

    def __init__(self, database_url_or_engine: str | Engine | None = None, worker_id: str | None = None,
                 *, settings=None, rng: random.Random | None = None, guard: Callable[[], None] | None = None):
        """`guard`, when given, runs before every pop, submit, skip and undo and raises to refuse
        it (the page passes one that checks the personal link's key is still valid)."""
        if settings is None:
            from smartlabel.settings import load_settings

            settings = load_settings()
        self.settings = settings
        self.engine = make_engine(database_url_or_engine or settings.database_url)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self.worker_id = worker_id
        self.labels = list(settings.labels)
        self.overlap = int(settings.overlap)
        self.lease_seconds = float(settings.lease_seconds)
        self.shuffle_prop = float(settings.shuffle_prop)
        self.audit_share = float(settings.audit_share)
        self.review_share = float(settings.review_share)
        self._rng = rng or random.Random()
        self._guard = guard
        self._pg = is_postgres(self.engine)
        self._prepared = self._pg  # prepared statements on PostgreSQL (_PgStatements)
        # this session's hand-outs, newest last: [item_id, state] with state
        # 'pending' (shown, not yet labelled), 'labelled' or 'skipped'
        self._history: list[list[Any]] = []
        self._return_first: list[int] = []  # items undo gave back, LIFO

    # --- superintendent's protocol --------------------------------------------

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        while True:
            try:
                yield self.pop()
            except IndexError:
                return

    @property
    def progress(self) -> float:
        c = self.counts()
        return c["done"] / c["total"] if c["total"] else 0.0

    def pop(self) -> tuple[int, dict]:
        """Hand this worker the most useful open item; IndexError when none is left."""
        worker = self._authorised()
        while self._return_first:
            item_id = self._return_first.pop()
            got = self._claim(("given",), item_id=item_id, reason="undo")
            if got is not None and got is not LOST_RACE:  # lost: someone else holds it now
                return self._handed(*got)
        order = self._draw_order()
        if self._history:  # "held" resumes a reloaded tab; this session already has its posts
            order = order[1:]
        misses = races = 0
        while misses < 5:
            got = self._claim(order)
            if got is LOST_RACE and races < MAX_LOST_RACES:
                races += 1  # the same draw again, on a fresh snapshot (it cannot be won twice)
                continue
            if got is not None and got is not LOST_RACE:
                return self._handed(*got)
            if not self._any_open_for(worker):
                break
            misses += 1  # what is open is held by others right now
        raise IndexError(f"no post left for {worker!r}")

    def submit(self, item_id: int, label: str) -> bool:
        """Store this worker's label for an item they were handed (never overwrites).

        Returns True when it was stored as a second opinion: the lease had been lost and
        OVERLAP other labellers labelled the post meanwhile (their labels decide)."""
        worker = self._authorised()
        if label not in self.labels:
            raise UnknownLabelError(
                f"{label!r} is not one of the labels {self.labels}; pick one of them "
                "(or add it to LABELS and restart)"
            )
        mine = {"item_id": item_id, "worker": worker}
        if self._pg:
            second = self._submit_pg(mine, label)
            self._mark(item_id, "labelled")
            return second
        with immediate(self.engine) as conn:
            self._lock_item(conn, item_id)
            now = utcnow()  # after the lock: the label's time orders it after the hand-out
            held = conn.execute(text(_LAST_HANDOUT), mine).first()
            if held is None:
                raise _not_held(item_id, worker)
            if conn.execute(text(_MY_LIVE_LABEL), mine).first():
                self._mark(item_id, "labelled")  # a stale post must not come back through undo
                raise _already_labelled(item_id, worker)
            second = self._is_second_opinion(conn, mine, held.reason)
            conn.execute(text(_INSERT_LABEL), {
                **mine, "label": label, "now": now, "reason": held.reason, "run_id": held.run_id,
                "spent": max(0.0, (now - as_datetime(held.handed_at)).total_seconds()), "second": second})
            store_items.recount(conn, [item_id], self.overlap)
            conn.execute(text(_SINK_DONE), {"item_id": item_id, "floor": DONE_PRIORITY})
            _release(conn, item_id, worker)
        self._mark(item_id, "labelled")
        return second

    def _pg_transaction(self, work: Callable[[Connection], Any]):
        """Run `work(conn)` in one transaction; again with plain statements should the
        server have lost the prepared ones (see _PgStatements)."""
        while True:
            prepared = self._prepared
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except DBAPIError as exc:
                if not (prepared and _prepared_lost(exc)):
                    raise
                self._prepared = False
                log.warning("prepared statements are lost between transactions on %s (a pooler in "
                            "transaction mode?): this queue uses plain statements from now on", self.url)

    def _submit_pg(self, mine: dict, label: str) -> bool:
        """submit on PostgreSQL: lock and check in one round trip, write in one, commit."""
        return self._pg_transaction(lambda conn: self._submit_in(conn, mine, label))

    def _submit_in(self, conn: Connection, mine: dict, label: str) -> bool:
        item_id, worker = mine["item_id"], mine["worker"]
        row = _PG_SUBMIT_CHECK_STATEMENTS.execute(conn, mine, self._prepared).one()
        now = utcnow()  # after the lock: the label's time orders it after the hand-out
        if not row.item_found:
            raise _unknown_item(item_id)
        if row.handed_at is None:
            raise _not_held(item_id, worker)
        if row.mine:
            self._mark(item_id, "labelled")  # a stale post must not come back through undo
            raise _already_labelled(item_id, worker)
        reason = row.replaced_reason if row.reason == "undo" else row.reason
        second = reason not in VOTE_ON_DONE and int(row.decided) >= self.overlap
        _PG_SUBMIT_WRITE_STATEMENTS.execute(conn, {
            **mine, "label": label, "now": now, "reason": row.reason, "run_id": row.run_id,
            "spent": max(0.0, (now - as_datetime(row.handed_at)).total_seconds()), "second": second,
            "overlap": self.overlap, "floor": DONE_PRIORITY}, self._prepared)
        return second

    def renew(self, item_id: int) -> bool:
        """Extend this worker's live lease on `item_id` by LEASE_SECONDS from now.

        False (nothing changed) when the lease is not theirs or no longer live: it expired,
        or the post was labelled, skipped or handed to someone else."""
        worker = self._authorised()
        with immediate(self.engine) as conn:
            now = utcnow()
            done = conn.execute(text(_RENEW), {"item_id": item_id, "worker": worker, "now": now,
                                               "expires": now + timedelta(seconds=self.lease_seconds)})
            return done.rowcount == 1

    def skip(self, item_id: int) -> None:
        """Give the item back to the pool and lower it for this worker only."""
        worker = self._authorised()
        now = utcnow()
        mine = {"item_id": item_id, "worker": worker}
        with immediate(self.engine) as conn:
            self._lock_item(conn, item_id)
            if not conn.execute(text(_HANDED_TO_ME), mine).first():
                raise NotHeldError(f"post {item_id} was never handed to {worker!r}; nothing to skip")
            _release(conn, item_id, worker)
            conn.execute(text(_INSERT_SKIP), {**mine, "now": now})
        self._mark(item_id, "skipped")

    def undo(self) -> int:
        """Undo this worker's last step and return the item it concerned.

        The newest post shown but not labelled is put back to be shown again;
        otherwise this worker's newest label (this session's, or the newest in
        the database after a reload) is retracted (`retracted_at`, `retracted_by`: it
        stays in `labels`, every count and the training data leave it out) and its post
        handed back first. Only this worker's own labels are ever retracted.
        """
        worker = self._authorised()
        if self._history and self._history[-1][1] in ("pending", "skipped"):
            item_id, state = self._history.pop()
            if state == "skipped":
                with immediate(self.engine) as conn:
                    conn.execute(text(_DELETE_SKIP), {"item_id": item_id, "worker": worker})
            self._return_first.append(item_id)
            return item_id
        now = utcnow()
        with immediate(self.engine) as conn:
            if self._history:
                row = conn.execute(text(_MY_NEWEST_LABEL_OF),
                                   {"worker": worker, "item_id": self._history[-1][0]}).first()
            else:
                row = conn.execute(text(_MY_NEWEST_LABEL), {"worker": worker}).first()
            if row is None:
                raise NothingToUndoError(f"nothing to undo: {worker!r} has no label to take back")
            self._lock_item(conn, row.item_id)
            conn.execute(text(_RETRACT), {"id": row.id, "worker": worker, "now": now})
            store_items.recount(conn, [row.item_id], self.overlap)
            # hand it straight back to this worker (if no one else holds it now)
            conn.execute(
                text(_CLAIM_VALUES),
                {"item_id": row.item_id, "worker": worker, "now": now,
                 "expires": now + timedelta(seconds=self.lease_seconds), "reason": "undo", "run_id": None},
            )
        if self._history:
            self._history.pop()
        self._return_first.append(row.item_id)
        return row.item_id

    # --- extras -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Items in all, done, labelled by this worker (retracted labels left out), left, held right now."""
        with self.engine.connect() as conn:
            total, done, mine, leased = conn.execute(
                text(_COUNTS), {"worker": self.worker_id or "", "now": utcnow()}).one()
        return {"total": int(total), "done": int(done), "labelled_by_me": int(mine),
                "left": int(total) - int(done), "leased": int(leased)}

    def item(self, item_id: int) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(text(_ITEM), {"item_id": item_id}).mappings().first()
        if row is None:
            raise UnknownItemError(f"there is no post with id {item_id}")
        return _item_dict(row)

    # --- internals --------------------------------------------------------------

    def _worker(self) -> str:
        if not self.worker_id or not str(self.worker_id).strip():
            raise QueueError("no labeller name set: set worker_id before asking for posts")
        return str(self.worker_id)

    def _authorised(self) -> str:
        """The worker id, once the guard (if any) let this step go ahead."""
        worker = self._worker()
        if self._guard is not None:
            self._guard()
        return worker

    def _handed(self, item_id: int, reason: str, item: dict | None = None) -> tuple[int, dict]:
        """Record a hand-out; `item` is the post as the pop read it (PostgreSQL), else read now."""
        self._history.append([item_id, "pending"])
        item = self.item(item_id) if item is None else item
        item["reason"] = reason
        return item_id, item

    def _mark(self, item_id: int, state: str) -> None:
        for entry in reversed(self._history):
            if entry[0] == item_id:
                entry[1] = state
                return
        self._history.append([item_id, state])

    def _draw_order(self) -> tuple[str, ...]:
        """One draw: SHUFFLE_PROP explore, then AUDIT_SHARE audit, then REVIEW_SHARE review
        (taken in that order: with SHUFFLE_PROP=1 every pop explores)."""
        u = self._rng.random()
        if u < self.shuffle_prop:
            return _EXPLORE_ORDER
        u -= self.shuffle_prop
        if u < self.audit_share:
            return _AUDIT_ORDER
        u -= self.audit_share
        if u < self.review_share:
            return _REVIEW_ORDER
        return _ORDER

    def _is_second_opinion(self, conn: Connection, mine: dict, reason: str | None) -> bool:
        """Is a label given now to this post a second opinion (see the module's docstring)?"""
        if reason == "undo":  # a relabel after undo is what the label it replaces was
            reason = conn.execute(text(_REPLACED_REASON), mine).scalar()
        if reason in VOTE_ON_DONE:
            return False
        return int(conn.execute(text(_DECIDED_BY_OTHERS), mine).scalar_one()) >= self.overlap

    def _lock_item(self, conn: Connection, item_id: int) -> None:
        sql = _LOCK_ITEM["postgresql" if self._pg else "sqlite"]
        if conn.execute(text(sql), {"item_id": item_id}).first() is None:
            raise _unknown_item(item_id)

    def _claim(self, order: Sequence[str], item_id: int | None = None, reason: str | None = None):
        """Try each hand-out path in turn; return (item_id, reason, post or None), None when
        no path has a post for this worker, or LOST_RACE."""
        worker = self._worker()
        now = utcnow()
        params = {"worker": worker, "now": now, "expires": now + timedelta(seconds=self.lease_seconds),
                  "item_id": item_id}
        if self._pg:
            # One transaction for every path tried (a path that finds nothing locks nothing),
            # committed without waiting for the WAL flush (_ASYNC_COMMIT, sent with each
            # path's statement): a hand-out is re-done after a server crash (its lease and
            # log row lost, the post comes back); labels are the durable writes (submit
            # waits for its commit as usual). The post comes back with the hand-out. A lost
            # race ends the transaction at once: it holds that post's row lock, which the
            # winner's submit waits for.
            def pop(conn: Connection):
                for name in order:
                    row = _PG_POP_STATEMENTS[name].execute(
                        conn, {**params, "reason": reason or name}, self._prepared).mappings().first()
                    if row is None:
                        continue
                    if row["id"] is None:
                        return LOST_RACE
                    return row["id"], row["handout_reason"], _item_dict(row)
                return None

            return self._pg_transaction(pop)
        with immediate(self.engine) as conn:
            now = utcnow()  # after BEGIN IMMEDIATE: waiting for the lock must not age the lease
            params.update(now=now, expires=now + timedelta(seconds=self.lease_seconds))
            for name in order:
                why = reason or name
                cand = conn.execute(text(_CANDIDATES[name]), {**params, "reason": why}).first()
                if cand is None:
                    continue
                if len(cand) > 2:  # the candidate names its reason ("priority" during a cold start)
                    why = cand[2]
                got = conn.execute(
                    text(_CLAIM_VALUES),
                    {**params, "item_id": cand[0], "reason": why, "run_id": cand[1]},
                ).first()
                if got is None:
                    continue
                conn.execute(
                    text(_LOG_HANDOUT),
                    {**params, "item_id": cand[0], "reason": why, "run_id": cand[1]},
                )
                return cand[0], why, None
        return None

    def _any_open_for(self, worker: str) -> bool:
        """Is anything still open for this worker (possibly held by others right now)?"""
        with self.engine.connect() as conn:
            return conn.execute(text(_ANY_OPEN_FOR), {"worker": worker, "now": utcnow()}).first() is not None


def _release(conn: Connection, item_id: int, worker: str) -> None:
    """Drop this worker's lease and skip mark on an item."""
    for sql in (_DELETE_LEASE, _DELETE_SKIP):
        conn.execute(text(sql), {"item_id": item_id, "worker": worker})


def _item_dict(row) -> dict:
    """What the page shows of a post (a row of _ITEM_COLUMNS)."""
    return {
        "id": row["id"], "external_id": row["external_id"], "title": row["title"],
        "selftext": row["selftext"], "clean_selftext": row["clean_selftext"], "extra": row["extra"],
        "run_id": row["pred_run_id"], "predicted_label": row["predicted_label"],
        "confidence": row["confidence"], "second_label": row["second_label"],
        "second_confidence": row["second_confidence"], "priority": row["priority"],
    }


def _unknown_item(item_id: int) -> UnknownItemError:
    return UnknownItemError(f"there is no post with id {item_id}; it may have been deleted")


def _not_held(item_id: int, worker: str) -> NotHeldError:
    return NotHeldError(f"post {item_id} was never handed to {worker!r}; label the post the page shows "
                        "(reload the page if it is stale)")


def _already_labelled(item_id: int, worker: str) -> AlreadyLabelledError:
    return AlreadyLabelledError(f"{worker!r} already labelled post {item_id}; use undo to change that label")
