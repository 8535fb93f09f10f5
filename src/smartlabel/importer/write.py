"""Writing: a batch of `Row`s becomes new posts and labels, inside the import's transaction.

Each row is first located: a post stored before (`StoredPost`), one this batch adds
(`NewPost`), or new. New posts are inserted with one executemany (`Writer`, SQLite) or
one COPY (`CopyWriter`, PostgreSQL); the labels of the batch are then checked against
those already given by the same worker and inserted. All SQL is the store's
(`smartlabel.store.items`, `smartlabel.store.labels`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from smartlabel.db import utcnow
from smartlabel.importer.result import ImportResult
from smartlabel.importer.validate import Row, clean_selftext_of
from smartlabel.store import items as store_items
from smartlabel.store import labels as store_labels


# an import into an empty pool remembers this many of its posts instead of looking them up
FILTER_MAX_POSTS = 2_000_000


@dataclass(slots=True)
class StoredPost:
    """A row's post is in the database already (from before this import, or an earlier batch of it)."""

    item_id: int


@dataclass(slots=True)
class NewPost:
    """A row's post is one this batch adds: its place in the batch's list of new posts."""

    index: int


PostRef = StoredPost | NewPost


class _IdTaken(Exception):
    """The row's id belongs to a post with another text; the message says where it is used."""


class _NewPosts:
    """The posts one batch adds (rows of `items`), found by content hash and by id before insert."""

    def __init__(self):
        self.rows: list[dict] = []
        self.by_hash: dict[str, NewPost] = {}
        self.by_ext: dict[str, NewPost] = {}

    def add(self, row: dict) -> NewPost:
        ref = NewPost(len(self.rows))
        self.rows.append(row)
        self.by_hash[row["content_hash"]] = ref
        if row["external_id"]:
            self.by_ext[row["external_id"]] = ref
        return ref

    def hash_of(self, ref: NewPost) -> str:
        return self.rows[ref.index]["content_hash"]


