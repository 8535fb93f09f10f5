"""Render bench/results/*.json into the generated blocks of BENCHMARKS.md.

Generated blocks sit between `<!-- BEGIN GENERATED: name -->` and
`<!-- END GENERATED: name -->`; everything outside them (the prose that explains
the numbers) is kept as written. A file without the markers gets a skeleton.

    python bench/report.py [--results bench/results] [--md BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BLOCKS = ("machine", "targets", "reprio", "handout", "stall", "memory", "al", "page")

# what we hold ourselves to (issue 16, "Speed at scale"); checked here, never in tests
TARGETS = {
    "whole_ratio": 30.0,         # steady-state whole retraining run at 80k on PostgreSQL, x the baseline's retrain()
    "cycle_80k_s": 0.5,          # the cycle (score + write + switch) at 80k on PostgreSQL
    "cold_ratio": 10.0,          # a cold `smartlabel orchestrate --once` at 80k, x the baseline's retrain()
    "first_1m_s": 60.0,          # 1M posts on PostgreSQL: first run
    "cycle_1m_s": 10.0,          # ... steady cycle
    "rss_1m_mb": 2048.0,         # ... orchestrator peak RSS
    "import_rows_s": 20_000.0,   # import into PostgreSQL
    "handout_pairs_s": 500.0,    # pop+submit pairs/s, 16 labeller processes, no pause
    "human_pop_p95_ms": 20.0,    # 100 labellers at a person's pace (one label every 3 s each)
    "stall_p95_ms": 50.0,        # pop p95 while 80k priorities are written
    "kernel_mb": 150.0,          # earlier issues' targets, still shown
}


def _load(results: Path, name: str) -> dict | None:
    f = results / f"{name}.json"
    if f.is_dir():  # left by bench/run.py before it matched option names exactly
        print(f"report: {f} is a folder, not a results file: delete it and run the benchmark again",
              file=sys.stderr)
        return None
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text())
    except ValueError:
        return None


def _f(v, fmt="{:.2f}", dash="–") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else dash


def _ratio(base, ours) -> str:
    if isinstance(base, (int, float)) and isinstance(ours, (int, float)) and ours > 0:
        return f"**{base / ours:.0f}x**" if base / ours >= 10 else f"**{base / ours:.1f}x**"
    return "–"


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _err(r: dict | None) -> str | None:
    if not r:
        return "not run"
    return r.get("error")


# --- blocks -------------------------------------------------------------------------------


def block_machine(m: dict | None) -> str:
    if not m:
        return "_No results yet: run `make bench`._"
    pg = m.get("postgresql_settings") or {}
    base = m.get("baseline") or {}
    ours = m.get("ours") or {}
    rows = [
        ["Date", m.get("date")], ["Profile", m.get("profile")],
        ["CPU", f"{m.get('cpu')}, {m.get('cores')} cores"], ["RAM", f"{m.get('ram_gb')} GB"],
        ["OS", m.get("os")], ["Python", m.get("python")],
        ["PostgreSQL", f"{m.get('postgresql', '–')} ({m.get('postgresql_source', '')}; "
                       + ", ".join(f"{k}={v}" for k, v in pg.items()) + ")"],
        ["SQLite", m.get("sqlite")],
        ["Ours", ", ".join(f"{k} {v}" for k, v in ours.items())],
        ["Baseline", ", ".join(f"{k} {v}" for k, v in base.items())],
        ["Load average at start", " / ".join(str(x) for x in m.get("load_average_at_start", []))],
        ["Commit", m.get("git_commit", "–")],
    ]
    return _table(["", ""], rows)


def _reprio_row(rep: dict | None, backend: str, n: int) -> dict | None:
    for row in (rep or {}).get("rows", []):
        if row["backend"] == backend and row["n"] == n:
            return row
    return None


def _handout_row(ho: dict | None, backend: str, side: str, workers: int, think: float = 0.0) -> dict | None:
    for row in (ho or {}).get("rows", []):
        if (row["backend"], row["side"], row["workers"], row["think_ms"]) == (backend, side, workers, think):
            return row
    return None


def _find_kernel_mb(page: dict | None):
    """The labeller kernel's resident memory from bench_page.py's JSON: (MB, key path).

    Key names are the interface engineer's; the most telling figure wins: resident
    (rss) over unique (uss), after the clicks over after the load.
    """
    if not isinstance(page, dict):
        return None, None
    found = []
    stack = [((), page)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            stack.extend(((*path, k), x) for k, x in v.items())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            key = "/".join(str(p) for p in path).lower()
            if "kernel" in key and ("mb" in key or "rss" in key):
                rank = (4 * ("rss" in key) + 2 * any(w in key for w in ("click", "peak", "max"))
                        + ("after" in key))
                found.append((rank, key, v))
    if not found:
        return None, None
    rank, key, v = max(found)
    return v, key


def _verdict(ok) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[ok]


def _rate(r: dict | None) -> str:
    if not r or "pairs_per_second" not in r:
        return (r or {}).get("error", "–") if r else "–"
    cap = r.get("cpu_bound_pairs_per_second")
    cpu = (r.get("cpu_ms_per_pair") or {}).get("total")
    return (f"{r['pairs_per_second']:.0f} pairs/s"
            + (f" (CPU {cpu:.2f} ms a pair: {cap:.0f} pairs/s with both cores free)" if cap else ""))


def _al_target_rows(al: dict) -> list[list[str]]:
    """Issue 15's active-learning targets, for the default model and strategy (al.json `target.rows`)."""
    names = {"r8": "R8", "20ng": "20 Newsgroups", "tweets": "election tweets"}
    mine = [r for r in al["rows"] if r.get("default")]
    if not mine:
        return [[f"Active learning with the default model ({al.get('default_model')}, "
                 f"{al.get('default_strategy')})", "not in al.json", _verdict(None)]]
    name = f"{al.get('default_model')}, {al.get('default_strategy')}"
    out = []
    for r in mine:
        c = names.get(r["corpus"], r["corpus"])
        out.append([f"Labels to 95% of full-data accuracy ≤ 0.4x random's, {c}, {name}",
                    (f"{r['labels']} labels" if r.get("labels") is not None else "not within the budget")
                    + " vs random "
                    + (f"{r['random_labels']}" if r.get("random_labels") is not None else "not within its budget")
                    + f" (ratio {r.get('ratio_text')})",
                    _verdict(r["ratio_met"]) if r.get("ratio_met") is not None
                    else "not settled (neither reached 95%)"])
        if r.get("gain_met") is not None:
            g = r.get("gain_vs_lr")
            out.append([f"Accuracy at 100 labels ≥ TF-IDF lr's + 5 points, {c}, {name}",
                        f"{_f(g * 100 if g is not None else None, '{:+.1f}')} points", _verdict(r["gain_met"])])
        b = r.get("below_random") or {}
        out.append([f"Learning curve never under random's past the first model, {c}, {name}",
                    "never" if not b.get("points_below") else
                    f"under at {b['points_below']} of {b['points']} points (worst "
                    f"{_f((b.get('worst_gap') or 0) * 100, '{:+.1f}')} points at {b.get('worst_at')} labels)",
                    _verdict(r.get("below_met"))])
    return out


