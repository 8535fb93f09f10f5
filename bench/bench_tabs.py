#!/usr/bin/env python3
"""Tabs opened and closed in a loop: connections stay within the budget, memory comes back.

    python bench/bench_tabs.py --tabs 200 --wave 10 --cull-seconds 20

Issue 14's second benchmark (a measurement, not a test), on the same set-up as
bench/bench_labellers.py (pgserver, `smartlabel serve` with KERNEL_IDLE_SECONDS, one
Chromium): `--tabs` pages in waves of `--wave` at once; each page waits for its first post,
then every page of the wave is closed without `beforeunload` (as a crashed tab or a killed
laptop: Voila's shutdown beacon never leaves, so only culling frees the kernel). Every 2 s:
database connections (pg_stat_activity) and resident memory of Voila plus its kernels.
Afterwards it waits for the culler until no kernel is left (at most `--after-close` s).

Reports the peak of connections against the budget (one per live kernel: pages never hold
more than one), Voila's memory before the first tab and after the last kernel went, kernels
left. Results: bench/results/tabs.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_labellers import environment, sample, start, start_postgres, stop, wait_for_port  # noqa: E402
from bench_page import CHROMIUM_ARGS, _free_port, _seed, write_result  # noqa: E402


async def churn(base: str, tabs: int, wave: int, out: dict) -> None:
    from playwright.async_api import async_playwright

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            opened = 0
            while opened < tabs:
                n = min(wave, tabs - opened)
                ctx = await browser.new_context()
                pages = [await ctx.new_page() for _ in range(n)]

                async def load(page, k):
                    try:
                        await page.goto(f"{base}?worker=tab-{k:04d}", timeout=180_000)
                        await page.locator(".sl-post").wait_for(timeout=180_000)
                        out["rendered"] += 1
                    except Exception as exc:  # counted, not fatal
                        out["errors"].append(f"tab {k}: {type(exc).__name__}")

                await asyncio.gather(*(load(p, opened + i) for i, p in enumerate(pages)))
                for p in pages:
                    await p.close()  # no beforeunload
                await ctx.close()
                opened += n
                print(f"{opened}/{tabs} tabs opened and closed", flush=True)
        finally:
            await browser.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tabs", type=int, default=200)
    ap.add_argument("--wave", type=int, default=10, help="tabs open at once (default 10)")
    ap.add_argument("--posts", type=int, default=20_000)
    ap.add_argument("--cull-seconds", type=int, default=20, help="KERNEL_IDLE_SECONDS (default 20)")
    ap.add_argument("--after-close", type=float, default=180)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tabs.json")
    args = ap.parse_args(argv)

    from smartlabel.db import make_engine
    from smartlabel.migrate import upgrade

    samples: list[dict] = []
    out = {"rendered": 0, "errors": []}
    with tempfile.TemporaryDirectory(prefix="bench-tabs-") as tmp:
        tmp = Path(tmp)
        url, pg = start_postgres(tmp)
        voila = None
        try:
            upgrade(url).dispose()
            _seed(url, args.posts)
            env = environment(url, tmp / "models", args.cull_seconds)
            port = _free_port()
            voila = start(["serve", "--host", "127.0.0.1", "--port", str(port), "--no-token"], env, tmp / "voila.log")
            wait_for_port(voila, port, tmp / "voila.log")
            engine = make_engine(url, connections=1)
            time.sleep(3)
            before = sample(voila.pid, engine)

            async def run():
                done = {"now": False}

                async def sampler():
                    while not done["now"]:
                        samples.append(await asyncio.to_thread(sample, voila.pid, engine))
                        await asyncio.sleep(2)

                task = asyncio.create_task(sampler())
                try:
                    await churn(f"http://127.0.0.1:{port}/", args.tabs, args.wave, out)
                    closed = time.monotonic()
                    while time.monotonic() - closed < args.after_close:
                        # psutil may miss the children for one sample: two in a row with no kernel
                        # and no connection mean they are gone
                        last = samples[-2:]
                        if len(last) == 2 and all(s["kernels"] == 0 and s["connections"] == 0 for s in last):
                            break
                        await asyncio.sleep(2)
                    out["seconds_until_no_kernel"] = round(time.monotonic() - closed, 1)
                finally:
                    done["now"] = True
                    await task

            asyncio.run(run())
            time.sleep(2)
            after = sample(voila.pid, engine)
            engine.dispose()
            culled = (tmp / "voila.log").read_text(errors="replace").count("Culling '")
        finally:
            stop(voila)
            pg.cleanup()

    peak_kernels = max((s["kernels"] for s in samples), default=0)
    result = {
        "tabs": args.tabs, "wave": args.wave, "cull_seconds": args.cull_seconds, "posts": args.posts,
        "rendered": out["rendered"], "errors": out["errors"][:20],
        # the budget: one connection per live kernel (no orchestrator runs here); kernels and
        # connections are sampled a moment apart, so compare the peaks
        "connections": {"max": max((s["connections"] for s in samples), default=None),
                        "max_kernels_alive": peak_kernels,
                        "within_budget": max((s["connections"] for s in samples), default=0) <= peak_kernels},
        "voila_rss_mb": {"before_first_tab": before["rss_mb"], "after_last_kernel": after["rss_mb"],
                         "peak": max((s["rss_mb"] for s in samples), default=None)},
        "kernels_left": after["kernels"], "seconds_until_no_kernel": out.get("seconds_until_no_kernel"),
        "culled": culled, "samples": samples,
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    write_result(result, args.out)
    c, m = result["connections"], result["voila_rss_mb"]
    print(f"{args.tabs} tabs ({result['rendered']} rendered) in waves of {args.wave}: connections max {c['max']} "
          f"with at most {c['max_kernels_alive']} kernels alive (within one per kernel: "
          f"{c['within_budget']}); Voila RSS {m['before_first_tab']} MB before, peak {m['peak']} MB, "
          f"{m['after_last_kernel']} MB after; kernels left {result['kernels_left']}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
