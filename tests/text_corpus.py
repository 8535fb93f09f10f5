"""A small synthetic corpus whose classes a text model can learn (shared by the orchestrator tests)."""

from __future__ import annotations

import hashlib
import random

from sqlalchemy import insert

from smartlabel.db import items, make_engine, utcnow

VOCAB = {
    "Advocacy": "petition campaign rally sign support volunteers lobby policy change demand action".split(),
    "Personal Stories": "my brother yesterday remember childhood felt mother growing school friend".split(),
    "Others": "recipe cooking dinner pasta garlic oven weekend football match movie".split(),
}
NOISE = "the and a of to in it is that this for on with people".split()


def make_texts(n_per_class: int, *, classes=None, seed: int = 0):
    """(texts, labels): n_per_class posts per class, shuffled, words drawn from the class vocabulary."""
    rng = random.Random(seed)
    classes = list(classes or VOCAB)
    rows = []
    for label in classes:
        for k in range(n_per_class):
            words = [rng.choice(VOCAB[label]) for _ in range(6)] + [rng.choice(NOISE) for _ in range(6)]
            rng.shuffle(words)
            rows.append((f"{label.split()[0].lower()} post {k} {rng.random():.6f}: " + " ".join(words), label))
    rng.shuffle(rows)
    return [t for t, _ in rows], [y for _, y in rows]


def seed_corpus(url_or_engine, n_per_class: int, *, classes=None, seed: int = 0):
    """Insert such posts as items; return (ids, truth labels) in insertion order."""
    texts, labels = make_texts(n_per_class, classes=classes, seed=seed)
    engine = make_engine(url_or_engine)
    rng = random.Random(seed + 1)
    rows = []
    for k, text in enumerate(texts):
        title, body = text.split(": ", 1)
        rows.append({
            "title": title, "selftext": body.capitalize(), "clean_selftext": body,
            "content_hash": hashlib.sha256(f"{seed}\0{k}\0{text}".encode()).hexdigest(),
            "imported_at": utcnow(), "rand_key": rng.random(), "label_count": 0, "done": False,
        })
    with engine.begin() as conn:
        conn.execute(insert(items), rows)
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM items ORDER BY id")]
    return ids[-len(rows):], labels


LABELS = ["Advocacy", "Personal Stories", "Others", "Factual Queries/Sharing"]


def queue_settings(url, **overrides):
    from smartlabel.settings import load_settings

    overrides.setdefault("labels", LABELS)
    overrides.setdefault("model", "lr")  # these tests are about the queue and the loop: the fast TF-IDF model
    overrides.setdefault("shuffle_prop", 0.0)
    overrides.setdefault("audit_share", 0.0)
    overrides.setdefault("review_share", 0.0)
    overrides.setdefault("cold_start_labels", 0)  # tests of the cold start turn it on (test_coldstart.py)
    return load_settings(database_url=url, **overrides)


def label_with_queue(url, truth: dict, workers=("ann", "bob", "cat"), per_worker: int = 10, *,
                     shuffle_prop: float = 0.0, wrong: dict | None = None, seed: int = 0) -> list[tuple]:
    """Each worker pops and labels `per_worker` posts through the real LabelQueue.

    `truth` maps item id -> label; `wrong` (item id -> label) overrides it.
    Returns [(item_id, label, worker, reason)].
    """
    from smartlabel.queue import LabelQueue

    st = queue_settings(url, shuffle_prop=shuffle_prop)
    done = []
    for k, w in enumerate(workers):
        q = LabelQueue(url, w, settings=st, rng=random.Random(seed * 100 + k))
        for _ in range(per_worker):
            item_id, item = q.pop()
            label = (wrong or {}).get(item_id, truth[item_id])
            q.submit(item_id, label)
            done.append((item_id, label, w, item["reason"]))
    return done
