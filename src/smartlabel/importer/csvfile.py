"""Reading CSV: the header, its columns matched to the known ones, the rows as `Record`s,
and every CSV error explained (unclosed quotes, wrong field counts, missing columns).

    table = CsvTable(path, shown, Lines(fh, shown))   # header read and matched
    table.require(REQUIRED_COLUMNS)                    # or an error with renaming hints
    for record in table.records(): ...
"""

from __future__ import annotations

import csv
import difflib
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Iterator, Sequence

from smartlabel.importer.lines import Lines
from smartlabel.importer.records import KNOWN_COLUMNS, Record, file_error, match_columns

DELIMITERS = {"tsv": "\t"}  # format -> delimiter; other CSV: sniffed from the header line
FIELD_LIMIT = 1_000_000  # the least csv.field_size_limit while reading (characters)
# column names other tools use for the required columns: named in the error's hint
_SYNONYMS = {
    "title": ["headline", "subject", "heading", "name"],
    "selftext": ["body", "text", "content", "post", "message", "description", "self_text"],
}
_SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon"}


@contextmanager
def field_size_limit(limit: int) -> Iterator[None]:
    """Let the csv module read fields of up to `limit` characters, then restore its limit."""
    old = csv.field_size_limit()
    csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


@contextmanager
def read_csv(path: Path, fmt: str = "csv", known: Sequence[str] = KNOWN_COLUMNS) -> Iterator[CsvTable]:
    """The CSV (or, `fmt` "tsv", tab-separated) file at `path` as a CsvTable, open while in the block."""
    shown = str(path)
    with field_size_limit(FIELD_LIMIT), open(path, "rb") as fh:
        yield CsvTable(path, shown, Lines(fh, shown), DELIMITERS.get(fmt), FIELD_LIMIT, known)


class CsvTable:
    """A CSV file read through `lines`: its header (read when made) and its rows.

    `delimiter` None: comma, tab or semicolon, whichever the header line uses.
    `known`: the column names matched (case-insensitively) into `Record.values`;
    the other columns go to `Record.extra`. The caller's csv field size limit
    should be `field_limit` (see `field_size_limit`): errors quote it.
    """

    def __init__(
        self,
        path: Path,
        shown: str,
        lines: Lines,
        delimiter: str | None = None,
        field_limit: int = FIELD_LIMIT,
        known: Sequence[str] = KNOWN_COLUMNS,
    ):
        self.path, self.shown, self.field_limit = path, shown, field_limit
        first, rest = _header_line(shown, lines)
        self.delimiter = delimiter or _sniff_delimiter(first)
        self.reader = csv.reader(chain([first], rest), delimiter=self.delimiter, strict=True)
        try:
            header = next(self.reader)
        except csv.Error as exc:
            raise file_error(shown, f"the header line cannot be read as CSV ({exc}).", line=1) from None
        self.names = [h.strip() for h in header]
        _check_unique(shown, self.names)
        self.columns = match_columns(self.names, known)

    @property
    def separator(self) -> str:
        """The delimiter's name, for messages."""
        return _SEPARATORS.get(self.delimiter, repr(self.delimiter))

    def require(self, required: Sequence[str]) -> None:
        """Raise (naming the columns found, with renaming hints) unless every `required` column is there."""
        missing = [c for c in required if c not in self.columns.canon]
        if not missing:
            return
        found = ", ".join(repr(n) for n in self.names) or "none"
        hint = _rename_hint(self.names, missing)
        if len(self.names) == 1 and self.delimiter == ",":
            hint += "If the file uses another separator, save it comma-separated. "
        raise file_error(
            self.shown,
            f"missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} (header read as {self.separator}-separated; found: {found}). "
            f"{hint}Every file needs 'title' and 'selftext' columns; leave cells empty where a post "
            "has no title or no body.",
            line=1,
        )

    def records(self) -> Iterator[Record]:
        """The rows as Records (blank lines skipped); an error if there are none."""
        make = self.record_maker()
        return (make(raw) for raw in self.raw_records())

    def raw_records(self) -> Iterator[tuple[int, int, list[str]]]:
        """The rows as (first line, last line, fields), blank lines skipped, the field count
        checked; an error if there are none. `record_maker()` makes them Records."""
        width = len(self.names)
        reader = self.reader
        prev_end = reader.line_num
        rows = 0
        try:
            for values in reader:
                start = prev_end + 1
                end = prev_end = reader.line_num
                if not values or (len(values) == 1 and not values[0].strip() and width > 1):
                    continue  # blank line
                if len(values) != width:
                    raise self._width_error(len(values), start, end)
                rows += 1
                yield start, end, values
        except csv.Error as exc:
            raise self._csv_error(exc, prev_end + 1) from None
        if rows == 0:
            raise file_error(self.shown, "the file has a header but no rows: there is nothing to import.")

    def record_maker(self) -> RecordMaker:
        return RecordMaker(self.columns.canon, [(i, self.names[i] or f"column_{i + 1}") for i in self.columns.extras],
                           {c: f"{i + 1} ({self.names[i]})" for c, i in self.columns.canon.items()})

    def _width_error(self, fields: int, start: int, end: int):
        width = len(self.names)
        return file_error(
            self.shown,
            f"{fields} fields but the header has {width} columns. "
            + (
                f"A field that contains the separator ({self.separator}) must be in double quotes."
                if fields > width
                else "A line break inside a field needs the field in double quotes."
            ),
            line=start,
            end_line=end,
        )

    def _csv_error(self, exc: csv.Error, start: int):
        """What the csv module's error `exc`, raised in the record starting on line `start`, means."""
        msg, shown = str(exc), self.shown
        if "unexpected end of data" in msg:
            fno = _find_open_quote(_read_line(self.path, start), self.delimiter)
            column = f"{fno} ({self.names[fno - 1]})" if fno and fno <= len(self.names) else None
            return file_error(
                shown,
                "a double quote opened here is never closed, so the rest of the file was read as "
                "one field. Add the missing closing quote (\"), and write a quote inside a quoted "
                'field as two quotes ("").',
                line=start,
                column=column,
            )
        if "field larger than field limit" in msg:
            return file_error(
                shown,
                f"a field longer than {self.field_limit:,} characters starts in the record here: most "
                "likely a double quote that is never closed (add the closing quote), otherwise a "
                "text far over MAX_FIELD_CHARS.",
                line=start,
            )
        if "expected after" in msg:
            return file_error(
                shown,
                "text follows the closing quote of a quoted field. A double quote inside a quoted "
                'field must be written as two quotes (""), e.g. "He said ""hi""".',
                line=self.reader.line_num,
            )
        return file_error(shown, f"not valid CSV ({msg}).", line=self.reader.line_num)