def _scale_rows(sc: dict | None) -> list[list[str]]:
    """The cold first run on a new 1M-post pool, from `make bench-scale` (bench/bench_scale.py)."""
    cold = (sc or {}).get("cold") or {}
    if "process_seconds" not in cold:
        return [["A new pool's cold first `orchestrate --once` (`make bench-scale`)", "scale.json not found",
                 _verdict(None)]]
    load = ((sc.get("machine") or {}).get("load_average_at_start") or ["?"])[0]
    rss = cold.get("peak_rss_mb")
    return [[f"{sc.get('posts', 0):,} posts: a new pool's cold first `orchestrate --once` < "
             f"{TARGETS['first_1m_s']:.0f} s and < 2 GB (`make bench-scale`)",
             f"{cold['process_seconds']:.0f} s, peak {_f(rss, '{:.0f}')} MB (run of {sc['machine'].get('date')}, "
             f"load {load} at start)",
             _verdict(cold["process_seconds"] < TARGETS["first_1m_s"] and (rss or 0) < TARGETS["rss_1m_mb"])]]


def block_targets(results: Path) -> str:
    m = _load(results, "machine") or {}
    sizes = m.get("profile_sizes") or {}
    rep, ho, st = _load(results, "reprio"), _load(results, "handout"), _load(results, "stall")
    rows = []
    n80 = sizes.get("stall_n", 80_000)
    r80 = _reprio_row(rep, "postgresql", n80)
    o, b = (r80 or {}).get("ours", {}), (r80 or {}).get("baseline", {})
    if r80 and "retrain_seconds" in o and "retrain_seconds" in b:
        whole = b["retrain_seconds"] / o["retrain_seconds"]
        rows.append([f"Steady-state whole retraining run at {n80:,} (PostgreSQL) ≥ {TARGETS['whole_ratio']:.0f}x "
                     "superintendent's `retrain()`",
                     f"{whole:.1f}x ({b['retrain_seconds']:.2f} s vs {o['retrain_seconds']:.2f} s)",
                     _verdict(whole >= TARGETS["whole_ratio"])])
    else:
        rows.append([f"Steady-state whole retraining run at {n80:,} (PostgreSQL)", "–", _verdict(None)])
    if "seconds" in o:
        ratio = f"; {b['seconds'] / o['seconds']:.0f}x the baseline's" if "seconds" in b else ""
        rows.append([f"The cycle (score + write + switch) at {n80:,} (PostgreSQL) < {TARGETS['cycle_80k_s']} s",
                     f"{o['seconds']:.2f} s (scoring {o['score_seconds']:.2f} s, writing and switching "
                     f"{o['write_seconds']:.2f} s{ratio})", _verdict(o["seconds"] < TARGETS["cycle_80k_s"])])
    cold = o.get("cold") if isinstance(o.get("cold"), dict) else None
    if cold and "seconds" in cold and "retrain_seconds" in b:
        cr = b["retrain_seconds"] / cold["seconds"]
        rows.append([f"Cold `smartlabel orchestrate --once` at {n80:,} ≥ {TARGETS['cold_ratio']:.0f}x the baseline's "
                     "`retrain()`", f"{cr:.1f}x ({cold['seconds']:.1f} s)", _verdict(cr >= TARGETS["cold_ratio"])])
    else:
        rows.append([f"Cold `smartlabel orchestrate --once` at {n80:,} ≥ {TARGETS['cold_ratio']:.0f}x the baseline's "
                     "`retrain()`", "not measured by `make bench` (see \"Speed at scale\")", _verdict(None)])
    big = sizes.get("big", 1_000_000)
    ob = (_reprio_row(rep, "postgresql", big) or {}).get("ours", {}) if big else {}
    if big and "seconds" in ob:
        first = (ob.get("first_run") or {}).get("retrain_seconds")
        rows.append([f"{big:,} posts (PostgreSQL): a new process's first run < {TARGETS['first_1m_s']:.0f} s "
                     "(its feature cache on disk)",
                     f"{_f(first, '{:.1f}')} s (the cold first run on a new pool: `make bench-scale`, below)",
                     _verdict(None if first is None else first < TARGETS["first_1m_s"])])
        rows.append([f"{big:,} posts: steady cycle < {TARGETS['cycle_1m_s']:.0f} s",
                     f"{ob['seconds']:.1f} s (scoring {ob['score_seconds']:.1f} s, writing {ob['write_seconds']:.1f} s)",
                     _verdict(ob["seconds"] < TARGETS["cycle_1m_s"])])
        rss = ob.get("peak_rss_mb")
        rows.append([f"{big:,} posts: orchestrator peak RSS < 2 GB", f"{_f(rss, '{:.0f}')} MB",
                     _verdict(None if rss is None else rss < TARGETS["rss_1m_mb"])])
    elif big:
        rows.append([f"{big:,} posts (PostgreSQL): first run, steady cycle, peak RSS", "–", _verdict(None)])
    rows += _scale_rows(_load(results, "scale"))
    imp = ((_load(results, "import") or {}).get("backends") or {}).get("postgresql") or {}
    rps = imp.get("rows_per_second")
    rows.append([f"Import into PostgreSQL ≥ {TARGETS['import_rows_s']:,.0f} rows/s",
                 f"{rps:,.0f} rows/s ({imp.get('rows', 0):,} rows, `bench/bench_import.py`)" if rps else
                 "import.json not found", _verdict(None if rps is None else rps >= TARGETS["import_rows_s"])])
    w16 = max(sizes.get("handout_workers", [16]))
    h = _handout_row(ho, "postgresql", "ours", w16)
    hb = _handout_row(ho, "postgresql", "baseline", w16)
    if h and "pairs_per_second" in h:
        base = f"; baseline {_rate(hb)}, {hb['double_handouts']} double hand-outs" if hb and "pairs_per_second" in hb else ""
        rows.append([f"Hand-out capacity ≥ {TARGETS['handout_pairs_s']:.0f} pop+submit pairs/s, {w16} labeller "
                     f"processes, {h['n']:,} posts, zero double hand-outs",
                     f"{_rate(h)}, {h['double_handouts']} double hand-outs{base}",
                     _verdict(h["pairs_per_second"] >= TARGETS["handout_pairs_s"] and h["double_handouts"] == 0)])
    else:
        rows.append([f"Hand-out capacity, {w16} labellers", "–", _verdict(None)])
    hw, ht = sizes.get("human_workers", 100), sizes.get("human_think_ms", 3000.0)
    hh = _handout_row(ho, "postgresql", "ours", hw, ht)
    hhb = _handout_row(ho, "postgresql", "baseline", hw, ht)
    if hh and "pop" in hh:
        p95 = hh["pop"]["p95_ms"]
        base = (f"; baseline {hhb['pop']['p95_ms']:.1f} ms, {hhb['double_handouts']} double hand-outs"
                if hhb and "pop" in hhb else "")
        rows.append([f"{hw} labellers at a person's pace (a label every {ht / 1000:.0f} s each): pop p95 < "
                     f"{TARGETS['human_pop_p95_ms']:.0f} ms",
                     f"{p95:.1f} ms (submit p95 {hh['submit']['p95_ms']:.1f} ms, {hh['pops']} pops){base}",
                     _verdict(p95 < TARGETS["human_pop_p95_ms"])])
    else:
        rows.append([f"{hw} labellers at a person's pace: pop p95", "–", _verdict(None)])
    doubles = sum(r.get("double_handouts", 0) for r in (ho or {}).get("rows", []) if r.get("side") == "ours")
    if ho:
        rows.append(["Zero double hand-outs (every hand-out run, ours)", str(doubles), _verdict(doubles == 0)])
    s = next((r for r in (st or {}).get("rows", []) if r.get("side") == "ours" and "during_write" in r), None)
    if s:
        w = s["during_write"]
        sb = next((r for r in (st or {}).get("rows", []) if r.get("side") == "baseline" and "during_write" in r), None)
        base = f"; baseline {_f(sb['during_write'].get('p95_ms'), '{:.0f}')} ms" if sb else ""
        rows.append([f"Labeller stall while {s['n']:,} priorities are written: pop p95 < {TARGETS['stall_p95_ms']:.0f} ms",
                     f"{_f(w.get('p95_ms'), '{:.0f}')} ms ({w['pops']} pops; max {_f(w.get('max_ms'), '{:.0f}')} ms; "
                     f"{_f(s['quiet'].get('p95_ms'), '{:.0f}')} ms p95 with no run going){base}",
                     _verdict(None if w.get("p95_ms") is None else w["p95_ms"] < TARGETS["stall_p95_ms"])])
    else:
        rows.append(["Labeller stall while priorities are written", "–", _verdict(None)])
    al = (_load(results, "al") or {}).get("target")
    if isinstance(al, dict) and isinstance(al.get("rows"), list):  # issue 15's targets (bench_al.py)
        rows += _al_target_rows(al)
    elif isinstance(al, dict) and isinstance(al.get("per_model"), dict):
        for model, per in sorted(al["per_model"].items()):
            # either one verdict per model, or one per strategy ({"entropy": {...}, "margin": {...}})
            per = per if all(isinstance(v, dict) for v in per.values()) else {per.get("strategy") or "": per}
            for strategy, t in sorted(per.items()):
                name = f"{model}, {strategy}" if strategy else model
                rows.append([f"Labels to 95% of full-data accuracy ≤ half of random's, R8, {name}",
                             f"{t.get('labels')} labels vs random {t.get('random_labels')} "
                             f"(ratio {t.get('ratio_text', t.get('ratio'))})", _verdict(t.get("met"))])
    else:
        rows.append(["Labels to 95% of full-data accuracy ≤ half of random's, R8", "al.json not found",
                     _verdict(None)])
    kmb, kpath = _find_kernel_mb(_load(results, "page"))
    rows.append([f"Labeller kernel < {TARGETS['kernel_mb']:.0f} MB",
                 f"{kmb:.0f} MB (`{kpath}` in page.json)" if kmb else "bench/bench_page.py results not found",
                 _verdict(None if kmb is None else kmb < TARGETS["kernel_mb"])])
    return _table(["Target (issues 16 and 15; the last rows: earlier issues)", "Where we stand", "Verdict"], rows)


