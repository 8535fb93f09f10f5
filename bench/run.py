#!/usr/bin/env python3
"""`make bench`: smartlabel against superintendent 0.6.0, side by side, in one run.

    python bench/run.py            # full: about 25 minutes on 2 cores (al included)
    python bench/run.py --quick    # reduced sizes: about 3 minutes
    python bench/run.py --only reprio,handout --no-baseline

What it does, in order (progress on the terminal as it goes):
  1. builds bench/.venv-baseline when missing (superintendent==0.6.0, sqlmodel==0.0.44,
     sqlalchemy 2.0, and our numpy/scipy/scikit-learn/pandas versions: about 40 s, once);
  2. starts a throw-away PostgreSQL (pgserver) unless --postgres-url is given, and
     uses SQLite files in a temporary folder;
  3. runs each benchmark, ours (bench/ours.py, this venv) and the baseline
     (bench/baseline.py, the baseline venv) as subprocesses on the same server:
       reprio   one reprioritisation cycle (score, entropy, write all priorities); on
                PostgreSQL also a cold `smartlabel orchestrate --once` (a new process, no
                feature cache) beside the baseline's retrain()
       handout  1/4/16 labeller processes popping and submitting; 16 and 100 paced ones
       stall    worst pop latency of 4 labellers while a cycle is written
       memory   peak resident memory of the process doing the cycle (orchestrator)
       al, page bench/bench_al.py and bench/bench_page.py (other engineers'), when present;
       scale    bench/bench_scale.py, 1M posts: only when named (--only scale, make bench-scale);
  4. writes bench/results/*.json (--quick: bench/results/quick/) and regenerates the
     generated tables in BENCHMARKS.md (--quick: bench/results/quick/BENCHMARKS.md).

Nothing here asserts on time: results are published as they are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

BASELINE_VENV = HERE / ".venv-baseline"
# the throw-away server's max_connections: 100 labellers (one connection each) and the bench's own
MAX_CONNECTIONS = 150
MARKER = "smartlabel-bench.json"

PROFILES = {
    "full": dict(
        reprio_sizes=[10_000, 80_000], reprio_backends=["sqlite", "postgresql"], big=1_000_000,
        handout_pool=100_000, handout_workers=[1, 4, 16], handout_ops=1600,
        # 16 labellers pausing 0.5 s on average between posts (people take seconds): the
        # latency a labeller sees when the server is not saturated by design
        paced_workers=16, paced_think_ms=500.0, paced_ops=320,
        # issue 16: 100 labellers at a person's pace (one label every 3 s each, about 33
        # pairs/s in all; 20 each, about a minute per side)
        human_workers=100, human_think_ms=3000.0, human_ops=2000,
        handout_sqlite=True, handout_sqlite_baseline=False,
        stall_n=80_000, stall_workers=4, stall_think_ms=20.0, quiet_s=1.5, n_train=300,
    ),
    "quick": dict(
        reprio_sizes=[10_000], reprio_backends=["sqlite", "postgresql"], big=30_000,
        handout_pool=20_000, handout_workers=[1, 4, 16], handout_ops=240,
        paced_workers=16, paced_think_ms=500.0, paced_ops=0,
        human_workers=100, human_think_ms=3000.0, human_ops=0,
        handout_sqlite=False, handout_sqlite_baseline=False,
        stall_n=10_000, stall_workers=4, stall_think_ms=20.0, quiet_s=1.0, n_train=300,
    ),
    # the smoke test's: every code path at tiny size (one seeded pool per side and backend)
    "smoke": dict(
        reprio_sizes=[500], reprio_backends=["sqlite", "postgresql"], big=0,
        handout_pool=500, handout_workers=[3], handout_ops=24,
        paced_workers=2, paced_think_ms=5.0, paced_ops=0,
        human_workers=3, human_think_ms=5.0, human_ops=6,
        handout_sqlite=False, handout_sqlite_baseline=False,
        stall_n=500, stall_workers=2, stall_think_ms=5.0, quiet_s=0.3, n_train=60,
    ),
}
BENCHES = ("reprio", "handout", "stall", "memory", "al", "page")
# run only when named in --only (`make bench-scale`): 1M posts take 10-20 minutes
OPTIONAL = ("scale",)

T0 = time.monotonic()


def say(msg: str) -> None:
    m, s = divmod(int(time.monotonic() - T0), 60)
    print(f"[{m:2d}:{s:02d}] {msg}", flush=True)


# --- the baseline's environment ---------------------------------------------------------


def _ours_versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("numpy", "scipy", "scikit-learn", "pandas", "psycopg2-binary")}


def baseline_spec() -> list[str]:
    """What the baseline venv holds: superintendent's working set, our numeric stack."""
    pins = [f"{p}=={v}" for p, v in _ours_versions().items()]
    return ["superintendent==0.6.0", "sqlmodel==0.0.44", "sqlalchemy>=2.0,<2.1", *pins]


