#!/usr/bin/env python3
"""Our side of the speed benchmarks: smartlabel's queue, in the project venv.

Run by bench/run.py as a subprocess; each command prints one JSON object on its
last stdout line (progress goes to stderr):

    ours.py seed     --url URL --corpus FILE --n N [--run]   posts (+300 labelled), optionally a current run
    ours.py reprio   --url URL                                one reprioritisation cycle, timed
    ours.py handout  --url URL --workers W --ops N [--think-ms T]
    ours.py stall    --url URL --workers W --think-ms T       labellers while a cycle is written
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import common  # noqa: E402
from common import LABELS, N_TRAIN, emit, progress  # noqa: E402


def _engine(url):
    from smartlabel.db import make_engine

    return make_engine(url)


# --- seeding (not timed as a benchmark) -------------------------------------------------


def seed(url: str, corpus_path: str, n: int, with_run: bool) -> dict:
    """Insert n posts straight into `items` (COPY on PostgreSQL); the first N_TRAIN carry a label."""
    from sqlalchemy import text

    from smartlabel import DEFAULT_LABELS
    from smartlabel.db import is_postgres, utcnow
    from smartlabel.migrate import upgrade

    assert tuple(DEFAULT_LABELS) == LABELS, "bench/common.py LABELS differ from smartlabel.DEFAULT_LABELS"
    t0 = time.perf_counter()
    engine = upgrade(url)
    corpus = common.read_corpus(corpus_path)
    rng = random.Random(7)
    now = utcnow()
    cols = ("external_id", "title", "selftext", "clean_selftext", "content_hash", "imported_at",
            "rand_key", "label_count", "done")

    def rows(lo, hi):
        for k in range(lo, hi):
            title, body, _lab = common.post(corpus, k)
            h = hashlib.sha256(f"{title}\0{body}".encode()).hexdigest()
            yield (f"p{k}", title, body, body, h, now, rng.random(), 0, False)

    chunk = 50_000
    if is_postgres(engine):
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            for lo in range(0, n, chunk):
                buf = io.StringIO()
                w = csv.writer(buf)
                for r in rows(lo, min(n, lo + chunk)):
                    w.writerow([v if not isinstance(v, bool) else ("t" if v else "f") for v in r])
                buf.seek(0)
                cur.copy_expert(f"COPY items ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)", buf)
                if n > chunk:
                    progress(f"seeded {min(n, lo + chunk):,}/{n:,} posts")
            raw.commit()
        finally:
            raw.close()
    else:
        stmt = text(f"INSERT INTO items ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})")
        for lo in range(0, n, chunk):
            with engine.begin() as conn:
                conn.execute(stmt, [dict(zip(cols, r)) for r in rows(lo, min(n, lo + chunk))])
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM items ORDER BY id LIMIT :k"), {"k": N_TRAIN})]
        conn.execute(
            text("""INSERT INTO labels (item_id, label, worker_id, created_at, handout_reason)
                    VALUES (:item_id, :label, 'seed', :now, 'import')"""),
            [{"item_id": i, "label": common.post(corpus, k)[2], "now": now} for k, i in enumerate(ids)],
        )
        conn.execute(text("UPDATE items SET done = :t, label_count = 1 WHERE id = :id"),
                     [{"t": True, "id": i} for i in ids])
    if is_postgres(engine):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    out = {"n": n, "labelled": len(ids), "seconds": time.perf_counter() - t0}
    if with_run:  # the pool as it is after the orchestrator's first run: a priority for every open post
        from smartlabel.queue import set_current_run, write_predictions

        run_id = _new_run(engine)
        with engine.connect() as conn:
            open_ids = [r[0] for r in conn.execute(text("SELECT id FROM items WHERE NOT done ORDER BY id"))]
        prng = random.Random(11)
        write_predictions(engine, run_id, open_ids, [prng.random() for _ in open_ids])
        set_current_run(engine, run_id)
        if is_postgres(engine):
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        out["run_id"] = run_id
    engine.dispose()
    return out


def _new_run(engine) -> int:
    from sqlalchemy import insert

    from smartlabel.db import model_runs, utcnow

    with engine.begin() as conn:
        return conn.execute(
            insert(model_runs).values(started_at=utcnow(), status="running", model_kind="lr",
                                      acquisition="entropy").returning(model_runs.c.id)
        ).scalar_one()


# --- one reprioritisation cycle ------------------------------------------------------------


def train(engine):
    """Fit the LR model on the labelled posts (the orchestrator's job; not timed)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("""SELECT i.title, i.clean_selftext, l.label FROM labels l
                                    JOIN items i ON i.id = l.item_id ORDER BY l.id""")).all()
    model = common.make_model()
    model.fit([common.model_text(t, b) for t, b, _ in rows], [lab for _t, _b, lab in rows])
    return model


def cycle(engine, model, batch: int = 20_000, marks: dict | None = None) -> dict:
    """Score every open post, rank by entropy, write a new run, switch to it.

    `marks`, when given, receives (start, end) monotonic times of the scoring and
    writing phases (the stall benchmark uses them).
    """
    import numpy as np
    from sqlalchemy import text

    from smartlabel.queue import set_current_run, write_predictions

    classes = np.asarray(model.classes_)
    t0 = time.perf_counter()
    m0 = time.monotonic()
    ids: list[int] = []
    prio, pred, conf, pred2, conf2 = [], [], [], [], []
    t_score = 0.0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(
            text("SELECT id, title, clean_selftext FROM items WHERE NOT done ORDER BY id"))
        for part in result.partitions(batch):
            s = time.perf_counter()
            proba = model.predict_proba([common.model_text(t, b) for _i, t, b in part])
            top2 = np.argsort(-proba, axis=1)[:, :2]
            rows_ix = np.arange(len(part))
            prio.append(common.entropy(proba))
            pred.append(classes[top2[:, 0]])
            conf.append(proba[rows_ix, top2[:, 0]])
            pred2.append(classes[top2[:, 1]])
            conf2.append(proba[rows_ix, top2[:, 1]])
            t_score += time.perf_counter() - s
            ids.extend(r[0] for r in part)
    t1 = time.perf_counter()
    m1 = time.monotonic()
    cat = (lambda xs: np.concatenate(xs) if xs else np.array([]))
    run_id = _new_run(engine)
    write_predictions(engine, run_id, ids, cat(prio).tolist(), cat(pred).tolist(), cat(conf).tolist(),
                      cat(pred2).tolist(), cat(conf2).tolist())
    set_current_run(engine, run_id)
    t2 = time.perf_counter()
    m2 = time.monotonic()
    if marks is not None:
        marks.update(score=(m0, m1), write=(m1, m2))
    return {"n_scored": len(ids), "run_id": run_id, "seconds": t2 - t0,
            "read_seconds": (t1 - t0) - t_score, "score_seconds": t_score, "write_seconds": t2 - t1}


def reprio(url: str) -> dict:
    from sqlalchemy import text

    rss_start = common.proc_status_mb("VmRSS")
    engine = _engine(url)
    model = train(engine)
    rss_model = common.proc_status_mb("VmRSS")
    out = cycle(engine, model)
    # what was stored: one prediction per open post, in the run the queue now follows
    with engine.connect() as conn:
        out["stored_predictions"] = conn.execute(
            text("SELECT COUNT(*) FROM predictions WHERE run_id = :r"), {"r": out["run_id"]}).scalar_one()
        out["open_posts"] = conn.execute(text("SELECT COUNT(*) FROM items WHERE NOT done")).scalar_one()
        out["current_run_id"] = conn.execute(
            text("SELECT current_run_id FROM queue_state WHERE id = 1")).scalar_one()
    out.update(rss_start_mb=rss_start, rss_after_fit_mb=rss_model, rss_end_mb=common.proc_status_mb("VmRSS"),
               peak_rss_mb=common.proc_status_mb("VmHWM"))
    engine.dispose()
    return out


# --- labellers ----------------------------------------------------------------------------


def make_queue(url, worker_id):
    from smartlabel.queue import LabelQueue
    from smartlabel.settings import load_settings

    q = LabelQueue(url, worker_id, settings=load_settings(database_url=url),
                   rng=random.Random(worker_id))
    q.counts()  # connect now, not inside the first timed pop
    return q


def handout(url: str, workers: int, ops: int, think_ms: float) -> dict:
    from sqlalchemy import text

    import smartlabel.queue  # noqa: F401  imported once, before the workers fork
    import smartlabel.settings  # noqa: F401

    out = common.fixed_ops_run(make_queue, url, workers, ops, think_ms / 1000.0)
    engine = _engine(url)
    with engine.connect() as conn:  # the database's own account: posts labelled twice (overlap is 1)
        out["db_items_labelled_twice"] = conn.execute(text(
            "SELECT COUNT(*) FROM (SELECT item_id FROM labels GROUP BY item_id HAVING COUNT(*) > 1) x")
        ).scalar_one()
        out["db_labels_by_workers"] = conn.execute(
            text("SELECT COUNT(*) FROM labels WHERE worker_id <> 'seed'")).scalar_one()
    engine.dispose()
    return out


def stall(url: str, workers: int, think_ms: float, quiet_s: float) -> dict:
    engine = _engine(url)
    model = train(engine)
    engine.dispose()  # nothing open across the fork
    lab = common.Labellers(make_queue, url, workers, None, think_ms / 1000.0).start()
    time.sleep(quiet_s)
    quiet = (lab.started_at, time.monotonic())
    marks: dict = {}
    engine = _engine(url)
    res = cycle(engine, model, marks=marks)
    time.sleep(quiet_s / 2)
    summary = lab.finish()
    engine.dispose()
    return {"cycle": res, "labellers": summary,
            "quiet": lab.worst_pop_in(*quiet), "during_score": lab.worst_pop_in(*marks["score"]),
            "during_write": lab.worst_pop_in(*marks["write"]),
            "during_cycle": lab.worst_pop_in(marks["score"][0], marks["write"][1])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["seed", "reprio", "handout", "stall"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--corpus")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--run", action="store_true", help="seed: also write a current run of priorities")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--ops", type=int, default=100, help="pop+submit pairs in all (shared by the workers)")
    ap.add_argument("--think-ms", type=float, default=0.0)
    ap.add_argument("--quiet-s", type=float, default=1.5)
    a = ap.parse_args(argv)
    if a.command == "seed":
        emit(seed(a.url, a.corpus, a.n, a.run))
    elif a.command == "reprio":
        emit(reprio(a.url))
    elif a.command == "handout":
        emit(handout(a.url, a.workers, a.ops, a.think_ms))
    else:
        emit(stall(a.url, a.workers, a.think_ms, a.quiet_s))


if __name__ == "__main__":
    main()