def block_reprio(rep: dict | None) -> str:
    if not rep:
        return "_Not run._"
    rows = []
    for row in rep["rows"]:
        o, b = row.get("ours", {}), row.get("baseline")

        def cell(r, key="seconds"):
            if r is None:
                return "–"
            return _f(r.get(key)) if key in r else f"failed: {r.get('error', '?')}"

        first = o.get("first_run") or {}
        cold = o.get("cold") if isinstance(o.get("cold"), dict) else None
        rows.append([row["backend"], f"{row['n']:,}",
                     cell(o), cell(o, "score_seconds"), cell(o, "write_seconds"),
                     cell(b), cell(b, "read_seconds"), cell(b, "score_seconds"), cell(b, "write_seconds"),
                     _ratio((b or {}).get("seconds"), o.get("seconds")),
                     _ratio((b or {}).get("write_seconds"), o.get("write_seconds")),
                     cell(o, "retrain_seconds"), cell(b, "retrain_seconds"),
                     _ratio((b or {}).get("retrain_seconds"), o.get("retrain_seconds")),
                     _f(first.get("seconds")),
                     cell(cold) if cold else "–",
                     _ratio((b or {}).get("retrain_seconds"), (cold or {}).get("seconds"))])
    head = ["Database", "Posts", "**Ours: cycle s**", "scoring s", "writing s", "**Baseline: cycle s**",
            "reading s", "scoring s", "writing s", "**Ratio (cycle)**", "Ratio (writing)",
            "Ours: whole run s", "Baseline: whole retrain s", "Ratio (whole)", "Ours: cycle, 1st run of a process s",
            "Ours: cold `orchestrate --once` s", "Ratio (cold vs baseline retrain)"]
    out = _table(head, rows)
    if any(isinstance((row.get("ours") or {}).get("cold"), dict) for row in rep["rows"]):
        out += ("\n\nThe cold `orchestrate --once` is a new process on a copy of the pool with an empty MODELS_DIR: "
                "start-up, the first TF-IDF fit on every post, cross-validation, fit, scoring, writing, as an "
                "operator's first run on a new pool (the baseline's retrain() keeps nothing between runs either).")
    f = rep.get("features") or {}
    if "fit_transform_seconds" in f:
        out += (f"\n\nOnce per pool (not in the cycle): the orchestrator's first run fits its TF-IDF on every post; "
                f"on {f['posts']:,} posts that took **{f['fit_transform_seconds']:.1f} s** "
                f"({f['vocabulary']:,} terms kept, peak {f['peak_rss_mb']:.0f} MB).")
    return out


