"""The code keeps one place for each job (docs/architecture.md): checked on the source itself.

- SQL is built only in `store/`, `queue.py` (the hand-out), `migrations/` and `db.py`
  (the schema's declarations and the connection probe);
- a migration revision imports nothing from smartlabel, so it never changes when the
  code does (each one freezes the SQL it runs, views included);
- no function or method is longer than 80 lines outside `migrations/`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "smartlabel"
SQL_HOMES = ("store/", "queue.py", "migrations/", "db.py")
SQL_BUILDERS = {"text", "select", "insert", "update", "delete", "bindparam", "exec_driver_sql", "copy_expert"}
MAX_LINES = 80


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _sql_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"imports {a.name} from {node.module}" for a in node.names if a.name in SQL_BUILDERS]
        elif isinstance(node, ast.Attribute) and node.attr in ("exec_driver_sql", "copy_expert"):
            found.append(f"calls .{node.attr}() at line {node.lineno}")
    return found


def test_sql_lives_in_the_store_the_queue_and_the_migrations():
    offenders = {rel: uses for rel, tree in _modules()
                 if not rel.startswith(SQL_HOMES) and (uses := _sql_uses(tree))}
    assert offenders == {}, "move these statements into smartlabel.store (see its docstring)"


def test_migration_revisions_import_nothing_from_smartlabel():
    offenders = []
    for rel, tree in _modules():
        if not rel.startswith("migrations/versions/"):
            continue
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{rel}: {n}" for n in names if n.startswith("smartlabel")]
    assert offenders == [], "a revision must freeze the SQL it runs instead of importing it"


def test_no_function_is_longer_than_80_lines():
    long = []
    for rel, tree in _modules():
        if rel.startswith("migrations/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    assert long == [], "split these into named steps"
