#!/usr/bin/env python3
"""The baseline's side: superintendent 0.6.0's DatabaseQueue, run in bench/.venv-baseline.

superintendent's own queue breaks with sqlmodel newer than 0.0.44, so bench/run.py
runs this file with the baseline venv's interpreter (superintendent==0.6.0,
sqlmodel==0.0.44, sqlalchemy 2.0, and the same numpy/scipy/scikit-learn/pandas
versions as ours). Commands mirror bench/ours.py; one JSON object on the last
stdout line.

    baseline.py load     --url URL --corpus FILE --n N [--priorities]   its enqueue (timed)
    baseline.py reprio   --url URL          list_completed, fit, cross_val_score; then the timed
                                            cycle list_uncompleted, predict, entropy, reorder
    baseline.py handout  --url URL --workers W --ops N [--think-ms T]
    baseline.py stall    --url URL --workers W --think-ms T

The features are plain strings (title + " " + body), the cheapest form for its
JSON serialisation; labels go in with `enqueue(labels=...)` for the first 300.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# smartlabel.models only (numpy/scipy/scikit-learn): the same model definition as ours
sys.path.insert(0, str(HERE.parent / "src"))

import common  # noqa: E402
from common import N_TRAIN, emit  # noqa: E402  (default for --n-train)


def _queue(url, worker_id=None):
    from superintendent.db_queue import DatabaseQueue

    return DatabaseQueue(url, worker_id=worker_id)


def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("superintendent", "sqlmodel", "sqlalchemy", "scikit-learn", "numpy")}


def load(url: str, corpus_path: str, n: int, priorities: bool, n_train: int = N_TRAIN) -> dict:
    """Its `enqueue`: one ORM object per post, one session (timed: the baseline's import)."""
    corpus = common.read_corpus(corpus_path)
    texts, labels = [], []
    for k in range(n):
        title, body, lab = common.post(corpus, k)
        texts.append(common.model_text(title, body))
        labels.append(lab if k < n_train else None)
    prios = None
    if priorities:  # the pool as after a retrain(): ranks 0..n-1 (lowest first), shuffled
        prios = list(range(n))
        random.Random(11).shuffle(prios)
    q = _queue(url)
    t0 = time.perf_counter()
    q.enqueue(texts, labels=labels, priorities=prios)
    seconds = time.perf_counter() - t0
    q.engine.dispose()
    return {"n": n, "labelled": min(n, n_train), "enqueue_seconds": seconds, "versions": versions()}


def train(q) -> tuple:
    """What retrain() does first: fit on list_completed(), then cross_val_score(cv=3).

    The model is smartlabel's `lr` (TF-IDF 1-2 grams + logistic regression), built by
    smartlabel.models.make_model, so both sides score with the same model.
    """
    from sklearn.model_selection import cross_val_score

    from smartlabel.models import make_model

    t0 = time.perf_counter()
    _ids, x, y = q.list_completed()
    model = make_model("lr", labels=common.LABELS)
    model.fit(list(x), list(y))
    cross_val_score(model, list(x), list(y), cv=3)
    return model, time.perf_counter() - t0


def cycle(q, model, marks: dict | None = None) -> dict:
    """The rest of retrain(): score the uncompleted, entropy, reorder (as superintendent does it)."""
    from superintendent.acquisition_functions import entropy

    t0 = time.perf_counter()
    m0 = time.monotonic()
    ids, x = q.list_uncompleted()
    t1 = time.perf_counter()
    proba = model.predict_proba(x)
    ranks = list(entropy(proba, shuffle_prop=0.1))
    t2 = time.perf_counter()
    m1 = time.monotonic()
    q.reorder(OrderedDict([(id_, rank) for id_, rank in zip(ids, ranks)]))
    t3 = time.perf_counter()
    m2 = time.monotonic()
    if marks is not None:
        marks.update(score=(m0, m1), write=(m1, m2))
    return {"n_scored": len(ids), "seconds": t3 - t0, "read_seconds": t1 - t0, "score_seconds": t2 - t1,
            "write_seconds": t3 - t2}


def reprio(url: str) -> dict:
    import sqlalchemy as sa

    rss_start = common.proc_status_mb("VmRSS")
    q = _queue(url)
    model, train_seconds = train(q)
    rss_model = common.proc_status_mb("VmRSS")
    out = cycle(q, model)
    # the whole of its retrain(): training + cross-validation + the cycle
    out.update(train_seconds=train_seconds, retrain_seconds=train_seconds + out["seconds"])
    with q.engine.connect() as conn:  # what was stored: a priority on every uncompleted row
        out["stored_priorities"] = conn.execute(sa.text(
            "SELECT COUNT(*) FROM superintendentdata WHERE output IS NULL AND priority IS NOT NULL")).scalar_one()
        out["open_posts"] = conn.execute(
            sa.text("SELECT COUNT(*) FROM superintendentdata WHERE output IS NULL")).scalar_one()
    out.update(rss_start_mb=rss_start, rss_after_fit_mb=rss_model, rss_end_mb=common.proc_status_mb("VmRSS"),
               peak_rss_mb=common.proc_status_mb("VmHWM"))
    q.engine.dispose()
    return out


def make_queue(url, worker_id):
    q = _queue(url, worker_id)
    q._labelled_count()  # connect now, not inside the first timed pop
    return q


def _db_account(url: str) -> dict:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {"db_labels_by_workers": conn.execute(sa.text(
            "SELECT COUNT(*) FROM superintendentdata WHERE worker_id IS NOT NULL")).scalar_one()}
    engine.dispose()
    return out


def handout(url: str, workers: int, ops: int, think_ms: float) -> dict:
    import superintendent.db_queue  # noqa: F401  imported once, before the workers fork

    out = common.fixed_ops_run(make_queue, url, workers, ops, think_ms / 1000.0)
    out.update(_db_account(url))
    # its submit overwrites: each double hand-out is a label silently lost
    out["labels_overwritten"] = out["submits"] - out["db_labels_by_workers"]
    return out


def stall(url: str, workers: int, think_ms: float, quiet_s: float) -> dict:
    q = _queue(url)  # imports superintendent before the workers fork
    model, _s = train(q)
    q.engine.dispose()
    lab = common.Labellers(make_queue, url, workers, None, think_ms / 1000.0).start()
    time.sleep(quiet_s)
    quiet = (lab.started_at, time.monotonic())
    marks: dict = {}
    res = cycle(q, model, marks=marks)
    time.sleep(quiet_s / 2)
    summary = lab.finish()
    q.engine.dispose()
    return {"cycle": res, "labellers": summary,
            "quiet": lab.worst_pop_in(*quiet), "during_score": lab.worst_pop_in(*marks["score"]),
            "during_write": lab.worst_pop_in(*marks["write"]),
            "during_cycle": lab.worst_pop_in(marks["score"][0], marks["write"][1])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["load", "reprio", "handout", "stall", "versions"])
    ap.add_argument("--url")
    ap.add_argument("--corpus")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--priorities", action="store_true")
    ap.add_argument("--n-train", type=int, default=N_TRAIN, help="load: how many posts come labelled")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--ops", type=int, default=100)
    ap.add_argument("--think-ms", type=float, default=0.0)
    ap.add_argument("--quiet-s", type=float, default=1.5)
    a = ap.parse_args(argv)
    if a.command == "versions":
        emit(versions())
    elif a.command == "load":
        emit(load(a.url, a.corpus, a.n, a.priorities, a.n_train))
    elif a.command == "reprio":
        emit(reprio(a.url))
    elif a.command == "handout":
        emit(handout(a.url, a.workers, a.ops, a.think_ms))
    else:
        emit(stall(a.url, a.workers, a.think_ms, a.quiet_s))


if __name__ == "__main__":
    main()