def block_handout(ho: dict | None) -> str:
    if not ho:
        return "_Not run._"
    rows = []
    for r in ho["rows"]:
        if "error" in r:
            rows.append([r["backend"], r["side"], r["workers"], _f(r["think_ms"], "{:.0f}"), f"failed: {r['error']}"]
                        + ["–"] * 9)
            continue
        rows.append([
            r["backend"], r["side"], r["workers"], _f(r["think_ms"], "{:.0f}"), r["pops"],
            " / ".join(_f(r["pop"][k], "{:.1f}") for k in ("p50_ms", "p95_ms", "p99_ms")),
            " / ".join(_f(r["submit"][k], "{:.1f}") for k in ("p50_ms", "p95_ms", "p99_ms")),
            _f(r["pop_submit"]["p95_ms"], "{:.1f}"), _f(r["pairs_per_second"], "{:.0f}"),
            _f((r.get("cpu_ms_per_pair") or {}).get("total"), "{:.2f}"),
            (f"**{r['double_handouts']}**" if r["double_handouts"] else "0")
            + (f" (+{r['second_opinions']} audit/review)" if r.get("second_opinions") else ""),
            r.get("labels_overwritten", r.get("db_items_labelled_twice", "–")),
            r["errors"],
        ])
    head = ["Database", "Queue", "Labellers", "Pause ms", "Pops", "Pop p50/p95/p99 ms", "Submit p50/p95/p99 ms",
            "Pop+submit p95 ms", "Pairs/s", "CPU ms a pair", "Double hand-outs", "Labels lost/doubled", "Errors"]
    return _table(head, rows)


