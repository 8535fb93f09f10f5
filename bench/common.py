"""What both sides of the benchmark share: the corpus, the model, the labeller harness.

This module runs in two interpreters: ours (the project venv, with smartlabel) and
the baseline's (bench/.venv-baseline, with superintendent 0.6.0 and sqlmodel
0.0.44). So it imports neither smartlabel nor superintendent; only the standard
library, numpy and scikit-learn, which both environments have at the same versions.

Each side's script (bench/ours.py, bench/baseline.py) is run as a subprocess by
bench/run.py and prints exactly one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

# The article's five tags, which the synthetic Reddit-like posts carry (the `article`
# preset, smartlabel.LABEL_PRESETS["article"]; copied because this module must not
# import smartlabel: ours.py checks they are equal). Ours runs with LABELS set to them.
LABELS = (
    "Social Issue Discussion",
    "Personal Stories",
    "Advocacy",
    "Factual Queries/Sharing",
    "Others",
)
N_TRAIN = 300  # labels the model is trained on ("a few hundred")
POOL = 100_000  # distinct synthetic posts; bigger benchmarks reuse them with a unique title suffix

# --- a synthetic, Reddit-like corpus ------------------------------------------------


def _word(rng: random.Random) -> str:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    n = rng.choice((1, 2, 2, 3, 3, 4))
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(n))


def write_corpus(path: str | os.PathLike, n: int = POOL, seed: int = 0) -> Path:
    """Write `n` posts (title, body, label) as JSON lines; deterministic for a seed.

    Words follow a Zipf-like law over a 20,000-word vocabulary; each label owns 150
    topical words, and about one word in eight comes from the post's label, so a
    TF-IDF + logistic regression model trained on a few hundred posts is right
    about two times in three and unsure often enough for entropy to matter.
    Titles have 4-12 words, bodies 10-110 (about 60 on average).
    """
    import numpy as np

    rng = random.Random(seed)
    vocab = sorted({_word(rng) for _ in range(30_000)})[:20_000]
    rng.shuffle(vocab)
    topical = [vocab[k * 150:(k + 1) * 150] for k in range(len(LABELS))]
    common = vocab[len(LABELS) * 150:]
    nrng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(common) + 1) ** 1.05
    weights /= weights.sum()
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            labels = nrng.integers(0, len(LABELS), m)
            tlen = nrng.integers(4, 13, m)
            blen = nrng.integers(10, 111, m)
            words = nrng.choice(len(common), size=(m, 12 + 110), p=weights)
            is_topic = nrng.random((m, 122)) < 0.125
            topic_pick = nrng.integers(0, 150, (m, 122))
            for r in range(m):
                lab = int(labels[r])
                toks = [topical[lab][topic_pick[r, c]] if is_topic[r, c] else common[words[r, c]]
                        for c in range(tlen[r] + blen[r])]
                title = " ".join(toks[:tlen[r]]).capitalize()
                body = " ".join(toks[tlen[r]:])
                fh.write(json.dumps([title, body, LABELS[lab]]) + "\n")
    return path


def read_corpus(path: str | os.PathLike) -> tuple[list[str], list[str], list[str]]:
    titles, bodies, labels = [], [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            t, b, lab = json.loads(line)
            titles.append(t)
            bodies.append(b)
            labels.append(lab)
    return titles, bodies, labels


def post(corpus, k: int) -> tuple[str, str, str]:
    """Post number k (0-based) of a benchmark pool: (title, body, true label).

    Pools larger than the corpus reuse its posts; the title's suffix keeps every
    post distinct (the importer deduplicates on content).
    """
    titles, bodies, labels = corpus
    j = k % len(titles)
    return f"{titles[j]} #{k}", bodies[j], labels[j]


def model_text(title: str, body: str) -> str:
    """The model's input, as the article builds it: title + " " + clean_selftext."""
    return f"{title} {body}"


# --- measuring ----------------------------------------------------------------------


def proc_status_mb(field: str, pid: int | str = "self") -> float | None:
    """A memory figure of /proc/<pid>/status in MB (VmRSS: now, VmHWM: peak)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def pct(values, q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    v = sorted(values)
    if not v:
        return None
    if len(v) == 1:
        return v[0]
    pos = (len(v) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def latency_summary(seconds) -> dict:
    """p50/p95/p99/max in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else None, "mean_ms": (sum(ms) / len(ms)) if ms else None}


