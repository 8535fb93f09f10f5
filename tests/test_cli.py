"""The `smartlabel` command: every subcommand documents itself; errors are one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from smartlabel.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _commands(group, prefix=()):
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        yield prefix + (name,), cmd
        yield from _commands(cmd, prefix + (name,))


COMMANDS = [path for path, _ in _commands(get_command(app))]


def test_the_service_commands_exist():
    names = {" ".join(p) for p in COMMANDS}
    assert {"import", "orchestrate", "serve", "run", "status", "export", "autolabel", "simulate",
            "db", "db upgrade", "db roles", "labellers add", "labellers list", "labellers rotate",
            "labellers disable", "labellers enable"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_every_subcommand_has_help(path):
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="smartlabel")
    assert result.exit_code == 0, result.output
    assert "Usage: smartlabel " + " ".join(path) in " ".join(result.output.split())
    cmd = get_command(app)
    for part in path:
        cmd = cmd.commands[part]
    assert (cmd.help or "").strip(), f"`smartlabel {' '.join(path)}` has no description"


def test_bad_database_url_is_one_clear_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DATABASE_URL": "mysql://nobody@nowhere/db"}
    result = subprocess.run([sys.executable, "-m", "smartlabel", "db", "upgrade"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: DATABASE_URL uses 'mysql'")
    assert "Traceback" not in result.stderr


def test_unreachable_database_says_what_to_check(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
           "DATABASE_URL": "postgresql+psycopg2://u:p@127.0.0.1:1/db"}
    result = subprocess.run([sys.executable, "-m", "smartlabel", "db", "upgrade"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "cannot reach the database at postgresql+psycopg2://u:***@127.0.0.1:1/db" in result.stderr
    assert "Check DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_readme_lists_every_command():
    """Every command that does something (groups such as `db` left out) is in the README's table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("Commands at a glance", 1)[1].split("\n\n", 2)[1]
    listed = set()
    for line in table.splitlines():
        if line.startswith("| `smartlabel "):
            words = line.split("`smartlabel ", 1)[1].split("`")[0].split()
            listed.add(" ".join(w for w in words if w.islower() and not w.startswith(("-", "["))))
    groups = {p[:-1] for p in COMMANDS if len(p) > 1}
    commands = {" ".join(p) for p in COMMANDS if p not in groups}
    assert listed == commands
