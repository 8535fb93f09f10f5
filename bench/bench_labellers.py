#!/usr/bin/env python3
"""Many labellers on one host: N real Chromium pages on the real Voila server against PostgreSQL.

    python bench/bench_labellers.py --labellers 10                 # 5 minutes (the issue's), 80,000 posts
    python bench/bench_labellers.py --labellers 25 --minutes 2     # shorter, for iterating
    python bench/bench_labellers.py --labellers 3 --seconds 60 --posts 2000 --cull-seconds 10 --after-close 40

What it does (issue 14's benchmark; a measurement, not a test):
- a PostgreSQL database (`--database-url`, a fresh empty one; default: pgserver in a temporary
  folder) gets `--posts` posts and a finished model run ranking them;
- `smartlabel serve` (Voila) starts exactly as an operator starts it, with
  KERNEL_IDLE_SECONDS=`--cull-seconds`; `smartlabel orchestrate` retrains every 30 s
  (RETRAIN_INTERVAL_SECONDS) while they label, unless `--no-orchestrator`;
- one Chromium (Playwright) opens N pages, each `?worker=bench-K`; each clicks a tag every
  3-6 s (uniformly random) for `--seconds`. Click-to-next-post latency is measured inside the
  page, from the click until a post with another id is in the DOM;
- every 5 s: resident memory of Voila and its kernels (psutil), kernels, database connections
  (pg_stat_activity), the load average, and CPU time used since the last sample by each part:
  the browser (Chromium and Playwright's driver), the Voila server, the kernels, the
  orchestrator, PostgreSQL, this script, and the whole machine (so other work on a shared
  host shows as `other`); `cpu` in the results sums them over the labelling time;
- afterwards: labels clicked vs labels stored (per worker and post: must be equal), double
  hand-outs (a post handed to a second labeller while the first still held it: no label of
  theirs yet and their lease, LEASE_SECONDS with renewals, live: must be 0), then every page
  is closed without `beforeunload` (a crashed tab: Voila's own shutdown beacon never leaves)
  and the kernels left are counted for `--after-close` seconds (must reach 0).

Results: bench/results/labellers-N.json (`--out`). Figures for BENCHMARKS.md come from runs of
N = 10, 25, 50 (5 minutes each, the default) on the reference machine, nothing else running:

    nice -n 5 python bench/bench_labellers.py --labellers 10
    nice -n 5 python bench/bench_labellers.py --labellers 25
    nice -n 5 python bench/bench_labellers.py --labellers 50

`--pin` puts the browser on a core of its own and the server on the others (on 2 cores: the
server gets one): real labellers' browsers run on their own computers, and unpinned, the one
Chromium rendering every page takes most of a core from the server it measures.

Each takes its labelling time plus about 1 minute (seeding 80k posts) plus up to
`--after-close`; do not run big N on a shared machine (the load average is recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_page import CHROMIUM_ARGS, CLICK_JS, _free_port, _seed, percentile, write_result  # noqa: E402

LABELS = ("Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others")
PAGE_TIMEOUT_MS = 180_000



# --- processes -----------------------------------------------------------------------------


def start_postgres(folder: Path) -> tuple[str, object]:
    import pgserver
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    folder.chmod(0o755)
    srv = pgserver.get_server(str(folder / "pg"), cleanup_mode="delete")
    admin = srv.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE DATABASE bench"))
    engine.dispose()
    return make_url(admin).set(database="bench").render_as_string(hide_password=False), srv


def environment(database_url: str, models: Path, cull_seconds: int) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "LABELS": "article", "PYTHONPATH": str(ROOT / "src"),
           "KERNEL_IDLE_SECONDS": str(cull_seconds), "MODELS_DIR": str(models),
           "RETRAIN_INTERVAL_SECONDS": "30"}
    env.pop("VOILA_TOKEN", None)
    return env


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "smartlabel", *args], cwd=ROOT, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)


def wait_for_port(proc: subprocess.Popen, port: int, log: Path) -> None:
    import socket

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"smartlabel serve exited:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("Voila did not start within 90 s")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def kernels(voila_pid: int) -> list:
    import psutil

    from smartlabel.serve import is_kernel_command

    def is_kernel(p) -> bool:
        try:
            return is_kernel_command(p.cmdline())
        except psutil.Error:  # exited since it was listed (or a zombie): not a kernel any more
            return False

    try:
        children = psutil.Process(voila_pid).children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in children if is_kernel(p)]


def sample(voila_pid: int, engine) -> dict:
    """Resident memory of Voila and its kernels, kernels, database connections (now)."""
    import psutil
    from sqlalchemy import text

    rss = 0
    ks = kernels(voila_pid)
    for p in [psutil.Process(voila_pid), *ks]:
        try:
            rss += p.memory_info().rss
        except psutil.Error:
            pass
    with engine.connect() as conn:
        connections = conn.execute(text(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend'")).scalar_one()
    return {"t": round(time.monotonic(), 1), "rss_mb": round(rss / 2**20, 1), "kernels": len(ks),
            "kernel_rss_mb": [round(k.memory_info().rss / 2**20, 1) for k in ks if k.is_running()],
            "connections": int(connections) - 1}  # this sampler's own connection left out


class CpuMeter:
    """CPU-seconds used by each part of the run between two `sample()` calls (100 % = one core).

    `groups()` says which processes make up each part now; a process seen for the first time
    counts its CPU time since it started (a kernel started between two samples), one that
    exited since the last sample loses what it used since then (a culled kernel's last
    seconds). The machine's busy time minus all parts is `other` (other work on the host)."""

    def __init__(self, groups):
        import psutil

        self._psutil = psutil
        self.groups = groups
        self._last: dict[tuple, float] = {}
        self._machine = self._busy()
        self._t = time.monotonic()
        self.totals: dict[str, float] = {}
        self.seconds = 0.0
        self.sample()  # the baseline: what ran before is not counted
        self.totals, self.seconds = {}, 0.0

    def _busy(self) -> float:
        t = self._psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def sample(self) -> dict:
        psutil = self._psutil
        used: dict[str, float] = {}
        seen = set()
        for group, procs in self.groups().items():
            used.setdefault(group, 0.0)
            for p in procs:
                try:
                    key = (p.pid, p.create_time())
                    t = p.cpu_times()
                except psutil.Error:
                    continue
                if key in seen:
                    continue
                seen.add(key)
                now = t.user + t.system
                used[group] += max(0.0, now - self._last.get(key, 0.0))
                self._last[key] = now
        self._last = {k: v for k, v in self._last.items() if k in seen}
        machine, t = self._busy(), time.monotonic()
        used["machine"] = max(0.0, machine - self._machine)
        used["other"] = max(0.0, used["machine"] - sum(v for k, v in used.items() if k != "machine"))
        wall = max(1e-6, t - self._t)
        self._machine, self._t = machine, t
        self.seconds += wall
        for k, v in used.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
        return {k: round(100 * v / wall, 1) for k, v in used.items()}

    def summary(self) -> dict:
        wall = max(1e-6, self.seconds)
        return {"wall_s": round(self.seconds, 1), "cpus": os.cpu_count(),
                "cpu_seconds": {k: round(v, 1) for k, v in sorted(self.totals.items())},
                "mean_pct_of_one_core": {k: round(100 * v / wall, 1) for k, v in sorted(self.totals.items())},
                "share_of_machine_busy": {k: round(v / max(1e-6, self.totals.get("machine", 0.0)), 3)
                                          for k, v in sorted(self.totals.items()) if k != "machine"}}


