"""Cold start (issue 15 item 3): representative hand-outs until COLD_START_LABELS, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
from sqlalchemy import insert, text

from smartlabel import coldstart
from smartlabel.db import items, make_engine, utcnow
from smartlabel.interface.render import model_line_html, render_post_html, reason_text
from smartlabel.orchestrator import Orchestrator
from smartlabel.queue import LabelQueue
from smartlabel.store import runs as store_runs

from text_corpus import make_texts, queue_settings, seed_corpus

# one big cluster and three small ones (each bigger than coldstart.NEIGHBOURS): uniform random
# (or id order: the posts go in by topic) rarely gives one post of each in the first four
# hand-outs (random: 4! * 60/96 * (12/96)^3 = 3 %)
SIZES = {"Others": 60, "Advocacy": 12, "Personal Stories": 12, "Factual Queries/Sharing": 12}
WORDS = {"Others": "recipe pasta garlic oven", "Advocacy": "petition rally lobby campaign",
         "Personal Stories": "brother childhood mother remember",
         "Factual Queries/Sharing": "census statistics report figures"}
NOISE = "today really quite just".split()


def clustered_pool(url):
    """Posts of three clearly separate topics (8 topic words, 2 common ones each); id -> topic."""
    rng = random.Random(5)
    rows = []
    for label, n in SIZES.items():
        for k in range(n):
            words = [rng.choice(WORDS[label].split()) for _ in range(8)] + rng.sample(NOISE, 2)
            rng.shuffle(words)
            body = " ".join(words)
            rows.append({"title": f"note {len(rows)}", "selftext": body, "clean_selftext": body,
                         "content_hash": hashlib.sha256(f"{len(rows)} {body}".encode()).hexdigest(),
                         "imported_at": utcnow(), "rand_key": rng.random(), "label_count": 0, "done": False,
                         "_label": label})
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(items), [{k: v for k, v in r.items() if k != "_label"} for r in rows])
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM items ORDER BY id")]
    engine.dispose()
    return dict(zip(ids, [r["_label"] for r in rows]))


def orchestrator(url, tmp_path, **overrides):
    overrides.setdefault("cold_start_labels", 50)
    overrides.setdefault("retrain_every_n_labels", 10)
    return Orchestrator(queue_settings(url, models_dir=str(tmp_path / "models"), **overrides))


def pops(url, workers, **settings):
    """One post popped by each worker (all held at once, as concurrent labellers hold them)."""
    st = queue_settings(url, **settings)
    out = []
    for k, w in enumerate(workers):
        q = LabelQueue(url, w, settings=st, rng=random.Random(k))
        item_id, item = q.pop()
        out.append((q, item_id, item))
    return out


def test_greedy_order_takes_one_post_per_cluster_first_and_avoids_labelled_regions():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32)
    sizes = [70, 10, 10, 10]
    Z = np.vstack([c + 0.05 * rng.standard_normal((n, 16)) for c, n in zip(centres, sizes)]).astype(np.float32)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    cluster = np.repeat(np.arange(4), sizes)
    first = coldstart.greedy_order(Z, picks=4)
    assert sorted(cluster[first]) == [0, 1, 2, 3]
    assert cluster[first[0]] == 0  # the densest region first
    # with posts of clusters 0 and 1 labelled, the first picks come from 2 and 3
    labelled = np.vstack([centres[0], centres[1]])
    assert sorted(cluster[coldstart.greedy_order(Z, labelled, picks=2)]) == [2, 3]


def test_representative_order_ranks_a_sample_first_and_the_rest_randomly():
    texts, _ = make_texts(40)
    from sklearn.feature_extraction.text import TfidfVectorizer

    X = TfidfVectorizer().fit_transform(texts)
    prio = coldstart.representative_order(X, rng=1, sample=50)
    assert (prio > 1).sum() == 50 and (prio < 1).sum() == len(texts) - 50
    assert np.array_equal(prio, coldstart.representative_order(X, rng=1, sample=50))  # deterministic per seed


def test_few_labels_write_a_coldstart_run_whose_order_is_handed_out_diverse(db_url, engine_for, tmp_path):
    truth = clustered_pool(db_url)
    engine = engine_for(db_url)
    orch = orchestrator(db_url, tmp_path)
    result = orch.tick()  # no labels at all: no model, but a cold-start order
    assert result is not None and result.status == "ok", result
    run = store_runs.current(engine)
    assert (run["kind"], run["acquisition"], run["status"]) == ("coldstart", "coldstart", "ok")
    with engine.connect() as conn:
        n_pred = conn.execute(text("SELECT COUNT(*) FROM predictions WHERE run_id = :r"), {"r": run["id"]}).scalar()
    assert n_pred == len(truth)
    assert orch.tick() is None  # nothing imported since: no second cold-start run
    got = pops(db_url, ["ann", "bob", "cat", "dan"])
    assert [item["reason"] for _, _, item in got] == ["coldstart"] * 4
    assert sorted(truth[i] for _, i, _ in got) == sorted(SIZES)  # one of each cluster
    assert "chosen to represent the pool" in render_post_html(got[0][2])
    assert "none yet" in model_line_html(run) and "represent the pool" in model_line_html(run)


def test_new_imports_during_the_cold_start_get_a_fresh_order(sqlite_url, engine_for, tmp_path):
    seed_corpus(sqlite_url, 5)
    orch = orchestrator(sqlite_url, tmp_path)
    first = orch.tick()
    seed_corpus(sqlite_url, 5, seed=7)
    second = orch.tick()
    assert second is not None and second.status == "ok" and second.run_id > first.run_id
    assert store_runs.current(engine_for(sqlite_url))["id"] == second.run_id


def test_disabled_cold_start_keeps_random_hand_outs(sqlite_url, tmp_path):
    clustered_pool(sqlite_url)
    assert orchestrator(sqlite_url, tmp_path, cold_start_labels=0).tick() is None
    assert [item["reason"] for _, _, item in pops(sqlite_url, ["ann"])] == ["unscored"]


def label(url, worker, n, truth):
    q = LabelQueue(url, worker, settings=queue_settings(url), rng=random.Random(0))
    reasons = []
    for _ in range(n):
        item_id, item = q.pop()
        q.submit(item_id, truth[item_id])
        reasons.append(item["reason"])
    return reasons


def test_training_runs_follow_the_cold_start_until_the_threshold(db_url, engine_for, tmp_path):
    ids, labels = seed_corpus(db_url, 20)
    truth = dict(zip(ids, labels))
    engine = engine_for(db_url)
    orch = orchestrator(db_url, tmp_path, cold_start_labels=20, retrain_every_n_labels=10)
    orch.tick()
    assert label(db_url, "ann", 10, truth) == ["coldstart"] * 10
    trained = orch.tick()  # 10 labels < 20: a model, its guesses, but the cold-start order
    assert trained.status == "ok", trained.message
    run = store_runs.current(engine)
    assert (run["kind"], run["acquisition"]) == ("train", "coldstart")
    assert "CV accuracy" in model_line_html(run)  # a model exists: the page says so
    _, item_id, item = pops(db_url, ["bob"])[0]
    assert item["reason"] == "coldstart" and item["predicted_label"] is not None
    assert "chosen to represent the pool" in reason_text(item)
    assert "Model's guess" in render_post_html(item)  # not a blind post: the guess is shown
    assert label(db_url, "ann", 10, truth) == ["coldstart"] * 10
    assert orch.tick().status == "ok"  # 20 labels: the model's acquisition takes over
    run = store_runs.current(engine)
    assert (run["kind"], run["acquisition"]) == ("train", "margin")
    assert label(db_url, "cat", 3, truth) == ["priority"] * 3


def test_skipped_runs_still_leave_a_cold_start_order(sqlite_url, engine_for, tmp_path):
    ids, labels = seed_corpus(sqlite_url, 10)
    orch = orchestrator(sqlite_url, tmp_path, retrain_every_n_labels=2)
    orch.tick()
    one_class = {i: "Others" for i in ids}  # every label the same: no model can be trained
    label(sqlite_url, "ann", 2, one_class)
    assert orch.tick().status == "skipped"
    run = store_runs.current(engine_for(sqlite_url))
    assert run["kind"] == "coldstart" and run["n_labels"] == 2


def test_exploration_and_audit_stay_uniform_random_during_the_cold_start(db_url, engine_for, tmp_path):
    truth = clustered_pool(db_url)
    engine = engine_for(db_url)
    orchestrator(db_url, tmp_path).tick()
    with engine.connect() as conn:
        by_rand = [r[0] for r in conn.execute(text("SELECT id FROM items ORDER BY rand_key"))]
    got = pops(db_url, ["ann", "bob", "cat", "dan"], shuffle_prop=1.0)
    assert [item["reason"] for _, _, item in got] == ["random"] * 4
    assert [i for _, i, _ in got] == by_rand[:4]  # rand_key order: the cold-start order plays no part
    for q, item_id, _ in got:
        q.submit(item_id, truth[item_id])
    # audit: a random post one other labeller labelled, in rand_key order too
    q = LabelQueue(db_url, "eve", settings=queue_settings(db_url, audit_share=1.0), rng=random.Random(0))
    item_id, item = q.pop()
    assert item["reason"] == "audit" and item_id == by_rand[0]


def test_reason_text_for_coldstart():
    assert reason_text({"reason": "coldstart"}).startswith("chosen to represent the pool")


def test_simulate_uses_the_cold_start_for_strategies_not_for_random():
    from smartlabel.simulate import Corpus, simulate

    texts, labels = make_texts(30)
    corpus = Corpus(texts=texts, truth=np.array(labels, dtype=object))
    kw = dict(strategies=["entropy"], initial=6, step=6, budget=18, seeds=[0], progress=False, log=lambda m: None)
    on = simulate(corpus, cold_start=12, **kw)
    off = simulate(corpus, cold_start=0, **kw)
    assert on.info["cold_start"] == 12 and off.info["cold_start"] == 0
    rand = lambda r: r.curve[r.curve.strategy == "random"].heldout_accuracy.tolist()  # noqa: E731
    assert rand(on) == rand(off)  # the baseline is untouched
    from smartlabel.settings import Settings

    assert simulate(corpus, **kw).info["cold_start"] == Settings.model_fields["cold_start_labels"].default
