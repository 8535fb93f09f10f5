"""What the readers yield (`Record`), the columns they know, and the error naming file, line and column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smartlabel.errors import ImportFileError

REQUIRED_COLUMNS = ("title", "selftext")
KNOWN_COLUMNS = ("title", "selftext", "clean_selftext", "external_id", "id", "label", "worker_id")
ID_MAX_CHARS = 200  # items.external_id and labels.worker_id are VARCHAR(200)


def where(path: str, line: int | None = None, column: str | None = None, end_line: int | None = None) -> str:
    out = path
    if line is not None:
        out += f", line {line}" if end_line in (None, line) else f", lines {line}-{end_line}"
    if column:
        out += f", column {column}"
    return out


def file_error(path: str, message: str, line: int | None = None, column: str | None = None, end_line=None):
    err = ImportFileError(f"{where(path, line, column, end_line)}: {message}")
    err.path, err.line, err.column = path, line, column
    return err



@dataclass
class Record:
    line: int
    end_line: int
    values: dict[str, Any]  # canonical known columns -> value
    extra: dict[str, Any] | None
    columns: dict[str, str]  # canonical name -> how to name its column in an error


def canonical(name: str) -> str | None:
    key = name.strip().lower()
    return key if key in KNOWN_COLUMNS else None