def process_groups(voila_pid: int, orchestrator_pid: int | None, postgres_pid: int | None):
    """The parts of the run, as `CpuMeter` counts them: {part: processes}."""
    import psutil

    def tree(pid):
        if pid is None:
            return []
        try:
            p = psutil.Process(pid)
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return []

    def groups():
        voila = tree(voila_pid)
        ks = kernels(voila_pid)
        kernel_pids = {k.pid for k in ks}
        parts = {"voila_server": [p for p in voila if p.pid not in kernel_pids], "kernels": ks,
                 "orchestrator": tree(orchestrator_pid), "postgres": tree(postgres_pid)}
        taken = {p.pid for procs in parts.values() for p in procs}
        me = psutil.Process()
        # what is left of this script's children is the browser: Playwright's driver and Chromium
        parts["browser"] = [p for p in me.children(recursive=True) if p.pid not in taken]
        parts["bench"] = [me]
        return parts

    return groups


# --- the labellers ---------------------------------------------------------------------------


async def labeller(browser, base: str, k: int, until: float, rng: random.Random, out: dict) -> None:
    worker = f"bench-{k:03d}"
    ctx = await browser.new_context(viewport={"width": 1100, "height": 760})
    page = await ctx.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    out["pages"].append(page)
    rec = out["workers"].setdefault(worker, {"clicked": [], "latency_ms": [], "failed": 0, "load_s": None})
    t0 = time.monotonic()
    try:
        await page.goto(f"{base}?worker={worker}")
        post = page.locator(".sl-post")
        await post.wait_for()
        rec["load_s"] = round(time.monotonic() - t0, 2)
        current = await post.get_attribute("data-item-id")
        while time.monotonic() < until:
            await asyncio.sleep(rng.uniform(3.0, 6.0))
            if time.monotonic() >= until:
                break
            label = rng.choice(LABELS)
            ms, new = await page.evaluate(CLICK_JS, [label, current, 60_000])
            if new is None:  # no next post: the click may or may not have been stored
                rec["failed"] += 1
                rec["clicked_unconfirmed"] = rec.get("clicked_unconfirmed", []) + [[int(current), label]]
                break
            rec["clicked"].append([int(current), label])
            rec["latency_ms"].append(round(ms, 1))
            current = new
    except Exception as exc:  # a page that never rendered, a browser error: counted, not fatal
        rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


