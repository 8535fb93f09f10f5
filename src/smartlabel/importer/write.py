"""Writing: a batch of `Row`s becomes new posts and labels, inside the import's transaction."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import distinct, func, insert, select, update
from sqlalchemy.engine import Connection

from smartlabel.importer.result import ImportResult
from smartlabel.importer.validate import Row
from smartlabel.text import clean_text


class Writer:
    def __init__(self, conn: Connection, result: ImportResult, rng: random.Random, overlap: int):
        from smartlabel.db import items, labels, utcnow

        self.conn, self.result, self.rng, self.overlap = conn, result, rng, overlap
        self.items, self.labels = items, labels
        self.now = utcnow()
        # Imports run one at a time and nothing else adds posts, so the posts this import
        # added are exactly those with a larger id than any before it.
        self.max_id_before = conn.execute(select(func.coalesce(func.max(items.c.id), 0))).scalar_one()
        self.touched: set[int] = set()
        # Plain executemany (no RETURNING): SQLite would fall back to one statement per
        # row to return ids in order; ids are looked up by content hash when labels need them.
        self.insert_items = insert(items)

    def _note(self, key: str, text_: str):
        if not any(n.startswith(key) for n in self.result.notes):
            self.result.notes.append(f"{key}{text_}")

    def write(self, batch: list[Row]) -> None:
        conn, items, labels, res = self.conn, self.items, self.labels, self.result
        hashes = list({r.hash for r in batch})
        exts = list({r.external_id for r in batch if r.external_id})
        by_hash: dict[str, tuple[int, str | None]] = {}
        by_ext: dict[str, tuple[int, str]] = {}
        cols = (items.c.id, items.c.content_hash, items.c.external_id)
        for row in conn.execute(select(*cols).where(items.c.content_hash.in_(hashes))):
            by_hash[row.content_hash] = (row.id, row.external_id)
        if exts:
            for row in conn.execute(select(*cols).where(items.c.external_id.in_(exts))):
                by_ext[row.external_id] = (row.id, row.content_hash)

        new_rows: list[dict] = []
        new_by_hash: dict[str, int] = {}  # hash -> index in new_rows
        new_by_ext: dict[str, int] = {}
        pending_labels: list[tuple[Any, Row]] = []  # (item id or ("new", index), row)
        for r in batch:
            ref: Any = None
            if r.external_id and r.external_id in by_ext:
                item_id, h = by_ext[r.external_id]
                if h != r.hash:
                    res.id_conflicts += 1
                    self._note(
                        "id conflict: ",
                        f"line {r.line}: id {r.external_id!r} already belongs to a post with another "
                        "text; rows like it were not imported (give them new ids, or drop the id column "
                        "to match posts by their text).",
                    )
                    continue
                ref = item_id
            elif r.external_id and r.external_id in new_by_ext:
                idx = new_by_ext[r.external_id]
                if new_rows[idx]["content_hash"] != r.hash:
                    res.id_conflicts += 1
                    self._note(
                        "id conflict: ",
                        f"line {r.line}: id {r.external_id!r} is used earlier in the file for another "
                        "text; rows like it were not imported (give each post its own id).",
                    )
                    continue
                ref = ("new", idx)
            elif r.hash in by_hash:
                ref = by_hash[r.hash][0]
            elif r.hash in new_by_hash:
                ref = ("new", new_by_hash[r.hash])
            if ref is None:
                idx = len(new_rows)
                new_rows.append(
                    {
                        "external_id": r.external_id,
                        "title": r.title,
                        "selftext": r.selftext,
                        "clean_selftext": r.clean_selftext
                        if r.clean_selftext is not None
                        else clean_text(r.selftext),
                        "extra": r.extra,
                        "content_hash": r.hash,
                        "imported_at": self.now,
                        "rand_key": self.rng.random(),
                        "label_count": 0,
                        "done": False,
                    }
                )
                new_by_hash[r.hash] = idx
                if r.external_id:
                    new_by_ext[r.external_id] = idx
                ref = ("new", idx)
            elif isinstance(ref, tuple) or ref > self.max_id_before:
                res.duplicates_in_file += 1
            else:
                res.already_present += 1
            if r.label is not None:
                pending_labels.append((ref, r))

        if new_rows:
            conn.execute(self.insert_items, new_rows)
            res.added += len(new_rows)
        if not pending_labels:
            return

        wanted = list({new_rows[ref[1]]["content_hash"] for ref, _ in pending_labels if isinstance(ref, tuple)})
        new_id: dict[str, int] = {}
        if wanted:
            q = select(items.c.id, items.c.content_hash).where(items.c.content_hash.in_(wanted))
            new_id = {h: i for i, h in conn.execute(q)}
        resolved = [
            (new_id[new_rows[ref[1]]["content_hash"]] if isinstance(ref, tuple) else ref, r)
            for ref, r in pending_labels
        ]
        ids = list({i for i, _ in resolved})
        stored: dict[tuple[int, str], str] = {}
        for row in conn.execute(
            select(labels.c.item_id, labels.c.worker_id, labels.c.label).where(labels.c.item_id.in_(ids))
        ):
            stored.setdefault((row.item_id, row.worker_id), row.label)
        to_insert = []
        for item_id, r in resolved:
            key = (item_id, r.worker_id)
            have = stored.get(key)
            if have is None:
                stored[key] = r.label
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
        if to_insert:
            conn.execute(insert(labels), to_insert)
            res.labels_added += len(to_insert)
            self.touched.update(row["item_id"] for row in to_insert)

    def finish(self) -> None:
        """Recompute label_count (distinct workers) and done for posts that got labels."""
        items, labels = self.items, self.labels
        count = (
            select(func.count(distinct(labels.c.worker_id)))
            .where(labels.c.item_id == items.c.id)
            .scalar_subquery()
        )
        touched = sorted(self.touched)
        for i in range(0, len(touched), 1000):
            chunk = touched[i : i + 1000]
            self.conn.execute(update(items).where(items.c.id.in_(chunk)).values(label_count=count))
            self.conn.execute(
                update(items).where(items.c.id.in_(chunk)).values(done=items.c.label_count >= self.overlap)
            )
