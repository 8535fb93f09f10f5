"""What the readers share: the columns they know, how a file's column names are matched to
them, the `Record` they yield, and the error naming file, line and column."""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from typing import Any, Sequence

from smartlabel.errors import ImportFileError

REQUIRED_COLUMNS = ("title", "selftext")
KNOWN_COLUMNS = ("title", "selftext", "clean_selftext", "external_id", "id", "label", "worker_id")
ID_MAX_CHARS = 200  # items.external_id and labels.worker_id are VARCHAR(200)


def where(path: str, line: int | None = None, column: str | None = None, end_line: int | None = None) -> str:
    """`path, line 3, column 2 (title)`: the place an error message starts with."""
    out = path
    if line is not None:
        out += f", line {line}" if end_line in (None, line) else f", lines {line}-{end_line}"
    if column:
        out += f", column {column}"
    return out


def file_error(
    path: str, message: str, line: int | None = None, column: str | None = None, end_line: int | None = None
) -> ImportFileError:
    """An ImportFileError whose message starts with the place, with `path`, `line`, `column` set."""
    err = ImportFileError(f"{where(path, line, column, end_line)}: {message}")
    err.path, err.line, err.column = path, line, column
    return err


@dataclass(frozen=True)
class ColumnMatch:
    """Which of a file's columns (by position) are known columns, and which are extra."""

    canon: dict[str, int]  # known (canonical) name -> position of its column
    extras: list[int]  # positions of the other columns, in file order


def match_columns(names: Sequence[str], known: Sequence[str] = KNOWN_COLUMNS) -> ColumnMatch:
    """Match column names to `known` names, case-insensitively and ignoring surrounding spaces.

    The first column with a known name wins; a later one with the same name is extra.
    `id` stands for `external_id` (when that is known) if the file has no `external_id`
    column; beside one, `id` is extra.
    """
    canon: dict[str, int] = {}
    extras: list[int] = []
    for i, name in enumerate(names):
        key = name.strip().lower()
        if key in known and key not in canon:
            canon[key] = i
        else:
            extras.append(i)
    if "id" in canon and "external_id" in known:
        i = canon.pop("id")
        if "external_id" in canon:
            insort(extras, i)
        else:
            canon["external_id"] = i
    return ColumnMatch(canon, extras)


@dataclass
class Record:
    """One post as a reader found it: the known columns' values and the rest (`extra`)."""

    line: int
    end_line: int
    values: dict[str, Any]  # canonical known columns -> value
    extra: dict[str, Any] | None
    columns: dict[str, str]  # canonical name -> how to name its column in an error
