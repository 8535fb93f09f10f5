"""Smoke test of bench/bench_scale.py at a tiny size (the real run is 1M posts, not a test):
the import, the cold `orchestrate --once`, the restart and steady runs of a long-running
orchestrator all happen for real (subprocesses on PostgreSQL) and are recorded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_scale_runs_every_step_and_writes_results(pg_admin_url, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "bench_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "scale.json"
    data = bench.main(["--posts", "2500", "--labels", "120", "--more-labels", "6", "--postgres-url", pg_admin_url,
                       "--out", str(out)])
    assert "error" not in data, data.get("error")
    assert json.loads(out.read_text())["posts"] == 2500
    assert data["import"]["exit"] == 0 and data["import"]["rows_per_second"] > 0
    assert "posts added:      2,500" in data["import"]["summary"]
    assert data["cold"]["exit"] == 0 and data["cold"]["peak_rss_mb"] > 0
    assert any("features: vectoriser fitted on 2500 posts" in p["after"] for p in data["cold"]["phases"]["lines"])
    assert (data["restart"]["run_id"], data["steady"]["run_id"]) == (2, 3)
    assert any("features: 2500 cached" in p["after"] for p in data["steady"]["phases"]["lines"])
    assert set(data["met"]) == set(data["targets"])
    for key in ("load_average_at_start", "load_average_at_end", "cores", "postgresql"):
        assert data["machine"][key]
