#!/usr/bin/env python3
"""1M posts on PostgreSQL (issue 16): import, a cold first run, a steady cycle; where time goes.

    python bench/bench_scale.py                        # 1,000,000 posts (about 10-15 minutes on 2 cores)
    python bench/bench_scale.py --posts 50000          # a smaller pool, same steps
    python bench/bench_scale.py --postgres-url postgresql+psycopg2://...   # an existing server (admin URL)

`make bench-scale` runs it (it is not part of `make bench`: it takes long). Steps:

1. the pool: bench/common.py's synthetic Reddit-like corpus (100,000 distinct posts, seeded)
   repeated up to --posts with a unique title suffix (`common.post`), written as a CSV
   (id, title, selftext, label) without clean_selftext, so the importer cleans every body;
   the first --labels posts carry their true label (worker "bench");
2. `smartlabel import` of that file into a fresh PostgreSQL database: seconds, rows/s;
3. a cold `smartlabel orchestrate --once` (new process, empty MODELS_DIR): wall seconds and
   the peak resident memory of the orchestrator process (and of it with its children, the
   TF-IDF counting workers), sampled every 0.1 s; every log line is timed on arrival, so
   the phases of the run (features, training, scoring, writing, switching) are measured;
4. a long-running `smartlabel orchestrate`; --more-labels labels imported, its next run
   ("restart": it reads the feature cache from disk); --more-labels more, its next run
   ("steady": the cycle of a running orchestrator); each timed from its "started" line
   to its "ok" line.

Results with the machine's details and load: bench/results/scale.json. Nothing here
asserts on time. PostgreSQL is a throw-away pgserver unless --postgres-url is given.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

TARGETS = {"import_rows_per_second": 20_000, "first_run_seconds": 60.0, "steady_cycle_seconds": 10.0,
           "peak_rss_mb": 2048.0}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict:
    cpu, ram = platform.processor() or "?", None
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        ram = next(round(int(ln.split()[1]) / 1024 / 1024, 1) for ln in open("/proc/meminfo")
                   if ln.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": os.cpu_count(), "ram_gb": ram, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the pool --------------------------------------------------------------------------


def write_pool(path: Path, corpus, n: int, n_labels: int) -> int:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "title", "selftext", "label", "worker_id"])
        for k in range(n):
            title, body, label = common.post(corpus, k)
            labelled = k < n_labels
            w.writerow([f"s{k}", title, body, label if labelled else "", "bench" if labelled else ""])
    return path.stat().st_size


def write_more_labels(path: Path, corpus, start: int, count: int) -> None:
    """`count` posts of the pool (from `start`) again, now with their labels."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "title", "selftext", "label", "worker_id"])
        for k in range(start, start + count):
            title, body, label = common.post(corpus, k)
            w.writerow([f"s{k}", title, body, label, "bench"])


# --- PostgreSQL ------------------------------------------------------------------------


def pg_admin(args, work: Path):
    if args.postgres_url:
        return args.postgres_url, None
    import warnings

    warnings.filterwarnings("ignore")
    import pgserver

    srv = pgserver.get_server(str(work / "pg"), cleanup_mode="stop")
    return srv.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1), srv


def admin_do(admin: str, statement: str):
    from sqlalchemy import create_engine, text

    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            return conn.execute(text(statement)).all() if statement.lstrip().upper().startswith(("SELECT", "SHOW")) \
                else conn.execute(text(statement))
    finally:
        eng.dispose()


# --- a child process, watched ----------------------------------------------------------