async def drive(base: str, n: int, seconds: float, arrive_every: float, seed: int, out: dict) -> None:
    from playwright.async_api import async_playwright

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            until = time.monotonic() + seconds
            tasks = []
            for k in range(n):
                tasks.append(asyncio.create_task(labeller(browser, base, k, until, random.Random(seed + k), out)))
                await asyncio.sleep(arrive_every)
            await asyncio.gather(*tasks)
            await out["before_close"]()
            out["closed_at"] = time.monotonic()
            for page in out["pages"]:  # no beforeunload: as a crashed tab or a killed browser
                await page.close()
            out["closed_at"] = time.monotonic()
            await out["after_close"]()
        finally:
            await browser.close()


# --- what the database says ----------------------------------------------------------------------


def stored_labels(engine) -> list[tuple[str, int, str]]:
    from sqlalchemy import text

    with engine.connect() as conn:
        return sorted((r.worker_id, r.item_id, r.label) for r in conn.execute(text(
            "SELECT worker_id, item_id, label FROM labels WHERE worker_id LIKE 'bench-%' AND retracted_at IS NULL")))


def model_runs(engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM model_runs WHERE status = 'ok'")).scalar_one())


def double_handouts(engine, lease_seconds: float) -> dict:
    """Posts handed to a labeller while another one still held them: the other had no label of the
    post yet, and their hand-out (renewed while on screen) was within LEASE_SECONDS or renewed since.

    Renewals are not logged, so a hand-out counts as held until that labeller's label (or, with no
    label, for good: a renewed lease never ran out while its page was open). Hand-outs of posts
    that were labelled first (audit, review) are not doubles."""
    from sqlalchemy import text

    from smartlabel.db import as_datetime

    with engine.connect() as conn:
        hand = conn.execute(text("SELECT item_id, worker_id, handed_at, reason FROM handouts ORDER BY handed_at, id")).all()
        labs = conn.execute(text("SELECT item_id, worker_id, MIN(created_at) FROM labels GROUP BY item_id, worker_id")).all()
    labelled = {(r[0], r[1]): as_datetime(r[2]) for r in labs}
    first_by_item: dict[int, list] = {}
    doubles = []
    for item_id, worker, at, reason in hand:
        at = as_datetime(at)
        for other, other_at in first_by_item.get(item_id, []):
            if other == worker:
                continue
            done_at = labelled.get((item_id, other))
            if done_at is None or done_at > at:  # `other` still held it when `worker` got it
                doubles.append({"item_id": item_id, "first": other, "second": worker, "reason": reason,
                                "gap_s": round((at - other_at).total_seconds(), 1)})
        first_by_item.setdefault(item_id, []).append((worker, at))
    # a lease that ran out with no renewal (a dead page) may be handed on: only those within
    # LEASE_SECONDS of the first hand-out are certain doubles
    certain = [d for d in doubles if d["gap_s"] < lease_seconds]
    return {"count": len(certain), "after_a_lease_could_have_expired": len(doubles) - len(certain),
            "examples": certain[:10]}


# --- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labellers", type=int, default=10, help="pages (default 10)")
    ap.add_argument("--minutes", type=float, default=5.0,
                    help="how long they label, in minutes (default 5, the issue's benchmark)")
    ap.add_argument("--seconds", type=float, help="how long they label, in seconds (overrides --minutes)")
    ap.add_argument("--posts", type=int, default=80_000, help="posts in the pool (default 80,000)")
    ap.add_argument("--arrive-every", type=float, default=3.0, help="seconds between two pages opening (default 3)")
    ap.add_argument("--cull-seconds", type=int, default=60, help="KERNEL_IDLE_SECONDS (default 60)")
    ap.add_argument("--after-close", type=float, default=120, help="seconds to count kernels after the pages close")
    ap.add_argument("--database-url", help="a fresh, empty PostgreSQL database (default: pgserver, temporary)")
    ap.add_argument("--no-orchestrator", action="store_true", help="do not retrain while labelling")
    ap.add_argument("--pin", action="store_true",
                    help="the browser (standing in for the labellers' own computers) on the last core, the server "
                    "(PostgreSQL, Voila and its kernels, the orchestrator) on the others")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="default bench/results/labellers-N.json")
    args = ap.parse_args(argv)
    if args.seconds is None:
        args.seconds = 60.0 * args.minutes
    if args.seconds <= 0 or args.labellers < 1:
        ap.error("--labellers must be at least 1 and the labelling time (--minutes / --seconds) positive")
    out_path = args.out or ROOT / "bench" / "results" / f"labellers-{args.labellers}{'-pinned' if args.pin else ''}.json"
    pinning = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            ap.error("--pin needs at least 2 cores (one for the browser, the rest for the server)")
        pinning = {"server": cpus[:-1], "browser": cpus[-1:]}
        os.sched_setaffinity(0, pinning["server"])  # what this process starts from now on inherits it

    from sqlalchemy.engine import make_url

    from smartlabel.db import make_engine
    from smartlabel.migrate import upgrade
    from smartlabel.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="bench-labellers-") as tmp:
        tmp = Path(tmp)
        pg = None
        url = args.database_url
        if url is None:
            url, pg = start_postgres(tmp)
        if make_url(url).get_backend_name() != "postgresql":
            raise SystemExit("--database-url must be a PostgreSQL database")
        voila = orchestrator = None
        try:
            upgrade(url).dispose()
            t = time.monotonic()
            _seed(url, args.posts)
            print(f"seeded {args.posts:,} posts in {time.monotonic() - t:.1f} s", flush=True)
            env = environment(url, tmp / "models", args.cull_seconds)
            lease_seconds = load_settings(database_url=url).lease_seconds
            port = _free_port()
            voila = start(["serve", "--host", "127.0.0.1", "--port", str(port), "--no-token"], env, tmp / "voila.log")
            wait_for_port(voila, port, tmp / "voila.log")
            import psutil

            voila_argv = [a for a in psutil.Process(voila.pid).cmdline() if a.startswith("--")]
            if not args.no_orchestrator:
                orchestrator = start(["orchestrate"], env, tmp / "orchestrator.log")
            engine = make_engine(url, connections=1)
            meter = CpuMeter(process_groups(voila.pid, orchestrator.pid if orchestrator else None,
                                            pg.get_pid() if pg is not None else None))
            load_at_start = os.getloadavg()
            samples: list[dict] = []
            after: list[dict] = []
            out = {"pages": [], "workers": {}}

            async def sampler(stop_when):
                while not stop_when():
                    s = await asyncio.to_thread(sample, voila.pid, engine)
                    s["cpu_pct"] = await asyncio.to_thread(meter.sample)
                    s["load1"] = round(os.getloadavg()[0], 2)
                    samples.append(s)
                    await asyncio.sleep(5)

            async def after_close():
                deadline = time.monotonic() + args.after_close
                while time.monotonic() < deadline:
                    s = await asyncio.to_thread(sample, voila.pid, engine)
                    s["since_close_s"] = round(time.monotonic() - out["closed_at"], 1)
                    after.append(s)
                    if s["kernels"] == 0:
                        break
                    await asyncio.sleep(2)

            out["after_close"] = after_close

            async def before_close():  # CPU time counts while the pages labelled, not while kernels wait to go
                await asyncio.to_thread(meter.sample)
                out["cpu"] = meter.summary()

            out["before_close"] = before_close

            async def run():
                stopping = {"now": False}
                task = asyncio.create_task(sampler(lambda: stopping["now"]))
                try:
                    await drive(f"http://127.0.0.1:{port}/", args.labellers, args.seconds, args.arrive_every,
                                args.seed, out)
                finally:
                    stopping["now"] = True
                    await task

            if pinning:  # Playwright's driver and Chromium start inside run(): they inherit this
                os.sched_setaffinity(0, pinning["browser"])
            asyncio.run(run())
            cpu = out.get("cpu") or meter.summary()
            stop(orchestrator)
            runs_ok = model_runs(engine) - 1  # the seeded run left out
            stored = stored_labels(engine)
            doubles = double_handouts(engine, lease_seconds)
            engine.dispose()
            voila_log = (tmp / "voila.log").read_text(errors="replace")
        finally:
            stop(orchestrator)
            stop(voila)
            if pg is not None:
                pg.cleanup()

    workers = out["workers"]
    clicked = sorted((w, i, lab) for w, r in workers.items() for i, lab in r["clicked"])
    unconfirmed = sorted((w, i, lab) for w, r in workers.items() for i, lab in r.get("clicked_unconfirmed", []))
    latencies = [ms for r in workers.values() for ms in r["latency_ms"]]
    during = [s for s in samples if s["kernels"]]
    peak = max(during, key=lambda s: s["rss_mb"]) if during else None
    per_kernel = [mb for s in during for mb in s["kernel_rss_mb"]]
    missing = sorted(set(clicked) - set(stored))
    extra = sorted(set(stored) - set(clicked) - set(unconfirmed))
    result = {
        "labellers": args.labellers, "seconds": args.seconds, "posts": args.posts,
        "cull_seconds": args.cull_seconds, "orchestrator": not args.no_orchestrator, "cpus_pinned": pinning,
        "pages_rendered": sum(1 for r in workers.values() if r["load_s"] is not None),
        "page_errors": {w: r["error"] for w, r in workers.items() if "error" in r},
        "page_load_s": {"p50": _r(percentile([r["load_s"] for r in workers.values() if r["load_s"]], 0.5)),
                        "max": _r(max([r["load_s"] for r in workers.values() if r["load_s"]], default=None))},
        "click_to_next_ms": {"n": len(latencies), "p50": _r(percentile(latencies, 0.5)),
                             "p95": _r(percentile(latencies, 0.95)), "p99": _r(percentile(latencies, 0.99)),
                             "max": _r(max(latencies, default=None))},
        "clicks_without_next_post": sum(r["failed"] for r in workers.values()),
        "labels": {"clicked": len(clicked), "stored": len(stored), "clicked_not_stored": len(missing),
                   "stored_not_clicked": len(extra), "unconfirmed_clicks": len(unconfirmed),
                   "equal": not missing and not extra},
        "double_handouts": doubles,
        "memory_mb": {"peak_total": peak["rss_mb"] if peak else None,
                      "kernel_mean": _r(sum(per_kernel) / len(per_kernel)) if per_kernel else None,
                      "kernel_max": max(per_kernel, default=None),
                      "per_labeller_at_peak": _r(peak["rss_mb"] / max(1, peak["kernels"])) if peak else None},
        # the budget: one per kernel, at most 4 for the orchestrator (the sampler's own one left out)
        "connections": {"max": max((s["connections"] for s in samples), default=None),
                        "budget": args.labellers + (0 if args.no_orchestrator else 4)},
        "kernels_after_close": {"at_close": after[0]["kernels"] if after else None,
                                "left": after[-1]["kernels"] if after else None,
                                "seconds_until_none": next((s["since_close_s"] for s in after if s["kernels"] == 0),
                                                           None),
                                "waited_s": args.after_close},
        "model_runs_while_labelling": runs_ok,
        # CPU time by part from the first page opening to the last click (100 % = one core);
        # `other` is work on the host that is not this run's (a shared machine)
        "cpu": cpu,
        "load_average": {"at_start": [round(x, 2) for x in load_at_start],
                         "during_max": max((s["load1"] for s in samples), default=None),
                         "at_end": [round(x, 2) for x in os.getloadavg()]},
        "voila_options": voila_argv,
        "voila_culled": voila_log.count("Culling '"),
        "voila_iopub_timeouts": voila_log.count("Timeout waiting for IOPub output"),
        "samples": samples, "after_close": after,
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    write_result(result, out_path)
    c, lab, k = result["click_to_next_ms"], result["labels"], result["kernels_after_close"]
    print(f"{args.labellers} labellers, {result['pages_rendered']} pages rendered: click to next p50 {c['p50']} / "
          f"p95 {c['p95']} / p99 {c['p99']} ms over {c['n']} clicks; labels clicked {lab['clicked']}, stored "
          f"{lab['stored']} (equal: {lab['equal']}); double hand-outs {doubles['count']}; peak RSS "
          f"{result['memory_mb']['peak_total']} MB ({result['memory_mb']['per_labeller_at_peak']} MB per labeller); "
          f"connections max {result['connections']['max']}; kernels left {k['left']} "
          f"{k['seconds_until_none']} s after closing; CPU (% of one core) "
          f"{', '.join(f'{g} {v}' for g, v in cpu['mean_pct_of_one_core'].items())}; written to {out_path}")
    return 0


def _r(v):
    return None if v is None else round(float(v), 1)


if __name__ == "__main__":
    raise SystemExit(main())
