#!/usr/bin/env python3
"""Diversity: how often 16 concurrent hand-outs contain near-duplicates, and what spreading
them (smartlabel.diversity) does to the learning curve.

    python bench/bench_diversity.py                 # 25 rounds x 3 seeds x 3 variants (about 7 minutes on 2 busy cores)
    python bench/bench_diversity.py --rounds 3 --seeds 1 --out /tmp/d.json   # a smoke run

Data: aldata.csv (2,525 Reuters stories). Truth for the simulated labellers: the
story's first Reuters topic, the 8 commonest kept and the rest "other" (9 classes).
25% (stratified, fixed seed) is held out for accuracy; the rest is imported with the
real importer into a SQLite database.

Each (variant, seed) starts from a copy of that database: 32 posts labelled through
the queue in its random cold-start order, then rounds of
  1. train the orchestrator's model with its own code (`smartlabel.training.Learner`,
     MODEL=lr: TF-IDF word 1-2 grams + logistic regression, fitted on the columns the
     labelled posts use) on the agreed labels (`store.labels.training_set`), with the
     features of one feature cache fitted once on the pool (as the orchestrator's);
     `Learner.score` gives every open post its priority (`acquisition.priorities`:
     `entropy`, or `random`), `store.predictions.write` into a new run,
     `store.runs.set_current`;
  2. 16 labellers (16 LabelQueue instances) each pop once before anyone submits:
     the batch a team of 16 gets at the same moment;
  3. near-duplicate pairs in the batch are counted (cosine > 0.9 in a TF-IDF space
     fitted on the whole pool: not the one diversify uses), then all 16 submit the
     true label.
Variants: `entropy` (before), `entropy+diversity` (after: `diversify` with
top_k=DIVERSITY_TOP_K), `random` (priorities drawn at random: reference).
SHUFFLE_PROP, AUDIT_SHARE and REVIEW_SHARE are 0 so the batch is the priority order.
Results: bench/results/diversity.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BATCH = 16
INITIAL = 32
N_CLASSES = 8
COSINE = 0.9
VARIANTS = ("entropy", "entropy+diversity", "random")


def load_data(path: Path, seed: int = 0):
    import pandas as pd
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(path)
    primary = df["reuters_topics"].fillna("").str.split(";").str[0]
    common = primary.value_counts().index[:N_CLASSES]
    truth = np.where(primary.isin(common), primary, "other")
    pool, held = train_test_split(np.arange(len(df)), test_size=0.25, stratify=truth, random_state=seed)
    return df, truth, np.sort(pool), np.sort(held)


def build_database(df, pool, folder: Path) -> tuple[str, dict]:
    """Import the pool with the real importer; map item id -> row of df."""
    from sqlalchemy import text

    from smartlabel.db import make_engine
    from smartlabel.importer import import_file
    from smartlabel.settings import load_settings

    csv_path = folder / "pool.csv"
    df.iloc[pool][["id", "title", "selftext", "clean_selftext"]].to_csv(csv_path, index=False,
                                                                         quoting=csv.QUOTE_MINIMAL)
    url = f"sqlite:///{folder / 'base.db'}"
    import_file(csv_path, url, settings=load_settings(database_url=url), progress=False)
    engine = make_engine(url)
    row_of_external = {ext: k for k, ext in enumerate(df["id"])}
    with engine.connect() as conn:
        mapping = {i: row_of_external[ext] for i, ext in conn.execute(text("SELECT id, external_id FROM items"))}
    engine.dispose()
    return url, mapping


def model_text(df, rows):
    return (df["title"].fillna("").iloc[rows] + " " + df["clean_selftext"].fillna("").iloc[rows]).tolist()


def pool_learner(url: str, labels):
    """The orchestrator's Learner (MODEL=lr) with the features of every post of the pool."""
    from smartlabel.db import make_engine
    from smartlabel.store import items as store_items
    from smartlabel.training import Learner

    engine = make_engine(url)
    learner = Learner("lr", labels=labels)
    ids, hashes, _open = store_items.pool(engine)
    learner.sync(ids, hashes, lambda some: list(store_items.texts(engine, some)))
    engine.dispose()
    return learner


def near_duplicate_pairs(rows, X_measure, index_of_row) -> int:
    idx = [index_of_row[r] for r in rows]
    S = (X_measure[idx] @ X_measure[idx].T).toarray()
    return int(np.sum(np.triu(S > COSINE, k=1)))