class Watched:
    """A child process: its stderr lines timed on arrival, its memory sampled every 0.1 s."""

    def __init__(self, cmd: list[str], env: dict, log_path: Path):
        import psutil

        self.t0 = time.monotonic()
        self.log = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.ps = psutil.Process(self.proc.pid)
        self.lines: list[tuple[float, str]] = []
        self.peak_rss = self.peak_tree = 0.0
        self.cpu_seconds = 0.0
        self.cond = threading.Condition()
        self._done = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            t = time.monotonic() - self.t0
            self.log.write(f"{t:8.2f} {line}")
            self.log.flush()
            with self.cond:
                self.lines.append((t, line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self._done = True
            self.cond.notify_all()

    def _sample(self) -> None:
        import psutil

        while self.proc.poll() is None:
            try:
                rss = self.ps.memory_info().rss / 2**20
                tree = rss + sum(c.memory_info().rss for c in self.ps.children(recursive=True)) / 2**20
            except psutil.Error:
                break
            self.peak_rss, self.peak_tree = max(self.peak_rss, rss), max(self.peak_tree, tree)
            try:  # CPU seconds of the process and its finished children (less load-dependent than wall time)
                c = self.ps.cpu_times()
                self.cpu_seconds = c.user + c.system + c.children_user + c.children_system
            except psutil.Error:
                break
            time.sleep(0.1)

    def wait_for(self, pattern: str, timeout: float, after: float = 0.0) -> tuple[float, str]:
        """The first line matching `pattern` that arrived at `after` (seconds) or later, and its
        arrival time; raises when the process ends first."""
        rx, deadline, seen = re.compile(pattern), time.monotonic() + timeout, 0
        with self.cond:
            while True:
                for t, line in self.lines[seen:]:
                    if t >= after and rx.search(line):
                        return t, line
                seen = len(self.lines)
                if self._done:
                    raise RuntimeError(f"the process ended before a line matching {pattern!r}; see {self.log.name}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no line matching {pattern!r} within {timeout:.0f} s; see {self.log.name}")
                self.cond.wait(min(left, 1.0))

    def finish(self, timeout: float) -> float:
        code = self.proc.wait(timeout)
        with self.cond:
            while not self._done:
                self.cond.wait(1.0)
        self.log.close()
        return code


def phases(lines: list[tuple[float, str]], run_id: int) -> dict:
    """Seconds between the orchestrator's log lines of one run (arrival times)."""
    marks = [(t, line) for t, line in lines if f"run {run_id} " in line or f"run {run_id}:" in line]
    out = []
    for (t1, l1), (t2, _l2) in zip(marks, marks[1:]):
        out.append({"after": re.sub(r"^\S+ \S+ \S+ ", "", l1)[:160], "seconds": round(t2 - t1, 2)})
    return {"lines": out, "first_at": marks[0][0] if marks else None, "last_at": marks[-1][0] if marks else None}


def orchestrate_env(url: str, models: Path, every: int) -> dict:
    # MODEL=lr: issue 16's targets are for the TF-IDF + logistic regression cycle the baseline
    # runs (the default `embed` would add embedding 1M posts once, measured in bench_embed.py)
    env = dict(os.environ, DATABASE_URL=url, MODELS_DIR=str(models), LABELS=json.dumps(list(common.LABELS)),
               MODEL="lr",
               RETRAIN_EVERY_N_LABELS=str(every), RETRAIN_INTERVAL_SECONDS="2", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT / "src"))
    return env


def smartlabel_cmd() -> list[str]:
    return [sys.executable, "-m", "smartlabel"]


# --- the benchmark -----------------------------------------------------------------------


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--labels", type=int, default=300, help="posts labelled in the imported file")
    ap.add_argument("--more-labels", type=int, default=20, help="labels added before the steady cycle")
    ap.add_argument("--postgres-url", help="admin URL of an existing PostgreSQL (default: start pgserver)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scale.json")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one step")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, CSV, models)")
    args = ap.parse_args(argv)
    os.environ.pop("DATABASE_URL", None)
    result: dict = {"benchmark": "scale", "posts": args.posts, "labels": args.labels,
                    "more_labels": args.more_labels, "targets": TARGETS, "machine": machine()}
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    srv = None
    db = "bench_scale_" + os.urandom(3).hex()
    try:
        say(f"work folder {work}; load {load()}")
        t = time.monotonic()
        corpus = common.read_corpus(common.write_corpus(work / "corpus.jsonl", min(common.POOL, args.posts)))
        pool_csv = work / "pool.csv"
        size = write_pool(pool_csv, corpus, args.posts, args.labels)
        result["file"] = {"mb": round(size / 1e6, 1), "seconds_to_generate": round(time.monotonic() - t, 1),
                          "what": "common.write_corpus posts repeated with a unique title suffix; id, title, "
                                  "selftext, label (first --labels rows); no clean_selftext (cleaned on import)"}
        say(f"pool file: {args.posts:,} posts, {size / 1e6:.0f} MB in {time.monotonic() - t:.0f} s")

        admin, srv = pg_admin(args, work)
        from sqlalchemy.engine import make_url

        admin_do(admin, f"CREATE DATABASE {db}")
        url = make_url(admin).set(database=db).render_as_string(hide_password=False)
        result["machine"]["postgresql"] = admin_do(admin, "SHOW server_version")[0][0]
        result["machine"]["postgresql_settings"] = {k: admin_do(admin, f"SHOW {k}")[0][0]
                                                   for k in ("shared_buffers", "work_mem", "synchronous_commit")}
        from smartlabel.migrate import upgrade

        upgrade(url).dispose()

        # 2. import
        say(f"importing; load {load()}")
        env = orchestrate_env(url, work / "models", args.more_labels)
        imp = Watched([*smartlabel_cmd(), "import", str(pool_csv), "--no-progress"], env, work / "import.log")
        code = imp.finish(args.timeout)
        wall = imp.lines[-1][0] if imp.lines else None
        summary = "\n".join(line for _t, line in imp.lines)
        m = re.search(r"time:\s+([\d.]+) s \(([\d,]+) rows/s\)", summary)
        result["import"] = {"exit": code, "seconds": float(m.group(1)) if m else None,
                            "rows_per_second": int(m.group(2).replace(",", "")) if m else None,
                            "process_seconds": round(wall, 1) if wall else None, "peak_rss_mb": round(imp.peak_rss),
                            "cpu_seconds_about": round(imp.cpu_seconds, 1),
                            "peak_rss_with_children_mb": round(imp.peak_tree), "load_average_after": load(),
                            "summary": summary[-1500:]}
        say(f"import: exit {code}, {result['import']['rows_per_second']} rows/s; load {load()}")
        if code != 0:
            raise RuntimeError(f"import failed:\n{summary[-3000:]}")

        # 3. a cold first run
        say(f"cold orchestrate --once; load {load()}")
        env = orchestrate_env(url, work / "models", args.more_labels)
        cold = Watched([*smartlabel_cmd(), "orchestrate", "--once", "--force"], env, work / "cold.log")
        code = cold.finish(args.timeout)
        ok = [t for t, line in cold.lines if re.search(r"run \d+ ok", line)]
        result["cold"] = {"exit": code, "process_seconds": round(cold.lines[-1][0], 2) if cold.lines else None,
                          "run_ok_at_seconds": round(ok[0], 2) if ok else None,
                          "peak_rss_mb": round(cold.peak_rss), "peak_rss_with_children_mb": round(cold.peak_tree),
                          "cpu_seconds_about": round(cold.cpu_seconds, 1),
                          "phases": phases(cold.lines, 1), "load_average_after": load()}
        say(f"cold: exit {code} in {result['cold']['process_seconds']} s, peak {cold.peak_rss:.0f} MB "
            f"(with children {cold.peak_tree:.0f} MB); load {load()}")
        if code != 0:
            raise RuntimeError(f"the cold run failed; see {work / 'cold.log'}")

        # 4. steady: a long-running orchestrator, more labels, its next run
        say(f"steady: orchestrator running, then {args.more_labels} more labels; load {load()}")
        live = Watched([*smartlabel_cmd(), "orchestrate"], env, work / "steady.log")
        try:
            live.wait_for(r"no retraining|run \d+ ok", args.timeout)  # started, cache loaded or first run done
            # the first run of this process reads the feature cache from disk; the second is the steady one
            for k, what in enumerate(("restart", "steady")):
                more = work / f"more{k}.csv"
                write_more_labels(more, corpus, args.labels + k * args.more_labels, args.more_labels)
                t_labels = time.monotonic() - live.t0
                subprocess.run([*smartlabel_cmd(), "import", str(more), "--no-progress"], env=env, check=True,
                               capture_output=True, cwd=str(ROOT))
                t_start, line = live.wait_for(r"run (\d+) started", args.timeout, after=t_labels)
                run_id = int(re.search(r"run (\d+) started", line).group(1))
                t_ok, _ = live.wait_for(rf"run {run_id} (ok|failed)", args.timeout)
                result[what] = {"run_id": run_id, "cycle_seconds": round(t_ok - t_start, 2),
                                "labels_added_at": round(t_labels, 2), "peak_rss_mb": round(live.peak_rss),
                                "peak_rss_with_children_mb": round(live.peak_tree),
                                "phases": phases(live.lines, run_id), "load_average_after": load()}
                say(f"{what}: run {run_id} in {t_ok - t_start:.1f} s, process peak {live.peak_rss:.0f} MB; "
                    f"load {load()}")
        finally:
            live.proc.send_signal(signal.SIGTERM)
            try:
                live.finish(120)
            except subprocess.TimeoutExpired:
                live.proc.kill()
        cache = list((work / "models" / ".cache").glob("features-*.pkl"))
        result["feature_cache_mb"] = round(cache[0].stat().st_size / 1e6) if cache else None
        result["machine"]["load_average_at_end"] = load()
        result["met"] = {
            "import_rows_per_second": (result["import"]["rows_per_second"] or 0) >= TARGETS["import_rows_per_second"],
            "first_run_seconds": (result["cold"]["process_seconds"] or 1e9) < TARGETS["first_run_seconds"],
            "steady_cycle_seconds": result["steady"]["cycle_seconds"] < TARGETS["steady_cycle_seconds"],
            "peak_rss_mb": max(result["cold"]["peak_rss_mb"], result["steady"]["peak_rss_mb"]) < TARGETS["peak_rss_mb"],
        }
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        say(f"error: {result['error']}")
    finally:
        if srv is not None or args.postgres_url:
            try:
                admin_do(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            except Exception:
                pass
        if srv is not None:
            srv.cleanup()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    say(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    sys.exit(1 if "error" in main() else 0)
