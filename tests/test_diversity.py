"""Near-duplicates among the top candidates are spread apart; 16 concurrent pops get no two of them."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sqlalchemy import text

from smartlabel.diversity import diversify, leader_groups
from smartlabel.errors import QualityInputError
from smartlabel.queue import LabelQueue
from smartlabel.store import predictions as store_predictions, runs as store_runs
from smartlabel.settings import load_settings

from helpers import seed_items

WIRE = ("fed adds reserves via customer repurchases the federal reserve entered the government "
        "securities market to arrange {k} billion dlrs of customer repurchase agreements a spokesman said")


def corpus(n_dup=10, n_other=30, seed=0):
    """n_dup near-copies of one wire story (cosine > 0.9), then n_other unrelated posts."""
    rng = random.Random(seed)
    words = ("wheat oil bank coffee gold ship trade sugar rate loan crop tanker price export grain fund "
             "merger share profit dividend strike port cocoa copper").split()
    dups = [WIRE.format(k=k + 1) for k in range(n_dup)]
    others = [" ".join(rng.sample(words, 8)) + f" item{k}" for k in range(n_other)]
    return dups + others


def test_leader_groups_put_near_copies_together():
    texts = corpus(4, 6)
    group, rank = leader_groups(texts)
    assert group[:4] == [0, 0, 0, 0] and rank[:4] == [0, 1, 2, 3]
    assert group[4:] == list(range(4, 10)) and rank[4:] == [0] * 6
    assert leader_groups(["", ""]) == ([0, 1], [0, 0])  # nothing to compare: every post leads


def test_diversify_spreads_duplicates_and_only_permutes_the_top():
    texts = corpus()
    ids = list(range(100, 140))
    prio = np.array([10.0 - 0.01 * k for k in range(10)] + [5.0 - 0.01 * k for k in range(30)])
    asked = []

    def fetch(some):
        asked.append(list(some))
        return [texts[i - 100] for i in some]

    new, clusters = diversify(ids, prio, fetch, top_k=30)
    assert asked == [ids[:30]], "only the top_k texts are read, best first"
    top16 = np.argsort(-new, kind="stable")[:16]
    assert sum(1 for i in top16 if i < 10) == 1, "one copy of the wire story among the first 16"
    assert top16[0] == 0, "the best post still comes first"
    assert sorted(new[:30]) == sorted(prio[:30]) and list(new[30:]) == list(prio[30:])
    assert min(new[:30]) >= max(prio[30:]), "the top_k stay above the rest"
    assert clusters[:10] == [100] * 10 and clusters[10:30] == ids[10:30] and clusters[30:] == [None] * 10
    # with fewer distinct candidates than pops, copies follow the leaders, round-robin
    new, _ = diversify(ids, prio, texts, top_k=20)
    assert sum(1 for i in np.argsort(-new, kind="stable")[:16] if i < 10) == 6
    same, none = diversify(ids, prio, texts, top_k=0)
    assert list(same) == list(prio) and none == [None] * 40
    with pytest.raises(QualityInputError):
        diversify(ids, prio, texts[:3])
    with pytest.raises(QualityInputError, match="returned 1 texts"):
        diversify(ids, prio, lambda some: ["x"], top_k=5)


def test_sixteen_concurrent_pops_get_no_two_near_duplicates(db_url, engine_for):
    engine = engine_for(db_url)
    texts = corpus()
    ids = seed_items(engine, len(texts))
    with engine.begin() as conn:
        for i, t in zip(ids, texts):
            conn.execute(text("UPDATE items SET title = '', clean_selftext = :t WHERE id = :i"), {"t": t, "i": i})
        run = conn.execute(text("INSERT INTO model_runs (started_at, status) VALUES (CURRENT_TIMESTAMP, 'ok') "
                                "RETURNING id")).scalar_one()
    prio = [10.0 - 0.01 * k for k in range(10)] + [5.0 - 0.01 * k for k in range(30)]
    from smartlabel.store import items as store_items

    # the orchestrator's hook line: texts read from the database, only for the top_k
    new, clusters = diversify(ids, prio, lambda some: store_items.texts(engine, some), top_k=40)
    store_predictions.write(engine, run, ids, new.tolist(), clusters=clusters)
    store_runs.set_current(engine, run)
    settings = load_settings(database_url=db_url, shuffle_prop=0.0, audit_share=0.0, review_share=0.0)
    got = [LabelQueue(db_url, f"w{k}", settings=settings).pop()[0] for k in range(16)]
    assert len(set(got)) == 16
    assert sum(1 for i in got if i in ids[:10]) == 1
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT item_id, cluster FROM predictions WHERE run_id = :r"), {"r": run}).all())
    assert all(stored[i] == ids[0] for i in ids[:10]) and all(stored[i] == i for i in ids[10:])