def run_variant(variant: str, seed: int, base_db: Path, folder: Path, df, truth, mapping, held, learner,
                X_measure, index_of_row, rounds: int, top_k: int) -> dict:
    import random

    from sqlalchemy import text

    from smartlabel.db import make_engine
    from smartlabel.diversity import diversify
    from smartlabel.queue import LabelQueue
    from smartlabel.settings import load_settings
    from smartlabel.store import items as store_items, labels as store_labels
    from smartlabel.store import predictions as store_predictions, runs as store_runs

    db = folder / f"{variant.replace('+', '_')}-{seed}.db"
    shutil.copy(base_db, db)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    labels = sorted(set(truth))
    settings = load_settings(database_url=url, shuffle_prop=0.0, audit_share=0.0, review_share=0.0, labels=labels)
    strategy = "random" if variant == "random" else "entropy"
    item_ids = np.array(sorted(mapping), dtype=np.int64)
    X_held = learner.transform(model_text(df, held))
    y_held = truth[held]
    # cold start: the queue's random order for unscored posts, seeded per seed
    with engine.begin() as conn:
        rng = np.random.default_rng([seed, 7])
        conn.execute(text("UPDATE items SET rand_key = :r WHERE id = :i"),
                     [{"r": float(v), "i": int(i)} for i, v in zip(item_ids, rng.random(len(item_ids)))])
    q0 = LabelQueue(url, "init", settings=settings, rng=random.Random(seed))
    for _ in range(INITIAL):
        i, _item = q0.pop()
        q0.submit(i, truth[mapping[i]])
    curve, batches = [], []
    rng = np.random.default_rng([seed, 11])
    seconds_div = 0.0
    for r in range(rounds + 1):
        ids, y, _audit, _dropped = store_labels.training_set(engine, labels)
        open_ids = store_items.pool(engine)[2]
        model = learner.fit(learner.features(ids), y)
        acc = float(np.mean(model.predict(X_held) == y_held))
        curve.append({"labels": int(len(ids)), "heldout_accuracy": acc})
        if r == rounds:
            break
        pri = learner.score(model, open_ids, strategy, rng).priorities
        clusters = None
        if variant == "entropy+diversity":
            t = time.perf_counter()
            pri, clusters = diversify(open_ids.tolist(), pri,
                                      model_text(df, [mapping[int(i)] for i in open_ids]), top_k=top_k)
            seconds_div += time.perf_counter() - t
        run = store_runs.start(engine, model_kind="lr", acquisition=strategy)
        store_predictions.write(engine, run, open_ids.tolist(), list(map(float, pri)), clusters=clusters)
        store_runs.finish(engine, run, "ok")
        store_runs.set_current(engine, run)
        queues = [LabelQueue(url, f"w{k}", settings=settings, rng=random.Random(k)) for k in range(BATCH)]
        got = [q.pop()[0] for q in queues]  # 16 hand-outs before anyone submits
        pairs = near_duplicate_pairs([mapping[i] for i in got], X_measure, index_of_row)
        batches.append({"round": r, "near_duplicate_pairs": pairs})
        for q, i in zip(queues, got):
            q.submit(i, truth[mapping[i]])
            q.engine.dispose()
    engine.dispose()
    with_dup = sum(1 for b in batches if b["near_duplicate_pairs"] > 0)
    return {"curve": curve, "batches": batches, "batches_with_near_duplicates": with_dup,
            "near_duplicate_pairs": sum(b["near_duplicate_pairs"] for b in batches),
            "seconds_diversify": round(seconds_div, 3)}