def progress(msg: str) -> None:
    """A progress line on stderr (stdout carries the JSON result)."""
    print(f"    {msg}", file=sys.stderr, flush=True)


def emit(result: dict) -> None:
    """Print the result as the last stdout line."""
    sys.stdout.write(json.dumps(result, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(v):
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


# --- concurrent labellers -------------------------------------------------------------
#
# `run_labellers` forks N processes; each builds its own queue with `factory(url,
# worker_id)`, waits at a barrier, then pops and submits. Every pop is recorded
# with its start time, latency and the item it returned, so the parent can count
# items handed to two workers and find the pops that overlapped a time window.
# Clocks: time.monotonic() (CLOCK_MONOTONIC) is system-wide on Linux, so the
# parent's window and the workers' timestamps are comparable.


# hand-outs that give a labeller a post someone already labelled, on purpose (smartlabel's
# AUDIT_SHARE and REVIEW_SHARE: second opinions); not double hand-outs
SECOND_OPINION = ("audit", "review")


def _backend_pid(q) -> int | None:
    """The PostgreSQL backend serving this queue's engine (one connection per labeller), when
    the server runs on this machine: its CPU time is read from /proc."""
    engine = getattr(q, "engine", None)
    if engine is None or getattr(engine.dialect, "name", "") != "postgresql":
        return None
    try:
        with engine.connect() as conn:
            pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
        return pid if _cpu_seconds(pid) is not None else None
    except Exception:
        return None


def _cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _labeller(factory, url, worker_id, ops, think_s, seed, barrier, stop, out) -> None:
    rows: list[tuple[float, float, float, Any, Any]] = []
    errors: list[str] = []
    try:
        q = factory(url, worker_id)
    except Exception as exc:  # reported, never hidden
        out.put((worker_id, [], [f"setup: {exc!r}"], {}))
        barrier.abort()
        return
    rng = random.Random(seed)
    backend = _backend_pid(q)
    try:
        barrier.wait(timeout=300)
    except Exception as exc:
        out.put((worker_id, [], [f"barrier: {exc!r}"], {}))
        return
    cpu0, bcpu0 = time.process_time(), _cpu_seconds(backend) if backend else None
    if think_s:  # people do not all click at the same instant: arrivals spread over one pause
        time.sleep(rng.uniform(0, think_s))
    i = 0
    while (ops is None or i < ops) and not stop.is_set():
        i += 1
        t0 = time.monotonic()
        try:
            item_id, x = q.pop()
        except IndexError:
            break
        except Exception as exc:
            errors.append(f"pop: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            time.sleep(0.01)
            continue
        t1 = time.monotonic()
        try:
            q.submit(item_id, LABELS[hash(item_id) % len(LABELS)])
            t2 = time.monotonic()
        except Exception as exc:
            errors.append(f"submit: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            t2 = float("nan")
        rows.append((t0, t1 - t0, t2 - t1, item_id, x.get("reason") if isinstance(x, dict) else None))
        if think_s:
            time.sleep(rng.expovariate(1.0 / think_s))
    bcpu1 = _cpu_seconds(backend) if backend else None
    cpu = {"client_s": time.process_time() - cpu0,
           "server_s": (bcpu1 - bcpu0) if bcpu0 is not None and bcpu1 is not None else None}
    out.put((worker_id, rows, errors, cpu))


class Labellers:
    """N forked labeller processes; use as a context manager around the measured work."""

    def __init__(self, factory: Callable, url: str, workers: int, ops_per_worker: int | None,
                 think_s: float = 0.0):
        self.ctx = mp.get_context("fork")
        self.factory, self.url, self.workers = factory, url, workers
        self.ops, self.think_s = ops_per_worker, think_s
        self.barrier = self.ctx.Barrier(workers + 1)
        self.stop = self.ctx.Event()
        self.out = self.ctx.Queue()
        self.procs = []
        self.started_at = self.finished_at = None
        self.results: dict[str, tuple[list, list]] = {}
        self.cpu: dict[str, dict] = {}

    def start(self) -> "Labellers":
        for k in range(self.workers):
            p = self.ctx.Process(target=_labeller, daemon=True, args=(
                self.factory, self.url, f"w{k:02d}", self.ops, self.think_s, 1000 + k,
                self.barrier, self.stop, self.out))
            p.start()
            self.procs.append(p)
        self.barrier.wait(timeout=300)  # every worker is connected and ready
        self.started_at = time.monotonic()
        return self

    def finish(self, timeout: float = 900) -> dict:
        """Wait for every worker (ask them to stop first when running open-ended)."""
        if self.ops is None:
            self.stop.set()
        deadline = time.monotonic() + timeout
        while len(self.results) < self.workers:
            wid, rows, errors, cpu = self.out.get(timeout=max(1.0, deadline - time.monotonic()))
            self.results[wid] = (rows, errors)
            self.cpu[wid] = cpu
        self.finished_at = time.monotonic()
        for p in self.procs:
            p.join(30)
        return self.summary()

    def pops(self) -> list[tuple[str, float, float, float, Any, Any]]:
        """(worker, start, pop seconds, submit seconds, item, reason or None) for every pop."""
        return [(w, *r) for w, (rows, _e) in self.results.items() for r in rows]

    def summary(self) -> dict:
        pops = self.pops()
        pop_lat = [p[2] for p in pops]
        sub_lat = [p[3] for p in pops if not math.isnan(p[3])]
        both = [p[2] + p[3] for p in pops if not math.isnan(p[3])]
        # an item handed out as an open post to two workers (or more) is a double hand-out;
        # second opinions (audit, review: after the first label is stored) are counted apart
        who: dict[Any, list] = {}
        second = 0
        for w, _t, _a, _b, item, reason in pops:
            if reason in SECOND_OPINION:
                second += 1
                continue
            who.setdefault(item, []).append(w)
        doubles = sum(1 for ws in who.values() if len(set(ws)) > 1)
        wasted = sum(len(ws) - 1 for ws in who.values())
        errors = [e for _rows, errs in self.results.values() for e in errs]
        if pops:
            t_first = min(p[1] for p in pops)
            t_last = max(p[1] + p[2] + (0 if math.isnan(p[3]) else p[3]) for p in pops)
            span = max(t_last - t_first, 1e-9)
        else:
            span = None
        return {
            "workers": self.workers, "ops_per_worker": self.ops, "think_ms": self.think_s * 1000,
            "pops": len(pops), "submits": len(sub_lat), "distinct_items": len(who),
            # items handed to two (or more) workers at once: each one is a label lost or duplicated
            "double_handouts": doubles,
            "wasted_pops": wasted, "second_opinions": second,
            "seconds": span,
            "pairs_per_second": (len(sub_lat) / span) if span else None,
            "pop": latency_summary(pop_lat), "submit": latency_summary(sub_lat),
            "pop_submit": latency_summary(both),
            "errors": len(errors), "error_samples": sorted(set(errors))[:5],
            **self.cpu_per_pair(len(sub_lat)),
        }

    def cpu_per_pair(self, pairs: int) -> dict:
        """CPU the labellers' processes and their database backends spent per pop+submit pair,
        and the pairs per second that would fill every core with it: a capacity figure that
        does not depend on what else the machine was running (the measured rate does)."""
        if not pairs or not self.cpu:
            return {}
        client = sum(c.get("client_s") or 0.0 for c in self.cpu.values()) / pairs * 1000
        servers = [c.get("server_s") for c in self.cpu.values()]
        out = {"cpu_ms_per_pair": {"client": client, "server": None, "total": None}}
        if servers and all(v is not None for v in servers):
            server = sum(servers) / pairs * 1000
            out["cpu_ms_per_pair"].update(server=server, total=client + server)
            out["cpu_bound_pairs_per_second"] = (os.cpu_count() or 1) * 1000.0 / (client + server)
        return out

    def worst_pop_in(self, t0: float, t1: float) -> dict:
        """Pops whose interval overlaps [t0, t1]: how many, p95, p99 and the slowest (ms)."""
        hit = [p[2] for p in self.pops() if p[1] <= t1 and p[1] + p[2] >= t0]
        return {"pops": len(hit), "max_ms": max(hit) * 1000 if hit else None,
                "p95_ms": pct([h * 1000 for h in hit], 95), "p99_ms": pct([h * 1000 for h in hit], 99)}


def fixed_ops_run(factory: Callable, url: str, workers: int, ops_total: int, think_s: float = 0.0) -> dict:
    """N labellers share `ops_total` pop+submit pairs; returns the summary."""
    per = max(1, ops_total // workers)
    lab = Labellers(factory, url, workers, per, think_s).start()
    return lab.finish()
