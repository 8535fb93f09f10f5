"""Smoke test of bench/bench_diversity.py at the smallest size (the real run is not a test)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_diversity_runs_and_writes_results(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_diversity", ROOT / "bench" / "bench_diversity.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "diversity.json"
    bench.main(["--rounds", "1", "--seeds", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert set(data["variants"]) == {"entropy", "entropy+diversity", "random"}
    assert data["pool"]["posts"] == 1893 and data["pool"]["near_duplicate_pairs"] > 0
    for v in data["variants"].values():
        assert v["batches"] == 1
        assert [p["labels"] for p in v["mean_curve"]] == [32, 48]
        assert 0 < v["mean_curve"][-1]["heldout_accuracy"] <= 1
