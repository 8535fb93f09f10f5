#!/usr/bin/env python3
"""Labelling page speed and size: click-to-next-post latency in Chromium, kernel memory.

    python bench/bench_page.py                      # 60 clicks on a fresh SQLite database
    python bench/bench_page.py --clicks 200 --posts 500
    python bench/bench_page.py --database-url postgresql+psycopg2://...   # a fresh, empty database
    python bench/bench_page.py --shuffle-prop 0 --screenshot docs/labelling-page.png   # the README's picture

Seeds posts and a finished model run ranking them (what the orchestrator leaves behind),
starts `smartlabel serve` (Voila) on a free port exactly as an operator does, opens the
page in Debian's Chromium through Playwright, types a name and labels posts by clicking
tag buttons. Latency is measured inside the page: from the click (performance.now()
before button.click()) until the next post is in the DOM (a MutationObserver sees a new
`data-item-id`), so it covers the websocket round trip, the kernel's submit + pop +
counts, and the re-render. Between clicks it waits 0.4 s, as a (very fast) person would;
the page ignores clicks that arrive within 0.25 s of a new post (double-click guard).
The page-load figures are from the request until the name box shows, and from pressing
Enter (after typing the name at 150 ms a key) until the first post shows.
Memory is the labeller kernel's resident set (and unique set) from psutil, after the
page loaded and after all clicks. Results: bench/results/page.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HEAVY = ("tensorflow", "sklearn", "scipy", "pandas", "torch")

# Click the tag button; resolve with [ms, new id] once a post with another id is in the DOM,
# or [ms, null] after `limit` ms (an error screen, "all done", a dead kernel).
CLICK_JS = """
async ([label, old, limit]) => {
  const button = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === label);
  if (!button) return [-1, null];
  const changed = () => {
    const post = document.querySelector('.sl-post');
    return post && post.dataset.itemId !== old ? post.dataset.itemId : null;
  };
  const t0 = performance.now();
  const done = new Promise(resolve => {
    const obs = new MutationObserver(() => { const id = changed(); if (id) { obs.disconnect(); resolve(id); } });
    obs.observe(document.body, {subtree: true, childList: true, attributes: true,
                                attributeFilter: ['data-item-id']});
    setTimeout(() => { obs.disconnect(); resolve(changed()); }, limit);
  });
  button.click();
  const id = await done;
  return [performance.now() - t0, id];
}
"""
CLICK_LIMIT_MS = 60_000  # one click on the page bench: a post that takes longer is a failure


def percentile(values, q):
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def kernel_memory(voila_pid: int) -> dict:
    import psutil

    from smartlabel.serve import is_kernel_command

    kernels = [p for p in psutil.Process(voila_pid).children(recursive=True)
               if is_kernel_command(p.cmdline())]
    if not kernels:
        return {"rss_mb": None, "uss_mb": None, "heavy_modules_mapped": None}
    k = max(kernels, key=lambda p: p.create_time())  # the newest kernel is this page's
    full = k.memory_full_info()
    mapped = sorted({name for m in k.memory_maps() for name in HEAVY if f"/site-packages/{name}/" in m.path})
    return {"rss_mb": round(full.rss / 2**20, 1), "uss_mb": round(full.uss / 2**20, 1),
            "heavy_modules_mapped": mapped}


def measure(browser, page_url: str, voila_pid: int, *, clicks: int, worker: str = "bench",
            labels=("Advocacy", "Others", "Personal Stories"), pause_s: float = 0.4,
            screenshot: Path | None = None) -> dict:
    """Open the page, type a name, label `clicks` posts; return timings and kernel memory."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    try:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        t0 = time.perf_counter()
        page.goto(page_url)
        box = page.get_by_placeholder("Your name")
        box.wait_for()
        t_name = time.perf_counter() - t0
        box.type(worker, delay=150)  # typing speed of a person (superintendent loads meanwhile)
        t1 = time.perf_counter()
        box.press("Enter")
        post = page.locator(".sl-post")
        post.wait_for()
        t_first = time.perf_counter() - t1
        memory_loaded = kernel_memory(voila_pid)
        if screenshot is not None:
            page.locator(".sl-body").hover()
            page.wait_for_timeout(300)
            save_screenshot(page, screenshot)
        current = post.get_attribute("data-item-id")
        samples = []
        for i in range(clicks):
            page.wait_for_timeout(pause_s * 1000)
            label = labels[i % len(labels)]
            ms, current = page.evaluate(CLICK_JS, [label, current, CLICK_LIMIT_MS])
            if ms < 0:
                raise RuntimeError(f"no button {label!r} on the page")
            if current is None:
                raise RuntimeError(f"no new post within {CLICK_LIMIT_MS} ms of clicking {label!r}")
            samples.append(round(ms, 2))
        memory_done = kernel_memory(voila_pid)
    finally:
        ctx.close()
    return {
        "clicks": clicks,
        "latency_ms": {"p50": round(percentile(samples, 0.5), 1), "p95": round(percentile(samples, 0.95), 1),
                       "mean": round(statistics.fmean(samples), 1), "max": round(max(samples), 1),
                       "samples": samples},
        "page_load_s": {"until_name_box": round(t_name, 2), "name_to_first_post": round(t_first, 2)},
        "kernel_rss_mb": {"after_load": memory_loaded["rss_mb"], "after_clicks": memory_done["rss_mb"]},
        "kernel_uss_mb": {"after_load": memory_loaded["uss_mb"], "after_clicks": memory_done["uss_mb"]},
        "heavy_modules_in_kernel": memory_done["heavy_modules_mapped"],
    }