class RecordMaker:
    """A raw record of a CsvTable, (first line, last line, fields), as a Record; it holds only
    the column layout, so worker processes can use it."""

    def __init__(self, canon: dict[str, int], extras: list[tuple[int, str]], colname: dict[str, str]):
        self.canon, self.extras, self.colname = canon, extras, colname

    def __call__(self, raw: tuple[int, int, list[str]]) -> Record:
        start, end, values = raw
        extra = {name: values[i] for i, name in self.extras} if self.extras else None
        return Record(start, end, {c: values[i] for c, i in self.canon.items()}, extra, self.colname)


def _header_line(shown: str, lines: Lines) -> tuple[str, Iterator[str]]:
    """The first line and an iterator over the rest; an error if the file or its header is blank."""
    it = iter(lines)
    first = next(it, None)
    if first is not None and first.strip():
        return first, it
    if first is None or all(not ln.strip() for ln in it):
        raise file_error(
            shown,
            "the file is empty. A CSV file needs a header line such as 'title,selftext' and one "
            "line per post below it.",
        )
    raise file_error(shown, "the first line (the header) is blank: put the column names on line 1.", line=1)


def _check_unique(shown: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = name.lower()
        if key and key in seen:
            raise file_error(
                shown,
                f"the header names the column {name!r} twice (columns {seen[key] + 1} and {i + 1}): "
                "rename or remove one.",
                line=1,
            )
        seen[key] = i


def _rename_hint(names: list[str], missing: list[str]) -> str:
    """'Rename 'Body' to 'selftext'. ' for missing columns with a close or usual other name, else ''."""
    lowered = {n.lower(): n for n in names}
    hints = []
    for m in missing:
        close = difflib.get_close_matches(m, list(lowered), n=1, cutoff=0.6)
        close += [n for n in _SYNONYMS.get(m, []) if n in lowered and n not in close]
        if close:
            hints.append(f"rename {lowered[close[0]]!r} to {m!r}")
    return ("R" + "; ".join(hints)[1:] + ". ") if hints else ""


def _sniff_delimiter(header: str) -> str:
    counts = {d: 0 for d in (",", "\t", ";")}
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _find_open_quote(line: str, delimiter: str) -> int | None:
    """1-based field number whose opening quote on `line` is never closed on that line."""
    field_no, at_start, quoted, open_field = 1, True, False, None
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if quoted:
            if ch == '"':
                if i + 1 < n and line[i + 1] == '"':
                    i += 1
                else:
                    quoted = False
        elif ch == '"' and at_start:
            quoted, open_field = True, field_no
        elif ch == delimiter:
            field_no += 1
            at_start = True
            i += 1
            continue
        at_start = False
        i += 1
    return open_field if quoted else None


def _read_line(path: Path, lineno: int) -> str:
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, 1):
            if i == lineno:
                return raw.decode("utf-8", "replace").lstrip("\ufeff")
    return ""