class Writer:
    """Writes batches of rows with `conn` (the import's transaction), counting into `result`.

    `finish()` recounts the posts that got labels (label_count, done with `overlap`). The
    SQLite import commits in chunks: it sets `conn` to each chunk's transaction and calls
    `finish()` before each commit, so every committed chunk is consistent on its own.
    """

    def __init__(self, conn: Connection, result: ImportResult, rng: random.Random, overlap: int):
        self.conn, self.result, self.rng, self.overlap = conn, result, rng, overlap
        self.now = utcnow()
        # Imports run one at a time and nothing else adds posts, so the posts this import
        # added are exactly those with a larger id than any before it.
        self.max_id_before = store_items.max_id(conn)
        self.touched: set[int] = set()  # posts that got labels
        # An import into an empty pool: only posts it added itself can be stored, so it keeps
        # the str hash of each one's content hash and id (about 70 bytes each) and looks up
        # only the rows whose hash is among them (in practice, the file's repeated rows)
        self.added: tuple[set[int], set[int]] | None = (set(), set()) if self.max_id_before == 0 else None

    def write(self, batch: list[Row]) -> None:
        """Add the batch's new posts, then its labels."""
        res = self.result
        hashes, ext_ids = {r.hash for r in batch}, {r.external_id for r in batch if r.external_id}
        if self.added is not None:
            by_hash, by_ext = self.added
            hashes = {h for h in hashes if hash(h) in by_hash}
            ext_ids = {e for e in ext_ids if hash(e) in by_ext}
        stored = self._existing(list(hashes), list(ext_ids))
        new = _NewPosts()
        labelled: list[tuple[PostRef, Row]] = []
        for r in batch:
            try:
                ref = self._locate(r, stored, new)
            except _IdTaken as taken:
                res.id_conflicts += 1
                self._note("id conflict: ", f"line {r.line}: id {r.external_id!r} {taken}")
                continue
            if ref is None:
                ref = new.add(self._new_item(r))
            elif isinstance(ref, NewPost) or ref.item_id > self.max_id_before:
                res.duplicates_in_file += 1
            else:
                res.already_present += 1
            if r.label is not None:
                labelled.append((ref, r))
        self._store(new, labelled)
        if self.added is not None:
            self._remember(new)

    def _remember(self, new: _NewPosts) -> None:
        """Keep the keys of the posts just added; past FILTER_MAX_POSTS, look every row up."""
        by_hash, by_ext = self.added
        by_hash.update(hash(h) for h in new.by_hash)
        by_ext.update(hash(e) for e in new.by_ext)
        if len(by_hash) > FILTER_MAX_POSTS:
            self.added = None

    def _store(self, new: _NewPosts, labelled: list[tuple[PostRef, Row]]) -> None:
        """Insert the batch's new posts, then its labels."""
        # Plain executemany (no RETURNING): SQLite would fall back to one statement per
        # row to return ids in order; ids are looked up by content hash when labels need them.
        self.result.added += store_items.insert(self.conn, new.rows)
        if labelled:
            self._write_labels(self._item_ids(labelled, new))

    def _existing(self, hashes: list[str], external_ids: list[str]):
        return store_items.find_existing(self.conn, hashes, external_ids)

    def finish(self) -> None:
        """Recompute label_count (distinct workers) and done of the posts that got labels."""
        store_items.recount(self.conn, sorted(self.touched), self.overlap)
        self.touched.clear()

    def _locate(self, r: Row, stored, new: _NewPosts) -> PostRef | None:
        """The post `r` is, if known: by its id first, else by its content hash. None: a new post.

        Raises _IdTaken when the row's id belongs to a post with another text."""
        by_hash, by_ext = stored
        if r.external_id and r.external_id in by_ext:
            item_id, h = by_ext[r.external_id]
            if h != r.hash:
                raise _IdTaken(
                    "already belongs to a post with another text; rows like it were not imported (give "
                    "them new ids, or drop the id column to match posts by their text)."
                )
            return StoredPost(item_id)
        if r.external_id and r.external_id in new.by_ext:
            ref = new.by_ext[r.external_id]
            if new.hash_of(ref) != r.hash:
                raise _IdTaken(
                    "is used earlier in the file for another text; rows like it were not imported "
                    "(give each post its own id)."
                )
            return ref
        if r.hash in by_hash:
            return StoredPost(by_hash[r.hash][0])
        return new.by_hash.get(r.hash)

    def _new_item(self, r: Row) -> dict:
        """The `items` row of a new post (its model text computed when the file gave none)."""
        return {
            "external_id": r.external_id,
            "title": r.title,
            "selftext": r.selftext,
            "clean_selftext": clean_selftext_of(r.selftext, r.clean_selftext),
            "extra": r.extra,
            "content_hash": r.hash,
            "imported_at": self.now,
            "rand_key": self.rng.random(),
            "label_count": 0,
            "done": False,
        }

    def _item_ids(self, labelled: list[tuple[PostRef, Row]], new: _NewPosts) -> list[tuple[int, Row]]:
        """The labelled rows with the ids of their posts (new posts' ids looked up by hash)."""
        wanted = list({new.hash_of(ref) for ref, _ in labelled if isinstance(ref, NewPost)})
        new_ids = store_items.ids_by_hash(self.conn, wanted)
        return [
            (new_ids[new.hash_of(ref)] if isinstance(ref, NewPost) else ref.item_id, r) for ref, r in labelled
        ]

    def _write_labels(self, labelled: list[tuple[int, Row]]) -> None:
        """Insert the labels no one gave yet; a worker's stored label is never overwritten."""
        res = self.result
        given = store_labels.by_worker(self.conn, [item_id for item_id, _ in labelled])
        to_insert = []
        for item_id, r in labelled:
            have = given.get((item_id, r.worker_id))
            if have is None:
                given[(item_id, r.worker_id)] = r.label
                to_insert.append(
                    {
                        "item_id": item_id,
                        "label": r.label,
                        "worker_id": r.worker_id,
                        "created_at": self.now,
                        "handout_reason": "import",
                    }
                )
            elif have == r.label:
                res.labels_present += 1
            else:
                res.labels_conflicting += 1
                self._note(
                    "label differs: ",
                    f"line {r.line}: worker {r.worker_id!r} already labelled this post {have!r}, the "
                    f"file says {r.label!r}; labels are never overwritten, the first one was kept.",
                )
        res.labels_added += store_labels.insert(self.conn, to_insert)
        self.touched.update(row["item_id"] for row in to_insert)

    def _note(self, key: str, text_: str) -> None:
        """Keep the first example of each kind of anomaly for the summary."""
        if not any(n.startswith(key) for n in self.result.notes):
            self.result.notes.append(f"{key}{text_}")


class CopyWriter(Writer):
    """PostgreSQL: the same rows, posts and labels as `Writer`, with the new posts written by COPY.

    Its batches are `ahead.Prepared` rows (checked, hashed and COPY-encoded in worker
    processes). Every row is located exactly as `Writer` does it (the same code: ids, content
    hashes, conflicts, duplicates, notes), with the stored posts looked up by array. The new
    posts then get their ids from the id sequence up front, so one COPY writes them and the
    batch's labels need no look-up of those ids. It all runs in the import's one
    transaction: a bad line later in the file, or any error, rolls every batch back.
    """

    def _existing(self, hashes: list[str], external_ids: list[str]):
        return store_items.find_existing(self.conn, hashes, external_ids, arrays=True)

    def _new_item(self, r) -> dict:
        """What COPY needs of a new post (its queue key drawn in file order, as `Writer` does)."""
        return {"external_id": r.external_id, "content_hash": r.hash, "copy_fields": r.copy_fields,
                "rand_key": self.rng.random()}

    def _store(self, new: _NewPosts, labelled: list[tuple[PostRef, Row]]) -> None:
        ids = store_items.reserve_ids(self.conn, len(new.rows))
        for row, item_id in zip(new.rows, ids):
            row["id"] = item_id
        self.result.added += store_items.copy_insert(
            self.conn,
            [(r["id"], r["external_id"], r["copy_fields"], r["content_hash"], r["rand_key"]) for r in new.rows],
            self.now,
        )
        if labelled:
            self._write_labels([
                (new.rows[ref.index]["id"] if isinstance(ref, NewPost) else ref.item_id, r) for ref, r in labelled
            ])