def block_stall(st: dict | None) -> str:
    if not st:
        return "_Not run._"
    rows = []
    for r in st["rows"]:
        if "error" in r:
            rows.append([r["side"], f"{r['n']:,}", f"failed: {r['error']}"] + ["–"] * 5)
            continue
        c = r["cycle"]
        rows.append([r["side"], f"{r['n']:,}", f"{_f(r['quiet']['p99_ms'], '{:.0f}')} / {_f(r['quiet']['max_ms'], '{:.0f}')}",
                     f"{_f(r['during_score']['max_ms'], '{:.0f}')} ({r['during_score']['pops']} pops)",
                     f"{_f(r['during_write'].get('p95_ms'), '{:.0f}')} / {_f(r['during_write']['max_ms'], '{:.0f}')} "
                     f"({r['during_write']['pops']} pops)",
                     _f(c["score_seconds"] + c["read_seconds"]), _f(c["write_seconds"]),
                     r["labellers"]["double_handouts"]])
    head = ["Queue", "Posts", "No run going: pop p99 / max ms", "While training and scoring: max pop ms",
            "While writing the priorities: pop p95 / max ms", "Reading+scoring s", "Writing s", "Double hand-outs"]
    return _table(head, rows)


def block_memory(mem: dict | None, page: dict | None) -> str:
    rows = []
    for r in (mem or {}).get("rows", []):
        who = "smartlabel" if r["side"] == "ours" else "superintendent 0.6.0"
        rows.append([f"{who}: {r.get('what', '')}, {r['n']:,} posts" if r.get("n") else f"{who}: {r.get('what')}",
                     _f(r.get("peak_rss_mb"), "{:.0f}"), _f(r.get("rss_end_mb"), "{:.0f}"),
                     _f(r.get("rss_start_mb"), "{:.0f}"), r.get("error", "")])
    kmb, kpath = _find_kernel_mb(page)
    rows.append(["Labeller's Voila kernel (bench/bench_page.py)", "–", _f(kmb, "{:.0f}"), "–",
                 f"`{kpath}` in page.json" if kpath else "page.json not found"])
    return _table(["Process", "Peak RSS MB", "RSS at the end MB", "RSS after imports MB", "Note"], rows)


