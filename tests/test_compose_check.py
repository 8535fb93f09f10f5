"""scripts/compose_check.py (`make compose-check`): its pure parts, with no Docker at all.

The script itself needs a Docker engine and minutes, so `make test` never runs it; these tests
pin down what it decides from what it reads: which engine, the personal link, the published
ports, a container's health, the importer's error line, the model file names, and the files
it feeds the real commands (the labelled posts and the bad row go through the real importer
here)."""

from __future__ import annotations

import csv
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compose_check", ROOT / "scripts" / "compose_check.py")
cc = importlib.util.module_from_spec(spec)
sys.modules["compose_check"] = cc  # its dataclasses look their module up
spec.loader.exec_module(cc)


def test_engine_choice():
    assert cc.choose_engine("auto", host_answers=True) == "host"
    assert cc.choose_engine("auto", host_answers=False) == "private"
    assert cc.choose_engine("private", host_answers=True) == "private"
    assert cc.choose_engine("host", host_answers=False) == "host"  # then docker itself says why it fails
    with pytest.raises(ValueError):
        cc.choose_engine("podman", host_answers=True)


def test_engine_script_is_found_beside_the_checkout_or_a_parent(tmp_path):
    shared = tmp_path / "shared" / "compose-check"
    shared.mkdir(parents=True)
    (shared / "engine.sh").write_text("#!/bin/sh\n")
    main = tmp_path / "main"
    worktree = tmp_path / "wt" / "branch"
    main.mkdir()
    worktree.mkdir(parents=True)
    assert cc.find_engine_script(main) == shared / "engine.sh"
    assert cc.find_engine_script(worktree) == shared / "engine.sh"
    assert cc.find_engine_script(worktree, "/opt/engine.sh") == Path("/opt/engine.sh")


def test_engine_env_exports_are_parsed():
    line = "export DOCKER_HOST=unix:///var/tmp/e/run/docker.sock DOCKER_CONFIG=/var/tmp/e/dockercfg\n"
    assert cc.parse_env_exports(line) == {"DOCKER_HOST": "unix:///var/tmp/e/run/docker.sock",
                                          "DOCKER_CONFIG": "/var/tmp/e/dockercfg"}


def test_the_personal_link_is_read_from_what_labellers_add_prints():
    out = ("Added Compose Check. Their personal link (send it to Compose Check only; it is shown this once):\n"
           "  https://localhost/?token=T0k3n&key=k3y-ABC_1\n")
    params = cc.personal_link_params(out)
    assert params == {"token": "T0k3n", "key": "k3y-ABC_1"}
    assert cc.page_address(params) == "https://localhost/?token=T0k3n&key=k3y-ABC_1"
    with pytest.raises(ValueError, match="no personal link"):
        cc.personal_link_params("error: a labeller named Compose Check exists already")


INSPECT_PROXY = {"NetworkSettings": {"Ports": {
    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}, {"HostIp": "::", "HostPort": "80"}],
    "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "443"}],
    "8867/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8867"}],
    "2019/tcp": None}}}


def test_published_ports_match_the_design_or_say_what_differs():
    good = {"proxy": cc.published(INSPECT_PROXY),
            "adminer": cc.published({"NetworkSettings": {"Ports": {"8080/tcp": [
                {"HostIp": "127.0.0.1", "HostPort": "8080"}]}}}),
            "db": cc.published({"NetworkSettings": {"Ports": {"5432/tcp": None}}}),
            "voila": {}, "dashboard": {}, "orchestrator": {}}
    assert good["proxy"] == {"80/tcp": ["0.0.0.0:80"], "443/tcp": ["0.0.0.0:443"], "8867/tcp": ["127.0.0.1:8867"]}
    assert cc.ports_problems(good) == []
    leaky = dict(good, db={"5432/tcp": ["0.0.0.0:5432"]},
                 adminer={"8080/tcp": ["0.0.0.0:8080"]}, proxy={"80/tcp": ["0.0.0.0:80"]})
    assert cc.ports_problems(leaky) == [
        "adminer 8080/tcp on 0.0.0.0:8080, expected 127.0.0.1:8080",
        "db publishes 5432/tcp on 0.0.0.0:5432",
        "proxy does not publish 443/tcp",
        "proxy does not publish 8867/tcp",
    ]


def test_health_of_a_container():
    assert cc.health_of({"State": {"Status": "running", "Health": {"Status": "healthy"}}}) == "healthy"
    assert cc.health_of({"State": {"Status": "running", "Health": {"Status": "starting"}}}) == "starting"
    assert cc.health_of({"State": {"Status": "running"}}) == "running"  # no healthcheck
    assert cc.health_of({}) == "?"


def test_model_file_names():
    names = ["2026-12-02T17-05-00Z 0.8123.pkl", "2026-12-02T17-06-00Z nan.pkl", ".gitkeep",
             "2026-12-02T17-07-00Z 0.9.pkl.tmp", "model.pkl"]
    assert cc.model_files(names) == ["2026-12-02T17-05-00Z 0.8123.pkl", "2026-12-02T17-06-00Z nan.pkl"]


def test_summary_line():
    assert cc.summary([("a", True, ""), ("b", False, "why"), ("c", True, "")]) == "compose: 2/3 checks passed"
    assert cc.summary([]) == "compose: 0/0 checks passed"


def _import(path: Path, db: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "DATABASE_URL": f"sqlite:///{db}", "LABELS": "reuters",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "smartlabel", "import", "--no-progress", str(path)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_labelled_posts_it_imports_are_read_by_the_real_importer(tmp_path):
    from smartlabel import LABEL_PRESETS

    labels = LABEL_PRESETS["reuters"]
    text = cc.labelled_posts_csv(labels, 40, prefix="compose-check")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 40 and {r["label"] for r in rows} == set(labels[:3])
    assert cc.labelled_posts_csv(labels, 40, prefix="compose-check") == text  # the same every run
    again = cc.labelled_posts_csv(labels, 15, prefix="compose-check-kill0")
    (tmp_path / "a.csv").write_text(text)
    (tmp_path / "b.csv").write_text(again)
    first = _import(tmp_path / "a.csv", tmp_path / "x.db")
    assert first.returncode == 0, first.stderr
    assert "labels imported:  40" in first.stdout.replace(",", "")
    second = _import(tmp_path / "b.csv", tmp_path / "x.db")  # new posts (no duplicate content), 15 labels
    assert "posts added:      15" in second.stdout and "labels imported:  15" in second.stdout


def test_the_bad_row_fails_the_real_importer_with_the_line_and_column_it_looks_for(tmp_path):
    aldata = (ROOT / "aldata.csv").read_text(encoding="utf-8")
    columns = next(csv.reader(io.StringIO(aldata)))
    bad = tmp_path / "aldata.csv"
    bad.write_text(aldata + cc.bad_row(columns), encoding="utf-8")
    result = _import(bad, tmp_path / "y.db")
    assert result.returncode == 1
    where = cc.import_error(result.stderr)
    assert where == {"file": str(bad), "line": aldata.count("\n") + 1, "column": columns.index("selftext") + 1}
    assert cc.import_error("posts added: 0") is None