def summarise(runs: list[dict]) -> dict:
    """One variant over its seeds: near-duplicates per batch, the mean learning curve."""
    n_batches = sum(len(r["batches"]) for r in runs)
    curves = np.array([[p["heldout_accuracy"] for p in r["curve"]] for r in runs])
    labels = [p["labels"] for p in runs[0]["curve"]]
    return {
        "batches": n_batches,
        "batches_with_near_duplicates": sum(r["batches_with_near_duplicates"] for r in runs),
        "share_of_batches_with_near_duplicates": round(
            sum(r["batches_with_near_duplicates"] for r in runs) / n_batches, 3) if n_batches else None,
        "near_duplicate_pairs_per_batch": round(sum(r["near_duplicate_pairs"] for r in runs) / n_batches, 3)
        if n_batches else None,
        "most_near_duplicate_pairs_in_one_batch": max((b["near_duplicate_pairs"] for r in runs
                                                       for b in r["batches"]), default=0),
        "mean_curve": [{"labels": n, "heldout_accuracy": round(float(a), 4)}
                       for n, a in zip(labels, curves.mean(axis=0))],
        "mean_accuracy_over_curve": round(float(curves.mean()), 4),
        "mean_accuracy_over_curve_per_seed": [round(float(c.mean()), 4) for c in curves],
        "final_accuracy_per_seed": [round(float(c[-1]), 4) for c in curves],
        "batches_with_near_duplicates_per_seed": [r["batches_with_near_duplicates"] for r in runs],
        "final_accuracy": round(float(curves[:, -1].mean()), 4),
        "seconds_diversify_per_round": round(sum(r["seconds_diversify"] for r in runs) / max(1, n_batches), 3),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "aldata.csv")
    ap.add_argument("--rounds", type=int, default=25, help="batches of 16 after the 32 cold-start labels")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--top-k", type=int, default=1000, help="DIVERSITY_TOP_K for the diversity variant")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "diversity.json")
    args = ap.parse_args(argv)

    from sklearn.feature_extraction.text import TfidfVectorizer
    from threadpoolctl import threadpool_limits

    import scipy.optimize  # noqa: F401  (load every BLAS copy first: limits apply to loaded ones)

    t0 = time.perf_counter()
    df, truth, pool, held = load_data(args.data)
    folder = Path(tempfile.mkdtemp(prefix="bench-diversity-"))
    try:
        url, mapping = build_database(df, pool, folder)
        pool_text = model_text(df, pool)
        learner = pool_learner(url, sorted(set(truth)))  # the model's features
        X_measure = TfidfVectorizer(sublinear_tf=True).fit_transform(pool_text).tocsr()  # the yardstick
        index_of_row = {row: k for k, row in enumerate(pool)}
        S = (X_measure @ X_measure.T).toarray()
        np.fill_diagonal(S, 0)
        pool_stats = {"posts": int(len(pool)), "posts_with_a_near_duplicate": int((S.max(axis=1) > COSINE).sum()),
                      "near_duplicate_pairs": int(np.triu(S > COSINE, k=1).sum())}
        del S
        results = {v: [] for v in VARIANTS}
        with threadpool_limits(1, user_api="blas"):
            for seed in range(args.seeds):
                for variant in VARIANTS:
                    res = run_variant(variant, seed, folder / "base.db", folder, df, truth, mapping, held, learner,
                                      X_measure, index_of_row, args.rounds, args.top_k)
                    results[variant].append(res)
                    print(f"seed {seed} {variant:18s} batches with near-duplicates "
                          f"{res['batches_with_near_duplicates']}/{args.rounds}, pairs {res['near_duplicate_pairs']}, "
                          f"final accuracy {res['curve'][-1]['heldout_accuracy']:.3f}", file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    summary = {v: summarise(runs) for v, runs in results.items()}
    out = {
        "benchmark": "diversity",
        "data": "aldata.csv: 2,525 Reuters stories; truth = first topic, 8 commonest + other",
        "pool": pool_stats, "heldout": int(len(held)),
        "batch": BATCH, "initial_labels": INITIAL, "rounds": args.rounds, "seeds": args.seeds,
        "diversity_top_k": args.top_k, "near_duplicate_cosine": COSINE,
        "model": "smartlabel.training.Learner, MODEL=lr (TF-IDF 1-2 grams fitted on the pool + "
                 "logistic regression C=10 on the columns the labelled posts use)",
        "hand_out": "16 LabelQueue.pop() on SQLite before any submit; SHUFFLE_PROP=AUDIT_SHARE=REVIEW_SHARE=0",
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "seconds": round(time.perf_counter() - t0, 1),
        "variants": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(args.out)
    for v, s in summary.items():
        print(f"{v:18s} batches with near-duplicates {s['batches_with_near_duplicates']}/{s['batches']} "
              f"({s['share_of_batches_with_near_duplicates']:.0%}), pairs/batch {s['near_duplicate_pairs_per_batch']}, "
              f"mean accuracy over the curve {s['mean_accuracy_over_curve']}, final {s['final_accuracy']}")
    return out


if __name__ == "__main__":
    main()
