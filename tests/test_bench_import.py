"""Smoke test of bench/bench_import.py at a tiny size (the real run is 100k rows, not a test)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_import_runs_and_writes_results(pg_admin_url, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_import", ROOT / "bench" / "bench_import.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "import.json"
    bench.main(["--rows", "300", "--batch-size", "64", "--postgres-url", pg_admin_url, "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["rows"] == 300
    for backend in ("sqlite", "postgresql"):
        r = data["backends"][backend]
        assert (r["rows"], r["added"], r["reimport_added"]) == (300, 300, 0)
        assert r["labels_added"] > 0 and r["rows_per_second"] > 0