def block_external(results: Path, name: str, md_dir: Path) -> str:
    """Another engineer's benchmark: its `markdown` if it gives one, else its figures as they are."""
    run = _load(results, f"{name}-run") or {}
    data = _load(results, name)
    parts = []
    when = (data or {}).get("date") or (data or {}).get("when") if isinstance(data, dict) else None
    if run.get("exit") is not None:
        parts.append(f"_`{run.get('script')}` exit {run.get('exit')} in {_f(run.get('seconds'), '{:.0f}')} s "
                     "in this run._")
    elif isinstance(data, dict):  # not run by this `make bench`: the results file its script left
        parts.append(f"_From `bench/results/{name}.json`, written by `bench/bench_{name}.py` on its own "
                     f"({when or 'date not recorded'}), not by this run._")
    elif run.get("skipped"):
        parts.append(f"_{run['skipped']}._")
    if isinstance(data, dict) and isinstance(data.get("markdown"), str):
        parts.append(data["markdown"].strip())
    elif isinstance(data, dict):
        flat = []
        stack = [("", data)]
        while stack and len(flat) < 60:
            path, v = stack.pop(0)
            if isinstance(v, dict):
                stack.extend((f"{path}.{k}" if path else str(k), x) for k, x in v.items())
            elif isinstance(v, (int, float, str, bool)) or v is None:
                flat.append([f"`{path}`", _f(v, "{:.4g}") if isinstance(v, float) else str(v)])
        parts.append(_table(["Figure", "Value"], flat))
    pngs = [ROOT / f for f in run.get("files", []) if f.endswith(".png")]
    if not pngs and isinstance(data, dict):
        pngs = sorted({*results.glob(f"{name}-*.png"), *results.glob(f"{name}.png")})
    for f in pngs:
        parts.append(f"![{Path(f).stem}]({os.path.relpath(f, md_dir)})")
    return "\n\n".join(parts) if parts else "_Not run._"