def write_result(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(database_url: str, log: Path, shuffle_prop: float):
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "SHUFFLE_PROP": str(shuffle_prop),
           "LABELS": "article", "PYTHONPATH": str(ROOT / "src")}  # the sample posts are discussion posts
    env.pop("VOILA_TOKEN", None)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "smartlabel", "serve", "--host", "127.0.0.1",
                                 "--port", str(port), "--no-token"], cwd=ROOT, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"smartlabel serve exited:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("Voila did not start within 60 s")


SAMPLE_POSTS = [  # written for this benchmark; shown first (highest priority)
    ("Is it worth moving out of my parents' flat at 27?",
     "Long-time lurker, first post.\n\nI earn about the median salary and rent for a common room near "
     "the MRT is now more than a third of my take-home pay. My parents say I should wait for a BTO, "
     "which could be four or five years away.\n\nFriends who moved out say the independence was "
     "worth every dollar. Others say they regret not saving for the downpayment instead.\n\n"
     "For those who did it: how did you budget, and would you do it again?"),
    ("Volunteers needed: weekend food distribution in the east",
     "Our group packs and delivers groceries to about 200 households every Saturday morning.\n"
     "We need drivers and packers, no experience needed.\n\nDetails and sign-up in the comments."),
]


def _seed(database_url: str, posts: int) -> None:
    """Posts, and a finished model run ranking them (as the orchestrator leaves things)."""
    import hashlib
    import random

    from sqlalchemy import insert, text

    from smartlabel import LABEL_PRESETS
    from smartlabel.db import items, utcnow
    from smartlabel.migrate import upgrade
    from smartlabel.store import predictions as store_predictions, runs as store_runs

    engine = upgrade(database_url)
    rng = random.Random(0)
    words = "rent housing bus train school job family policy vaccine salary food news community".split()
    rows = []
    for k in range(posts):
        if k < len(SAMPLE_POSTS):
            title, body = SAMPLE_POSTS[k]
        else:
            title = " ".join(rng.choices(words, k=8)).capitalize() + f" #{k}"
            body = "\n\n".join(" ".join(rng.choices(words, k=rng.randint(20, 80)))
                               for _ in range(rng.randint(1, 4)))
        rows.append({"title": title, "selftext": body, "clean_selftext": body.lower(),
                     "content_hash": hashlib.sha256(f"{title}\0{body}".encode()).hexdigest(),
                     "imported_at": utcnow(), "rand_key": rng.random(), "label_count": 0, "done": False})
    with engine.begin() as conn:
        conn.execute(insert(items), rows)
        ids = [r[0] for r in conn.execute(text("SELECT id FROM items ORDER BY id"))]
        run = conn.execute(text(
            "INSERT INTO model_runs (started_at, finished_at, status, model_kind, n_labels, cv_accuracy) "
            "VALUES (:t, :t, 'ok', 'lr', 120, 0.78) RETURNING id"), {"t": utcnow()}).scalar_one()
    labels = list(LABEL_PRESETS["article"])
    first = [labels[rng.randrange(5)] for _ in ids]
    second = [labels[(labels.index(f) + 1 + rng.randrange(4)) % 5] for f in first]
    p1 = [round(rng.uniform(0.3, 0.6), 3) for _ in ids]
    store_predictions.write(engine, run, ids, [2.0 + len(SAMPLE_POSTS) - i if i < len(SAMPLE_POSTS) else rng.random()
                                     for i in range(len(ids))],
                      predicted_labels=first, confidences=p1, second_labels=second,
                      second_confidences=[round(p * rng.uniform(0.5, 0.95), 3) for p in p1])
    store_runs.set_current(engine, run)
    engine.dispose()


def save_screenshot(page, path: Path) -> None:
    """A small PNG of the page (256-colour palette)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    box = page.locator(".sl-page").bounding_box()
    size = page.viewport_size
    height = min(size["height"], int(box["y"] + box["height"] + 24)) if box else size["height"]
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": size["width"], "height": height})
    try:
        from PIL import Image

        Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)
    except ImportError:  # pragma: no cover - the full-colour PNG stays
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clicks", type=int, default=60, help="posts to label (default 60)")
    ap.add_argument("--posts", type=int, default=300, help="posts to seed (default 300)")
    ap.add_argument("--database-url", help="a fresh, migrated database (default: a temporary SQLite file)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "page.json")
    ap.add_argument("--shuffle-prop", type=float, default=0.1, help="SHUFFLE_PROP for the page (default 0.1)")
    ap.add_argument("--screenshot", type=Path, help="also save a PNG of the page with its first post "
                    "(the README's is docs/labelling-page.png)")
    args = ap.parse_args(argv)
    if args.clicks >= args.posts:
        ap.error("--posts must be larger than --clicks")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        _seed(url, args.posts)
        proc, port = _serve(url, Path(tmp) / "voila.log", args.shuffle_prop)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                try:
                    result = measure(browser, f"http://127.0.0.1:{port}/", proc.pid, clicks=args.clicks,
                                     worker="Mei", screenshot=args.screenshot)
                finally:
                    browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    from sqlalchemy.engine import make_url

    result.update({
        "database": make_url(url).get_backend_name(),
        "posts": args.posts,
        "shuffle_prop": args.shuffle_prop,
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    })
    write_result(result, args.out)
    lat = result["latency_ms"]
    print(f"click to next post: p50 {lat['p50']} ms, p95 {lat['p95']} ms over {args.clicks} clicks; "
          f"kernel {result['kernel_rss_mb']['after_clicks']} MB resident "
          f"(page load {result['page_load_s']['until_name_box']} s + {result['page_load_s']['name_to_first_post']} s); "
          f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
