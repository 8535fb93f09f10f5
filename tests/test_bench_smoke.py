"""The benchmarks run at tiny size, so they cannot rot (no timing is asserted: bench/ measures).

`bench/run.py --profile smoke` runs every speed benchmark, ours and superintendent 0.6.0's,
on the session's PostgreSQL and on SQLite; the test then checks what each side stored and
counted. The baseline needs its own venv (superintendent's queue breaks with our sqlmodel):
the test uses bench/.venv-baseline when `make bench` has built it, else a light overlay venv
(our packages plus superintendent, sqlmodel 0.0.44 and sqlalchemy 2.0: a few seconds with
PyPI reachable) in a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

N = 500  # the smoke profile's pool (bench/run.py PROFILES["smoke"])
N_TRAIN = 60  # posts that come labelled in the smoke profile


@pytest.fixture(scope="module")
def baseline_venv(tmp_path_factory):
    import run

    full = run.BASELINE_VENV
    marker = full / run.MARKER
    if marker.exists() and json.loads(marker.read_text()).get("packages") == run.baseline_spec():
        return full, "full"
    where = tmp_path_factory.mktemp("venv") / "baseline"
    try:
        run.ensure_baseline_venv(where, kind="overlay")
    except Exception as exc:  # no PyPI and no full venv: say so rather than pass silently
        pytest.skip(f"cannot build the baseline venv here ({str(exc).splitlines()[0]}); "
                    "run `python bench/run.py --quick` once to build bench/.venv-baseline")
    return where, "overlay"


@pytest.fixture(scope="module")
def smoke(baseline_venv, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    venv, kind = baseline_venv
    cmd = [sys.executable, str(BENCH / "run.py"), "--profile", "smoke", "--only", "reprio,handout,stall,memory",
           "--out", str(out), "--md", str(out / "BENCHMARKS.md"),
           "--baseline-venv", str(venv), "--baseline-kind", kind, "--timeout", "240"]
    # the driver starts its own pgserver (as `make bench` does), in a folder of its own;
    # with TEST_DATABASE_URL it uses that server instead
    if os.environ.get("TEST_DATABASE_URL"):
        cmd += ["--postgres-url", os.environ["TEST_DATABASE_URL"]]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out, p.stdout


def _load(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


@pytest.mark.slow
def test_reprioritisation_writes_every_open_post_on_both_sides(smoke):
    out, log = smoke
    rows = _load(out, "reprio")["rows"]
    assert {(r["backend"], r["n"]) for r in rows} == {("sqlite", N), ("postgresql", N)}
    for r in rows:
        ours = r["ours"]
        assert "error" not in ours, ours
        open_posts = r["n"] - N_TRAIN
        # one prediction per open post, in a run the queue now follows
        assert ours["n_scored"] == ours["stored_predictions"] == ours["open_posts"] == open_posts
        assert ours["current_run_id"] == ours["run_id"]
        assert ours["n_labels"] == N_TRAIN  # the orchestrator trained on the seeded labels
        assert ours["retrain_seconds"] >= ours["seconds"] >= ours["write_seconds"] > 0
        if r["backend"] == "postgresql":  # a cold `orchestrate --once` on a copy of the pool
            cold = ours["cold"]
            assert "error" not in cold, cold
            assert cold["status"] == "ok" and cold["current_run_id"] == cold["run_id"]
            assert cold["n_scored"] == open_posts and cold["n_labels"] == N_TRAIN
            assert cold["seconds"] > 0 and cold["peak_rss_mb"] > 0
            assert any("features: vectoriser fitted" in p["after"] for p in cold["phases"])  # no cache: a fit
        else:
            assert "cold" not in ours
        base = r["baseline"]
        assert "error" not in base, base
        assert base["n_scored"] == base["stored_priorities"] == base["open_posts"] == open_posts
        assert r["baseline_seed"]["versions"]["superintendent"] == "0.6.0"
        assert r["baseline_seed"]["versions"]["sqlmodel"] == "0.0.44"
    assert "reprio postgresql" in log and "cold  postgresql" in log  # progress is shown as it runs


@pytest.mark.slow
def test_handout_counts_pops_labels_and_double_handouts(smoke):
    out, _log = smoke
    rows = _load(out, "handout")["rows"]
    assert {r["side"] for r in rows} == {"ours", "baseline"}
    for r in rows:
        assert "error" not in r, r
        assert r["errors"] == 0, r["error_samples"]
        assert r["pops"] == r["submits"] == r["workers"] * (r["ops"] // r["workers"])
        assert r["distinct_items"] + r["wasted_pops"] + r["second_opinions"] == r["pops"]
        assert r["pop"]["p50_ms"] <= r["pop"]["p95_ms"] <= r["pop"]["p99_ms"] <= r["pop"]["max_ms"]
        if r["side"] == "ours":
            assert r["double_handouts"] == r["wasted_pops"] == r["db_items_labelled_twice"] == 0
            assert r["db_labels_by_workers"] == r["submits"]
            assert r["db_second_opinions"] == r["second_opinions"]  # audit/review, as the queue said
        else:  # its submit overwrites: labels stored = distinct posts labelled
            assert r["second_opinions"] == 0
            assert r["db_labels_by_workers"] == r["distinct_items"]
            assert r["labels_overwritten"] == r["wasted_pops"]


@pytest.mark.slow
def test_stall_and_memory_are_measured_for_both(smoke):
    out, _log = smoke
    stall = {r["side"]: r for r in _load(out, "stall")["rows"]}
    assert set(stall) == {"ours", "baseline"}
    for side, r in stall.items():
        assert "error" not in r, r
        # every post still open when the cycle read them (the labellers took some first)
        assert N - N_TRAIN - r["labellers"]["pops"] <= r["cycle"]["n_scored"] < N - N_TRAIN
        assert r["labellers"]["pops"] > 0 and r["labellers"]["errors"] == 0
        assert r["quiet"]["pops"] > 0
    assert stall["ours"]["labellers"]["double_handouts"] == 0
    rows = _load(out, "memory")["rows"]
    mem = {r["side"]: r for r in rows if "first run" not in r["what"]}
    assert set(mem) == {"ours", "baseline"}
    assert "smartlabel.orchestrator" in mem["ours"]["what"]
    assert all(r["peak_rss_mb"] >= r["rss_after_fit_mb"] > r["rss_start_mb"] > 0 for r in mem.values())
    first = [r for r in rows if "first run" in r["what"]]
    assert len(first) == 1 and first[0]["peak_rss_mb"] > 0 and first[0]["seconds"] > 0


@pytest.mark.slow
def test_markdown_tables_are_regenerated_and_prose_kept(smoke):
    out, _log = smoke
    from report import update_markdown

    md = out / "BENCHMARKS.md"
    text = md.read_text()
    for block in ("machine", "targets", "reprio", "handout", "stall", "memory"):
        assert f"<!-- BEGIN GENERATED: {block} -->" in text
    assert "| postgresql | 500 |" in text and "| sqlite | 500 |" in text
    machine = _load(out, "machine")
    assert machine["cores"] >= 1 and machine["postgresql"] and machine["sqlite"]
    md.write_text(text.replace("## Targets", "## Targets\n\nOur own words stay.", 1))
    update_markdown(md, out)
    again = md.read_text()
    assert "Our own words stay." in again
    assert again.count("<!-- BEGIN GENERATED: reprio -->") == 1


def test_other_benchmarks_results_are_collected(tmp_path):
    """bench_al.py / bench_page.py (other engineers') are run and their JSON and plots shown."""
    import run
    from report import update_markdown

    script = tmp_path / "bench_page.py"
    script.write_text(
        "import argparse, json, os, pathlib, sys\n"
        "ap = argparse.ArgumentParser(); ap.add_argument('--quick', action='store_true'); ap.add_argument('--out')\n"
        "a = ap.parse_args()\n"
        "out = pathlib.Path(a.out)\n"
        "out.write_text(json.dumps({'quick': a.quick, 'env': os.environ['BENCH_RESULTS_DIR'],\n"
        "    'kernel_uss_mb': {'after_clicks': 70.0}, 'kernel_rss_mb': {'after_load': 97.0, 'after_clicks': 142.4}}))\n"
        "(out.parent / 'page.png').write_bytes(b'png')\n"
    )
    res = run.run_external("page", script, profile="quick", out_dir=tmp_path, timeout=60)
    assert res["exit"] == 0 and res["args"][0] == "--quick"
    data = json.loads((tmp_path / "page.json").read_text())
    assert data["quick"] is True and data["env"] == str(tmp_path)
    (tmp_path / "page-run.json").write_text(json.dumps(res))
    md = update_markdown(tmp_path / "B.md", tmp_path)
    text = md.read_text()
    assert "142 MB (`kernel_rss_mb/after_clicks` in page.json)" in text  # the kernel target line
    assert "![page](page.png)" in text
    missing = run.run_external("al", tmp_path / "bench_al.py", profile="quick", out_dir=tmp_path, timeout=60)
    assert "not present" in missing["skipped"]
    # results a script wrote on its own (not run by this make bench) are shown, said so, with plots
    (tmp_path / "al.json").write_text(json.dumps({"date": "2026-01-02", "markdown": "| R8 | 0.17 |",
                                                 "target": {"per_model": {"lr": {"met": True, "ratio": 0.17}}}}))
    (tmp_path / "al-r8-lr.png").write_bytes(b"png")
    text = update_markdown(tmp_path / "B.md", tmp_path).read_text()
    assert "| R8 | 0.17 |" in text and "not by this run" in text and "![al-r8-lr](al-r8-lr.png)" in text
    assert "R8, lr | " in text  # the target line


def test_options_are_matched_exactly_not_by_prefix(tmp_path):
    """A script with --out-dir but no --out gets --out-dir (argparse would take `--out` for it
    and make a folder named al.json: the crash `make bench-quick` had on a fresh clone)."""
    import run

    script = tmp_path / "bench_al.py"
    script.write_text(
        "import argparse, json, pathlib\n"
        "ap = argparse.ArgumentParser(); ap.add_argument('--smoke', action='store_true')\n"
        "ap.add_argument('--quick', action='store_true'); ap.add_argument('--out-dir')\n"
        "a = ap.parse_args()\n"
        "pathlib.Path(a.out_dir, 'al.json').write_text(json.dumps({'smoke': a.smoke, 'quick': a.quick}))\n"
    )
    for profile, smoke, quick in (("smoke", True, False), ("quick", False, True), ("full", False, False)):
        out = tmp_path / profile
        out.mkdir()
        res = run.run_external("al", script, profile=profile, out_dir=out, timeout=60)
        assert res["exit"] == 0 and "--out" not in res["args"] and "--out-dir" in res["args"]
        assert (out / "al.json").is_file()
        assert json.loads((out / "al.json").read_text()) == {"smoke": smoke, "quick": quick}


@pytest.mark.slow
def test_al_benchmark_and_report_on_a_fresh_clone_layout(tmp_path):
    """`bench/run.py` with no --out/--md, in a copy of the project with no bench/results folder
    (as a fresh clone has): the same driver -> bench_al.py -> report.py path as `make bench-quick`,
    at the smoke profile's size (the bundled aldata.csv, so no download)."""
    import shutil

    repo = tmp_path / "clone"
    for part in ("src", "scripts", "bench"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns(
            "results", ".venv-baseline", "__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "aldata.csv", repo / "aldata.csv")
    shutil.copy(ROOT / "BENCHMARKS.md", repo / "BENCHMARKS.md")
    assert not (repo / "bench" / "results").exists()
    p = subprocess.run([sys.executable, str(repo / "bench" / "run.py"), "--profile", "smoke", "--only", "al"],
                       cwd=repo, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(repo / "src")))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = repo / "bench" / "results" / "smoke"
    assert (out / "al.json").is_file(), sorted(str(f.relative_to(repo)) for f in out.rglob("*"))
    al = json.loads((out / "al.json").read_text())
    (job,) = al["jobs"]
    assert job["name"] == "aldata-lr" and "error" not in job
    assert {s for s in job["curves"]} == {"entropy", "margin", "random"}
    assert (repo / job["png"]).is_file()
    run_record = json.loads((out / "al-run.json").read_text())
    assert run_record["exit"] == 0 and run_record["args"][0] == "--smoke"
    md = (out / "BENCHMARKS.md").read_text()
    assert "demo aldata.csv" in md and "![al-aldata-lr](al-aldata-lr.png)" in md
    # the project's own BENCHMARKS.md is left alone by a smoke run
    assert (repo / "BENCHMARKS.md").read_text() == (ROOT / "BENCHMARKS.md").read_text()