def ensure_baseline_venv(path: Path = BASELINE_VENV, kind: str = "full") -> Path:
    """Return the baseline interpreter, building the venv when missing or outdated.

    kind="full": a standalone venv (python -m venv + pip install), what the
    benchmark uses. kind="overlay": a venv that sees this venv's packages and
    adds only superintendent, sqlmodel 0.0.44 and sqlalchemy 2.0 on top (a few
    seconds; the smoke test uses it when no full venv exists).
    """
    python = path / "bin" / "python"
    spec = {"kind": kind, "packages": baseline_spec(), "python": platform.python_version(),
            "overlay_of": sys.prefix if kind == "overlay" else None}
    marker = path / MARKER
    if python.exists() and marker.exists():
        try:
            have = json.loads(marker.read_text())
        except ValueError:
            have = None
        if have == spec:
            return python
    if path.exists():
        shutil.rmtree(path)
    base = getattr(sys, "_base_executable", None) or sys.executable
    t = time.monotonic()
    if kind == "full":
        say(f"building the baseline venv {_rel(path)} "
            "(superintendent 0.6.0; about 40 s, once)")
        subprocess.run([base, "-m", "venv", str(path)], check=True)
        _pip([str(path / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *spec["packages"]])
    else:
        subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        ours_site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip()
        Path(site, "_smartlabel_bench_overlay.pth").write_text(ours_site + "\n")
        _pip([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "--no-deps", "--ignore-installed", "--target", site,
              "superintendent==0.6.0", "sqlmodel==0.0.44", "sqlalchemy>=2.0,<2.1"])
    check = subprocess.run([str(python), str(HERE / "baseline.py"), "versions"], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"the baseline venv at {path} does not work:\n{check.stderr[-2000:]}")
    marker.write_text(json.dumps(spec, indent=1))
    say(f"baseline venv ready in {time.monotonic() - t:.0f} s")
    return python


def _pip(cmd: list[str]) -> None:
    """Run pip quietly; show its output only when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        out = "\n".join(ln for ln in (p.stdout + p.stderr).splitlines() if noise not in ln)
        raise RuntimeError(f"building the baseline venv failed ({' '.join(cmd[:3])} ...):\n{out[-3000:]}")


# --- databases ----------------------------------------------------------------------------


class Databases:
    """A PostgreSQL server (pgserver, or an admin URL) and a folder for SQLite files."""

    def __init__(self, workdir: Path, postgres_url: str | None):
        from sqlalchemy import create_engine, text

        self.workdir = workdir
        self.server = None
        if postgres_url is None:
            import warnings

            warnings.filterwarnings("ignore")
            import pgserver

            self.server = pgserver.get_server(str(workdir / "pg"), cleanup_mode="stop")
            postgres_url = self.server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        self.admin_url = postgres_url
        self._admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        self._text = text
        if self.server is not None:
            self._allow_connections(MAX_CONNECTIONS)
        self.created: list[str] = []
        self.prefix = "bench_" + os.urandom(3).hex() + "_"

    def _allow_connections(self, n: int) -> None:
        """Raise the throw-away server's max_connections (a restart): 100 labellers hold one
        connection each, past the default's 97 (README, "Connection budget")."""
        with self._admin.connect() as conn:
            if int(conn.execute(self._text("SHOW max_connections")).scalar_one()) >= n:
                return
            conn.execute(self._text(f"ALTER SYSTEM SET max_connections = {int(n)}"))
        self._admin.dispose()
        from pgserver._commands import pg_ctl

        from pgserver.postgres_server import PostmasterInfo

        pg_ctl(["-w", "-l", str(self.server.log), "restart"], pgdata=self.server.pgdata,
               user=self.server.system_user, timeout=60)
        # pgserver stops the server it started by its process at cleanup: the restarted one's
        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.server.pgdata)

    def pg_version(self) -> str:
        with self._admin.connect() as conn:
            return conn.execute(self._text("SHOW server_version")).scalar_one()

    def pg_settings(self) -> dict:
        with self._admin.connect() as conn:
            return {k: conn.execute(self._text(f"SHOW {k}")).scalar_one()
                    for k in ("shared_buffers", "synchronous_commit", "fsync", "max_connections")}

    def url(self, backend: str, name: str, template: str | None = None) -> str:
        """A new, empty database (or a copy of `template`, a URL this object made)."""
        from sqlalchemy.engine import make_url

        if backend == "sqlite":
            path = self.workdir / f"{name}.db"
            if template:
                src = Path(make_url(template).database)
                with sqlite3.connect(src) as c:  # fold the WAL in before copying the file
                    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                shutil.copyfile(src, path)
            return f"sqlite:///{path}"
        db = self.prefix + name
        with self._admin.connect() as conn:
            conn.execute(self._text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            if template:
                conn.execute(self._text(f"CREATE DATABASE {db} TEMPLATE {make_url(template).database}"))
            else:
                conn.execute(self._text(f"CREATE DATABASE {db}"))
        self.created.append(db)
        return make_url(self.admin_url).set(database=db).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.get_backend_name() == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(str(u.database) + suffix).unlink(missing_ok=True)
            return
        with self._admin.connect() as conn:
            conn.execute(self._text(f"DROP DATABASE IF EXISTS {u.database} WITH (FORCE)"))

    def close(self) -> None:
        try:
            with self._admin.connect() as conn:
                for db in self.created:
                    conn.execute(self._text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        except Exception:
            pass
        self._admin.dispose()
        if self.server is not None:
            self.server.cleanup()


# --- running one side ---------------------------------------------------------------------


class Runner:
    def __init__(self, baseline_python: Path | None, timeout: float):
        self.python = {"ours": Path(sys.executable), "baseline": baseline_python}
        self.script = {"ours": HERE / "ours.py", "baseline": HERE / "baseline.py"}
        self.timeout = timeout

    def __call__(self, side: str, command: str, **kw) -> dict:
        """Run `side`'s script; its last stdout line is the result (or {'error': ...})."""
        if self.python[side] is None:
            return {"error": "baseline skipped (--no-baseline)"}
        args = [str(self.python[side]), str(self.script[side]), command]
        for k, v in kw.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                args.append(flag)
            elif v not in (None, False):
                args += [flag, str(v)]
        env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        env.pop("DATABASE_URL", None)
        try:
            p = subprocess.run(args, stdout=subprocess.PIPE, text=True, timeout=self.timeout, env=env,
                               cwd=str(ROOT))
        except subprocess.TimeoutExpired:
            return {"error": f"{side} {command} took longer than {self.timeout:.0f} s"}
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
        if p.returncode != 0 or not lines:
            return {"error": f"{side} {command} exited with {p.returncode}"}
        try:
            return json.loads(lines[-1])
        except ValueError:
            return {"error": f"{side} {command} printed no JSON result"}


def _secs(r: dict, key: str = "seconds") -> str:
    return f"{r[key]:.2f} s" if isinstance(r.get(key), (int, float)) else r.get("error", "?")


# --- the benchmarks ----------------------------------------------------------------------


class Bench:
    def __init__(self, args, prof: dict, dbs: Databases, run: Runner, corpus: Path, work: Path):
        self.args, self.p, self.dbs, self.run, self.corpus, self.work = args, prof, dbs, run, corpus, work
        self.pools: dict = {}
        self._features: dict | None = None

    def features(self) -> dict:
        """The orchestrator's TF-IDF fitted once on the corpus (see ours.py): its first-run cost."""
        if self._features is None:
            path = self.work / "features.pkl"
            r = self.run("ours", "features", corpus=self.corpus, features=path)
            r["path"] = str(path)
            self._features = r
            if "error" in r:
                say(f"  features: {r['error']}")
            else:
                say(f"  orchestrator's vectoriser fitted on {r['posts']:,} posts once: "
                    f"{r['fit_transform_seconds']:.1f} s, {r['vocabulary']:,} terms, peak {r['peak_rss_mb']:.0f} MB")
        return self._features

    def seed_ours(self, url: str, n: int, name: str, with_run: bool, cache: bool = True) -> tuple[dict, str | None]:
        feats = self.features() if cache else {"error": "no cache wanted"}
        models_dir = None if "error" in feats else str(self.work / "models" / name)
        r = self.run("ours", "seed", url=url, corpus=self.corpus, n=n, run=with_run, n_train=self.p["n_train"],
                     features=feats.get("path") if models_dir else None, models_dir=models_dir)
        return r, models_dir

    def pool(self, side: str, backend: str, n: int, cache: bool = True) -> dict:
        """A seeded template database for (side, backend, n); copies are made from it.

        Ours comes with the orchestrator's feature cache unless `cache` is False (hand-out only).
        """
        key = (side, backend, n)
        if key not in self.pools:
            name = f"tpl_{side}_{backend[:2]}_{n}"
            url = self.dbs.url(backend, name)
            models_dir = None
            if side == "ours":
                r, models_dir = self.seed_ours(url, n, name, with_run=True, cache=cache)
            else:
                r = self.run("baseline", "load", url=url, corpus=self.corpus, n=n, priorities=True,
                             n_train=self.p["n_train"])
            self.pools[key] = {"url": url, "seed": r, "models_dir": models_dir}
            say(f"  seeded {side} {backend} {n:,}: "
                + (_secs(r) if side == "ours" else _secs(r, "enqueue_seconds") + " (its enqueue)"))
        return self.pools[key]

    def copy(self, side: str, backend: str, n: int, name: str, cache: bool = True) -> tuple[str, dict, str | None]:
        """A copy of the pool's database (same ids, so the pool's feature cache fits it too)."""
        pool = self.pool(side, backend, n, cache)
        if "error" in pool["seed"]:
            return "", pool["seed"], None
        return self.dbs.url(backend, name, template=pool["url"]), pool["seed"], pool["models_dir"]

    def sides(self):
        return ["ours"] + ([] if self.args.no_baseline else ["baseline"])

    # 1. reprioritisation
    def reprio(self) -> dict:
        rows = []
        for backend in self.p["reprio_backends"]:
            for n in self.p["reprio_sizes"]:
                row = {"backend": backend, "n": n}
                for side in self.sides():
                    url, seed, models_dir = self.copy(side, backend, n, f"reprio_{side}_{backend[:2]}_{n}")
                    r = self.run(side, "reprio", url=url, models_dir=models_dir) if url else seed
                    row[side] = r
                    row[f"{side}_seed"] = seed
                    say(f"reprio {backend:10s} {n:>9,} {side:8s} {_secs(r)}"
                        + (f" (write {r['write_seconds']:.2f} s)" if "write_seconds" in r else ""))
                    if url and not self.args.keep:
                        self.dbs.drop(url)
                if backend == "postgresql" and "ours" in row:
                    row["ours"]["cold"] = self.cold(n)
                rows.append(row)
        big = self.p["big"]
        if not big:
            return {"rows": rows}
        name = f"reprio_ours_big_{big}"
        url = self.dbs.url("postgresql", name)
        say(f"reprio postgresql {big:,} ours: seeding (and its feature cache)")
        seed, models_dir = self.seed_ours(url, big, name, with_run=False)
        r = self.run("ours", "reprio", url=url, models_dir=models_dir) if "error" not in seed else seed
        say(f"reprio postgresql {big:>9,} ours     {_secs(r)}"
            + (f" (write {r['write_seconds']:.2f} s)" if "write_seconds" in r else ""))
        rows.append({"backend": "postgresql", "n": big, "ours": r, "ours_seed": seed})
        if not self.args.keep:
            self.dbs.drop(url)
            shutil.rmtree(self.work / "models" / name, ignore_errors=True)
        return {"rows": rows, "features": self.features()}

    def cold(self, n: int) -> dict:
        """A cold `smartlabel orchestrate --once` on a copy of our pool (issue 16: at 80k, at
        least 10x quicker than the baseline's retrain(), which is a cold run too)."""
        url, seed, _m = self.copy("ours", "postgresql", n, f"cold_ours_po_{n}")
        r = self.run("ours", "cold", url=url) if url else seed
        say(f"cold  postgresql {n:>9,} ours     {_secs(r)}"
            + (f" (CPU {r['cpu_seconds']:.1f} s, peak {r['peak_rss_mb']:.0f} MB)" if "cpu_seconds" in r else ""))
        if url and not self.args.keep:
            self.dbs.drop(url)
        return r

    # 2. hand-out under load
    def handout(self) -> dict:
        rows = []
        backends = ["postgresql"] + (["sqlite"] if self.p["handout_sqlite"] else [])
        n = self.p["handout_pool"]
        for backend in backends:
            levels = [(w, self.p["handout_ops"], 0.0) for w in self.p["handout_workers"]]
            if self.p["paced_ops"] and backend == "postgresql":
                levels.append((self.p["paced_workers"], self.p["paced_ops"], self.p["paced_think_ms"]))
            if self.p.get("human_ops") and backend == "postgresql":
                levels.append((self.p["human_workers"], self.p["human_ops"], self.p["human_think_ms"]))
            sides = self.sides()
            if backend == "sqlite" and not self.p["handout_sqlite_baseline"]:
                # its SQLite default (rollback journal, synchronous=FULL) fsyncs every pop and
                # submit: about 25 pairs/s here, minutes per level; measured at smoke size only
                sides = ["ours"]
            for workers, ops, think in levels:
                for side in sides:
                    url, seed, _m = self.copy(side, backend, n, f"ho_{side}_{backend[:2]}_{workers}_{int(think)}",
                                              cache=False)
                    r = (self.run(side, "handout", url=url, workers=workers, ops=ops, think_ms=think)
                         if url else seed)
                    rows.append({"backend": backend, "n": n, "side": side, "workers": workers,
                                 "think_ms": think, "ops": ops, **r})
                    if "error" in r:
                        say(f"handout {backend:10s} {side:8s} {workers:2d} workers: {r['error']}")
                    else:
                        cpu = (r.get("cpu_ms_per_pair") or {}).get("total")
                        say(f"handout {backend:10s} {side:8s} {workers:3d} workers think {think:4.0f} ms: "
                            f"pop p95 {r['pop']['p95_ms']:.1f} ms, submit p95 {r['submit']['p95_ms']:.1f} ms, "
                            f"{r['pairs_per_second']:.0f} pairs/s"
                            + (f" ({cpu:.2f} ms CPU a pair)" if cpu else "")
                            + f", double hand-outs {r['double_handouts']}"
                            + (f", {r['errors']} errors" if r["errors"] else ""))
                    if url and not self.args.keep:
                        self.dbs.drop(url)
        return {"rows": rows}

    # 3. labeller stall during a cycle
    def stall(self) -> dict:
        rows = []
        n = self.p["stall_n"]
        for side in self.sides():
            url, seed, models_dir = self.copy(side, "postgresql", n, f"stall_{side}_{n}")
            r = (self.run(side, "stall", url=url, workers=self.p["stall_workers"], think_ms=self.p["stall_think_ms"],
                          quiet_s=self.p["quiet_s"], models_dir=models_dir) if url else seed)
            rows.append({"backend": "postgresql", "n": n, "side": side, "workers": self.p["stall_workers"],
                         "think_ms": self.p["stall_think_ms"], **r})
            if "error" in r:
                say(f"stall {side}: {r['error']}")
            else:
                say(f"stall {side:8s} worst pop: quiet {r['quiet']['max_ms']:.0f} ms, while scoring "
                    f"{_ms(r['during_score'])}, while writing {_ms(r['during_write'])} "
                    f"(write {r['cycle']['write_seconds']:.2f} s)")
            if url and not self.args.keep:
                self.dbs.drop(url)
        return {"rows": rows}

    # 4. memory: taken from the reprio runs at the stall size on PostgreSQL (the orchestrator's work)
    def memory(self, reprio: dict | None) -> dict:
        out = {"rows": []}
        n = self.p["stall_n"]  # 80,000 in the full profile
        found = None
        for row in (reprio or {}).get("rows", []):
            if row["backend"] == "postgresql" and row["n"] == n:
                found = row
        if found is None:  # reprio did not run at that size: run the cycle alone
            found = {"backend": "postgresql", "n": n}
            for side in self.sides():
                url, seed, models_dir = self.copy(side, "postgresql", n, f"mem_{side}_{n}")
                found[side] = self.run(side, "reprio", url=url, models_dir=models_dir) if url else seed
                if url and not self.args.keep:
                    self.dbs.drop(url)
        for side in self.sides():
            r = found.get(side, {})
            what = ("the orchestrator process (smartlabel.orchestrator, a run with a warm feature cache)"
                    if side == "ours" else "superintendent's retrain() steps (fit, cross-validate, score, reorder)")
            out["rows"].append({"side": side, "n": n, "what": what,
                                **{k: r.get(k) for k in ("peak_rss_mb", "rss_start_mb", "rss_after_fit_mb",
                                                         "rss_end_mb", "error") if k in r}})
            say(f"memory {side:8s} at {n:,}: peak {r.get('peak_rss_mb') or 0:.0f} MB")
        f = self.features()
        out["rows"].append({"side": "ours", "n": f.get("posts"), "peak_rss_mb": f.get("peak_rss_mb"),
                            "what": "the orchestrator's first run on a pool: fitting its TF-IDF on every post",
                            "seconds": f.get("fit_transform_seconds"), **({"error": f["error"]} if "error" in f else {})})
        return out


def _ms(w: dict) -> str:
    return f"{w['max_ms']:.0f} ms ({w['pops']} pops)" if w.get("max_ms") is not None else "no pop"


# --- other engineers' benchmarks -------------------------------------------------------


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_external(name: str, script: Path, profile: str, out_dir: Path, timeout: float) -> dict:
    """Run bench/bench_<name>.py if it exists; collect the JSON (and PNG) files it wrote.

    The scripts are other engineers'; what they accept is read from their --help:
    `--smoke` (smoke profile) or `--quick` (quick profile) is passed when they have it,
    `--out <results>/<name>.json` when they have --out, else `--out-dir <results>` when
    they have that; $BENCH_RESULTS_DIR names the results folder too. Their
    <name>.json may hold a "markdown" string, which BENCHMARKS.md shows as is.
    """
    if not script.exists():
        say(f"{name}: {_rel(script)} not present, skipped")
        return {"skipped": f"{_rel(script)} not present"}
    env = dict(os.environ, BENCH_RESULTS_DIR=str(out_dir), PYTHONUNBUFFERED="1")
    helptext = subprocess.run([sys.executable, str(script), "--help"], cwd=str(ROOT), env=env,
                              capture_output=True, text=True, timeout=120).stdout
    flags = set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", helptext))
    args = []
    if profile == "smoke" and "--smoke" in flags:
        args.append("--smoke")
    elif profile != "full" and "--quick" in flags:
        args.append("--quick")
    # exact option names: argparse would take `--out` as an abbreviation of `--out-dir`
    # and make a folder named <name>.json (the bench-quick crash)
    if "--out" in flags:
        args += ["--out", str(out_dir / f"{name}.json")]
    elif "--out-dir" in flags:
        args += ["--out-dir", str(out_dir)]
    say(f"{name}: running {_rel(script)} {' '.join(args)}")
    started = time.time()
    t = time.monotonic()
    try:
        code = subprocess.run([sys.executable, str(script), *args], cwd=str(ROOT), env=env,
                              timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    seconds = time.monotonic() - t
    produced = sorted({_rel(f) for d in {out_dir, HERE / "results"} if d.exists()
                      for f in d.rglob("*") if f.suffix in (".json", ".png") and f.stat().st_mtime >= started
                      and f.name != f"{name}-run.json"})
    say(f"{name}: exit {code} in {seconds:.0f} s; wrote {', '.join(produced) or 'nothing'}")
    return {"script": _rel(script), "args": args, "exit": code, "seconds": seconds, "files": produced}


# --- machine ----------------------------------------------------------------------------


def machine(dbs: Databases | None, baseline_python: Path | None) -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True).stdout.strip()
    except OSError:
        pass
    if dbs is not None:
        info["postgresql"] = dbs.pg_version()
        info["postgresql_settings"] = dbs.pg_settings()
        info["postgresql_source"] = "pgserver (bundled PostgreSQL, local unix socket)" if dbs.server else "given URL"
    from importlib.metadata import version

    info["ours"] = {p: version(p) for p in ("sqlalchemy", "psycopg2-binary", "scikit-learn", "numpy")}
    if baseline_python is not None:
        r = subprocess.run([str(baseline_python), str(HERE / "baseline.py"), "versions"], capture_output=True,
                           text=True)
        try:
            info["baseline"] = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            info["baseline"] = {"error": r.stderr[-500:]}
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced sizes (about 3 minutes)")
    ap.add_argument("--profile", choices=sorted(PROFILES), help=argparse.SUPPRESS)
    ap.add_argument("--only", default=",".join(BENCHES),
                    help=f"comma-separated subset of {','.join(BENCHES)}; or {','.join(OPTIONAL)} "
                         "(1M posts, only when named: make bench-scale)")
    ap.add_argument("--no-baseline", action="store_true", help="measure our side only")
    ap.add_argument("--baseline-venv", type=Path, default=BASELINE_VENV, help="where the baseline venv lives")
    ap.add_argument("--baseline-kind", choices=["full", "overlay"], default="full", help=argparse.SUPPRESS)
    ap.add_argument("--postgres-url", help="admin URL of a PostgreSQL server to use instead of pgserver")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results, --quick bench/results/quick)")
    ap.add_argument("--md", type=Path, help="BENCHMARKS.md to regenerate (default: BENCHMARKS.md; "
                                             "--quick: <out>/BENCHMARKS.md)")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark databases (debugging)")
    ap.add_argument("--timeout", type=float, default=1500, help="seconds allowed for one subprocess")
    args = ap.parse_args(argv)
    profile = args.profile or ("quick" if args.quick else "full")
    prof = PROFILES[profile]
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHES) - set(OPTIONAL)
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {','.join(BENCHES + OPTIONAL)}")
    out = args.out or (HERE / "results" if profile == "full" else HERE / "results" / profile)
    md = args.md or (ROOT / "BENCHMARKS.md" if profile == "full" else out / "BENCHMARKS.md")
    out.mkdir(parents=True, exist_ok=True)
    say(f"smartlabel benchmarks, profile {profile}: {', '.join(only)}; results in {out}")

    baseline_python = None
    if not args.no_baseline and set(only) & {"reprio", "handout", "stall", "memory"}:
        baseline_python = ensure_baseline_venv(args.baseline_venv, args.baseline_kind)
    work = Path(tempfile.mkdtemp(prefix="smartlabel-bench-"))
    dbs = None
    try:
        speed = [b for b in only if b in ("reprio", "handout", "stall", "memory")]
        if speed:
            dbs = Databases(work, args.postgres_url)
        info = machine(dbs, baseline_python)
        info.update(profile=profile, profile_sizes=prof)
        if speed or not (out / "machine.json").exists():
            # a run of al/page alone keeps the speed benchmarks' machine record
            _write(out / "machine.json", info)
        say(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB; Python {info['python']}, "
            f"PostgreSQL {info.get('postgresql', '-')}, SQLite {info['sqlite']}; load {info['load_average_at_start']}")
        if speed:
            # the distinct posts (bigger pools repeat them with a unique title): as many as the
            # largest pool the orchestrator scores, which is also what its vectoriser is fitted on
            pool_size = min(common.POOL, max([*prof["reprio_sizes"], prof["stall_n"]]))
            corpus = common.write_corpus(work / "corpus.jsonl", pool_size)
            bench = Bench(args, prof, dbs, Runner(baseline_python, args.timeout), corpus, work)
            reprio = None
            for name in speed:
                say(f"== {name}")
                t = time.monotonic()
                if name == "memory":
                    res = bench.memory(reprio)
                else:
                    res = getattr(bench, name)()
                if name == "reprio":
                    reprio = res
                res.update(profile=profile, seconds=time.monotonic() - t, date=info["date"])
                _write(out / f"{name}.json", res)
        for name in ("al", "page", "scale"):
            if name in only:
                say(f"== {name}")
                res = run_external(name, HERE / f"bench_{name}.py", profile, out, args.timeout)
                _write(out / f"{name}-run.json", res)
    finally:
        if dbs is not None:
            dbs.close()
        shutil.rmtree(work, ignore_errors=True)
    from report import update_markdown

    update_markdown(md, out)
    say(f"done in {(time.monotonic() - T0) / 60:.1f} min; tables regenerated in {md}")
    return 0


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
