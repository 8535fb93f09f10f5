"""Small helpers shared by tests (seeding posts without going through the importer)."""

from __future__ import annotations

import hashlib
import random

from sqlalchemy import insert

from smartlabel.db import items, make_engine, utcnow


def seed_items(url_or_engine, n: int, *, seed: int = 0, prefix: str = "post") -> list[int]:
    """Insert n posts directly; return their ids in insertion order."""
    engine = make_engine(url_or_engine)
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        title = f"{prefix} {k} title"
        body = f"body of {prefix} {k}: " + " ".join(rng.choice(["rice", "oil", "grain", "bank", "rate"]) for _ in range(8))
        rows.append({
            "title": title, "selftext": body, "clean_selftext": body.lower(),
            "content_hash": hashlib.sha256(f"{title}\0{body}".encode()).hexdigest(),
            "imported_at": utcnow(), "rand_key": rng.random(), "label_count": 0, "done": False,
        })
    with engine.begin() as conn:
        conn.execute(insert(items), rows)
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM items ORDER BY id")]
    return ids[-n:]