# --- the file -------------------------------------------------------------------------------

SKELETON = """# Benchmarks

smartlabel against superintendent 0.6.0 (the queue the article used), measured side by side in
the same run, on the same PostgreSQL server and on SQLite files. Regenerate with `make bench`
(`python bench/run.py`; `--quick` for reduced sizes). The tables between the GENERATED markers
are rewritten by every run; the text around them is not.

## Machine and run

<!-- BEGIN GENERATED: machine -->
<!-- END GENERATED: machine -->

## Targets

<!-- BEGIN GENERATED: targets -->
<!-- END GENERATED: targets -->

## 1. Reprioritisation

<!-- BEGIN GENERATED: reprio -->
<!-- END GENERATED: reprio -->

## 2. Hand-out under load

<!-- BEGIN GENERATED: handout -->
<!-- END GENERATED: handout -->

## 3. Labeller stall during a reprioritisation

<!-- BEGIN GENERATED: stall -->
<!-- END GENERATED: stall -->

## 4. Memory

<!-- BEGIN GENERATED: memory -->
<!-- END GENERATED: memory -->

## 5. Active-learning efficiency

<!-- BEGIN GENERATED: al -->
<!-- END GENERATED: al -->

## Labelling page

<!-- BEGIN GENERATED: page -->
<!-- END GENERATED: page -->
"""


def render_blocks(results: Path, md_dir: Path) -> dict[str, str]:
    page = _load(results, "page")
    return {
        "machine": block_machine(_load(results, "machine")),
        "targets": block_targets(results),
        "reprio": block_reprio(_load(results, "reprio")),
        "handout": block_handout(_load(results, "handout")),
        "stall": block_stall(_load(results, "stall")),
        "memory": block_memory(_load(results, "memory"), page),
        "al": block_external(results, "al", md_dir),
        "page": block_external(results, "page", md_dir),
    }


def update_markdown(md: Path, results: Path) -> Path:
    md = Path(md)
    text = md.read_text() if md.exists() else SKELETON
    for name, body in render_blocks(Path(results), md.parent.resolve()).items():
        pat = re.compile(rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(<!-- END GENERATED: {name} -->)", re.S)
        if pat.search(text):
            text = pat.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text)
        else:
            text += f"\n<!-- BEGIN GENERATED: {name} -->\n{body.strip()}\n<!-- END GENERATED: {name} -->\n"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)
    return md


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--md", type=Path, default=ROOT / "BENCHMARKS.md")
    a = ap.parse_args(argv)
    print(update_markdown(a.md, a.results))


if __name__ == "__main__":
    main()
