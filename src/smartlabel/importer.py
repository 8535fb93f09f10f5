"""Streaming, validated, idempotent import of posts (and existing labels) from CSV or JSONL.

    from smartlabel.importer import import_file
    result = import_file("aldata.csv", "sqlite:///data/smartlabel.db")
    print(result.summary())

The file
    CSV (comma, semicolon or tab separated: detected from the header line; a
    `.tsv` file is tab separated) or JSON Lines (one object per line). UTF-8,
    with or without a byte-order mark. Columns (matched case-insensitively):

    `title`, `selftext`     required (either may be empty in a row, not both)
    `clean_selftext`        optional: the model's text; computed with
                            `smartlabel.text.clean_text` when missing or empty
    `id` / `external_id`    optional: your id of the post (kept in items.external_id)
    `label`                 optional: an existing label, one of LABELS
    `worker_id`             optional: who gave that label (default "import")
    anything else           kept as JSON in items.extra

What is new
    A post is already present when its id is (a row whose id belongs to a
    different text is reported and not imported), or else when its content hash
    (`smartlabel.text.content_hash` of title and selftext) is. So importing the
    same file twice adds nothing, and a file with new rows adds only those. A
    label is added unless the same worker already labelled that post (labels are
    never overwritten; a different label from the same worker is reported).

Safety
    The whole file is one transaction: on any error nothing is written, and the
    error (ImportFileError) names the file, line and column and says what to do.
    Imports run one at a time (a PostgreSQL advisory lock; SQLite's write lock).
    Rows are inserted in batches with executemany, so it is fast on both backends.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlalchemy import distinct, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from smartlabel.errors import ImportFileError
from smartlabel.text import clean_text, content_hash

__all__ = ["import_file", "ImportResult", "DEFAULT_WORKER_ID", "REQUIRED_COLUMNS"]

DEFAULT_WORKER_ID = "import"
REQUIRED_COLUMNS = ("title", "selftext")
KNOWN_COLUMNS = ("title", "selftext", "clean_selftext", "external_id", "id", "label", "worker_id")
ID_MAX_CHARS = 200  # items.external_id and labels.worker_id are VARCHAR(200)
IMPORT_LOCK_KEY = 4_242_001  # pg_advisory_xact_lock key: one import at a time

_CSV_SUFFIXES = {".csv", ".tsv", ".tab", ".txt"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_UTF8_BOM = b"\xef\xbb\xbf"
# column names other tools use for the required columns: named in the error's hint
_SYNONYMS = {
    "title": ["headline", "subject", "heading", "name"],
    "selftext": ["body", "text", "content", "post", "message", "description", "self_text"],
}


@dataclass
class ImportResult:
    """What an import did. `summary()` is the text the CLI prints."""

    path: str
    database: str = ""
    rows: int = 0  # data rows read
    added: int = 0  # new posts
    already_present: int = 0  # rows whose post was in the database before this import
    duplicates_in_file: int = 0  # rows repeating an earlier row of the same file
    empty: int = 0  # rows with neither title nor selftext: skipped
    id_conflicts: int = 0  # rows whose id is taken by a different post: not imported
    labels_added: int = 0
    labels_present: int = 0  # the same worker had already given this label
    labels_conflicting: int = 0  # the same worker had given another label: stored one kept
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # first example line of each anomaly

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [
            f"imported {self.path} into {self.database}" if self.database else f"imported {self.path}",
            f"  rows read:        {self.rows:,}",
            f"  posts added:      {self.added:,}",
            f"  already present:  {self.already_present:,}",
        ]
        if self.duplicates_in_file:
            lines.append(f"  repeated in file: {self.duplicates_in_file:,}")
        if self.empty:
            lines.append(f"  empty (skipped):  {self.empty:,}")
        if self.id_conflicts:
            lines.append(f"  id conflicts:     {self.id_conflicts:,} (not imported)")
        lines.append(f"  labels imported:  {self.labels_added:,}")
        if self.labels_present:
            lines.append(f"  labels present:   {self.labels_present:,}")
        if self.labels_conflicting:
            lines.append(f"  labels differing: {self.labels_conflicting:,} (stored labels kept)")
        lines.append(f"  time:             {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# --- errors -------------------------------------------------------------------


def _where(path: str, line: int | None = None, column: str | None = None, end_line: int | None = None) -> str:
    out = path
    if line is not None:
        out += f", line {line}" if end_line in (None, line) else f", lines {line}-{end_line}"
    if column:
        out += f", column {column}"
    return out


def _error(path: str, message: str, line: int | None = None, column: str | None = None, end_line=None):
    err = ImportFileError(f"{_where(path, line, column, end_line)}: {message}")
    err.path, err.line, err.column = path, line, column
    return err


# --- reading lines: NUL bytes and encoding, with exact positions -------------


class _Lines:
    """Iterate a binary file as decoded text lines, failing clearly on bytes we cannot take.

    Splitting on b"\\n" is safe for UTF-8 (the byte never occurs inside a multi-byte
    character), so every error can name its line, column and byte offset.
    """

    def __init__(self, fh, path: str):
        self.fh = fh
        self.path = path
        self.lineno = 0
        self.offset = 0  # bytes consumed

    def __iter__(self) -> Iterator[str]:
        path = self.path
        for raw in self.fh:
            start = self.offset
            self.lineno += 1
            self.offset += len(raw)
            if self.lineno == 1:
                if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise _error(
                        path,
                        "the file is UTF-16 encoded (starts with a UTF-16 byte-order mark). "
                        "Re-save it as UTF-8 (in Excel: 'CSV UTF-8'; or: iconv -f utf-16 -t utf-8 in.csv > out.csv).",
                        line=1,
                    )
                if raw.startswith(_UTF8_BOM):
                    raw = raw[len(_UTF8_BOM):]
                    start += len(_UTF8_BOM)
            if b"\x00" in raw:
                at = raw.index(b"\x00")
                col = len(raw[:at].decode("utf-8", "replace")) + 1
                raise _error(
                    path,
                    f"NUL byte (0x00) at byte offset {start + at}: this is not a text file, or it is "
                    "UTF-16 or damaged. Re-save it as UTF-8 text (in Excel: 'CSV UTF-8'), or remove "
                    "the NUL bytes (tr -d '\\000' < in > out).",
                    line=self.lineno,
                    column=str(col),
                )
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                col = len(raw[: exc.start].decode("utf-8", "replace")) + 1
                bad = raw[exc.start : exc.start + 1].hex()
                raise _error(
                    path,
                    f"byte 0x{bad} at byte offset {start + exc.start} is not valid UTF-8. The file is "
                    "probably in another encoding (Windows-1252 or Latin-1 are common): re-save it as "
                    "UTF-8 (in Excel: 'CSV UTF-8'; or: iconv -f cp1252 -t utf-8 in.csv > out.csv).",
                    line=self.lineno,
                    column=str(col),
                ) from None


# --- records ----------------------------------------------------------------


@dataclass
class _Record:
    line: int
    end_line: int
    values: dict[str, Any]  # canonical known columns -> value
    extra: dict[str, Any] | None
    columns: dict[str, str]  # canonical name -> how to name its column in an error


def _canonical(name: str) -> str | None:
    key = name.strip().lower()
    return key if key in KNOWN_COLUMNS else None


def _detect_format(path: Path, forced: str | None) -> str:
    if forced:
        fmt = forced.lower().strip(".")
        if fmt in ("csv", "tsv", "jsonl"):
            return fmt
        if fmt in ("ndjson", "json"):
            return "jsonl"
        raise ImportFileError(f"unknown format {forced!r}: use csv, tsv or jsonl")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(_UTF8_BOM).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


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


def _csv_records(path: Path, shown: str, lines: _Lines, delimiter: str | None, field_limit: int):
    it = iter(lines)
    first = next(it, None)
    if first is None or not first.strip():
        rest_blank = first is not None and all(not ln.strip() for ln in it)
        if first is None or rest_blank:
            raise _error(
                shown,
                "the file is empty. A CSV file needs a header line such as 'title,selftext' and one "
                "line per post below it.",
            )
        raise _error(shown, "the first line (the header) is blank: put the column names on line 1.", line=1)
    if delimiter is None:
        delimiter = _sniff_delimiter(first)

    def chained():
        yield first
        yield from it

    reader = csv.reader(chained(), delimiter=delimiter, strict=True)
    sep_name = {",": "comma", "\t": "tab", ";": "semicolon"}.get(delimiter, repr(delimiter))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise _error(shown, f"the header line cannot be read as CSV ({exc}).", line=1) from None
    names = [h.strip() for h in header]
    canon: dict[str, int] = {}
    seen: dict[str, int] = {}
    extras: list[tuple[int, str]] = []
    for i, name in enumerate(names):
        key = name.lower()
        if key and key in seen:
            raise _error(
                shown,
                f"the header names the column {name!r} twice (columns {seen[key] + 1} and {i + 1}): "
                "rename or remove one.",
                line=1,
            )
        seen[key] = i
        c = _canonical(name)
        if c:
            canon[c] = i
        else:
            extras.append((i, name or f"column_{i + 1}"))
    missing = [c for c in REQUIRED_COLUMNS if c not in canon]
    if missing:
        found = ", ".join(repr(n) for n in names) or "none"
        hints = []
        lowered = {n.lower(): n for n in names}
        for m in missing:
            close = difflib.get_close_matches(m, list(lowered), n=1, cutoff=0.6)
            close += [n for n in _SYNONYMS[m] if n in lowered and n not in close]
            if close:
                hints.append(f"rename {lowered[close[0]]!r} to {m!r}")
        hint = ("R" + "; ".join(hints)[1:] + ". ") if hints else ""
        if len(names) == 1 and delimiter == ",":
            hint += "If the file uses another separator, save it comma-separated. "
        raise _error(
            shown,
            f"missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} (header read as {sep_name}-separated; found: {found}). "
            f"{hint}Every file needs 'title' and 'selftext' columns; leave cells empty where a post "
            "has no title or no body.",
            line=1,
        )
    if "external_id" in canon and "id" in canon:
        i = canon.pop("id")
        extras.append((i, names[i]))
    elif "id" in canon:
        canon["external_id"] = canon.pop("id")
    extras.sort()
    colname = {c: f"{i + 1} ({names[i]})" for c, i in canon.items()}
    width = len(names)
    prev_end = reader.line_num
    rows = 0
    try:
        for values in reader:
            start = prev_end + 1
            end = prev_end = reader.line_num
            if not values or (len(values) == 1 and not values[0].strip() and width > 1):
                continue  # blank line
            if len(values) != width:
                more = len(values) > width
                raise _error(
                    shown,
                    f"{len(values)} fields but the header has {width} columns. "
                    + (
                        f"A field that contains the separator ({sep_name}) must be in double quotes."
                        if more
                        else "A line break inside a field needs the field in double quotes."
                    ),
                    line=start,
                    end_line=end,
                )
            rows += 1
            rec_values = {c: values[i] for c, i in canon.items()}
            extra = {name: values[i] for i, name in extras} if extras else None
            yield _Record(start, end, rec_values, extra, colname)
    except csv.Error as exc:
        msg = str(exc)
        start = prev_end + 1
        if "unexpected end of data" in msg:
            line_text = _read_line(path, start)
            fno = _find_open_quote(line_text, delimiter)
            where = f"{fno} ({names[fno - 1]})" if fno and fno <= len(names) else None
            raise _error(
                shown,
                "a double quote opened here is never closed, so the rest of the file was read as "
                "one field. Add the missing closing quote (\"), and write a quote inside a quoted "
                'field as two quotes ("").',
                line=start,
                column=where,
            ) from None
        if "field larger than field limit" in msg:
            raise _error(
                shown,
                f"a field longer than {field_limit:,} characters starts in the record here: most "
                "likely a double quote that is never closed (add the closing quote), otherwise a "
                "text far over MAX_FIELD_CHARS.",
                line=start,
            ) from None
        if "expected after" in msg:
            raise _error(
                shown,
                "text follows the closing quote of a quoted field. A double quote inside a quoted "
                'field must be written as two quotes (""), e.g. "He said ""hi""".',
                line=reader.line_num,
            ) from None
        raise _error(shown, f"not valid CSV ({msg}).", line=reader.line_num) from None
    if rows == 0:
        raise _error(shown, "the file has a header but no rows: there is nothing to import.")


class _NotJSON(ValueError):
    pass


def _reject_constant(name: str):
    raise _NotJSON(name)  # NaN, Infinity, -Infinity: Python accepts them, JSON does not


def _jsonl_records(shown: str, lines: _Lines):
    rows = 0
    keymaps: dict[tuple, tuple[dict[str, str], list[str]]] = {}
    for line_text in lines:
        lineno = lines.lineno
        if not line_text.strip():
            continue
        try:
            obj = json.loads(line_text.rstrip("\r\n"), parse_constant=_reject_constant)
        except _NotJSON as exc:
            raise _error(
                shown,
                f"{exc} is not valid JSON (the database would refuse it): write null or a string.",
                line=lineno,
            ) from None
        except json.JSONDecodeError as exc:
            if rows == 0 and line_text.lstrip().startswith("["):
                raise _error(
                    shown,
                    "this looks like a JSON array of posts, which is not supported: write one JSON "
                    "object per line (JSON Lines), e.g. with: jq -c '.[]' posts.json > posts.jsonl",
                    line=lineno,
                ) from None
            raise _error(
                shown,
                f"not valid JSON ({exc.msg}). A JSON Lines file holds one complete object per line, "
                'e.g. {"title": "...", "selftext": "..."}; a line break inside a string must be '
                "written as \\n.",
                line=lineno,
                column=str(exc.colno),
            ) from None
        if not isinstance(obj, dict):
            kind = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(
                type(obj), "a number"
            )
            hint = (
                " A JSON array of posts is not supported: write one object per line (JSON Lines)."
                if isinstance(obj, list)
                else ""
            )
            raise _error(shown, f"expected a JSON object, found {kind}.{hint}", line=lineno)
        keys = tuple(obj)
        km = keymaps.get(keys)
        if km is None:
            canon: dict[str, str] = {}
            extras: list[str] = []
            for k in keys:
                c = _canonical(k)
                if c and c not in canon:
                    canon[c] = k
                else:
                    extras.append(k)
            if "external_id" in canon and "id" in canon:
                extras.append(canon.pop("id"))
            elif "id" in canon:
                canon["external_id"] = canon.pop("id")
            km = keymaps[keys] = (canon, extras)
        canon, extras = km
        missing = [c for c in REQUIRED_COLUMNS if c not in canon]
        if missing:
            raise _error(
                shown,
                f"missing key{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
                f"(found: {', '.join(repr(k) for k in keys) or 'none'}). Every line needs 'title' and "
                "'selftext'; use \"\" where a post has no title or no body.",
                line=lineno,
            )
        values = {}
        for c, k in canon.items():
            v = obj[k]
            if v is None:
                v = ""
            elif isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise _error(
                    shown,
                    f"{k!r} must be a string, found {json.dumps(v)[:60]}.",
                    line=lineno,
                )
            elif not isinstance(v, str):
                v = str(v)
            if "\x00" in v:
                raise _error(
                    shown,
                    f"{k!r} contains a NUL character (\\u0000), which the database cannot store: remove it.",
                    line=lineno,
                )
            values[c] = v
        extra = {k: obj[k] for k in extras} if extras else None
        rows += 1
        yield _Record(lineno, lineno, values, extra, {c: f"{k!r}" for c, k in canon.items()})
    if rows == 0:
        raise _error(
            shown,
            "the file is empty. A JSON Lines file needs one object per line, e.g. "
            '{"title": "...", "selftext": "..."}.',
        )


# --- validation ---------------------------------------------------------------


@dataclass
class _Row:
    line: int
    external_id: str | None
    title: str
    selftext: str
    clean_selftext: str | None
    extra: dict | None
    hash: str
    label: str | None
    worker_id: str


class _Validator:
    def __init__(self, shown: str, labels: list[str], max_chars: int, default_worker: str):
        self.shown = shown
        self.labels = list(labels)
        self.exact = set(labels)
        self.folded = {}
        for lab in labels:
            self.folded.setdefault(lab.casefold(), []).append(lab)
        self.max_chars = max_chars
        self.default_worker = default_worker

    def _too_long(self, rec: _Record, column: str, value: str, limit: int, setting: str):
        raise _error(
            self.shown,
            f"{len(value):,} characters, more than {setting}={limit:,}. Shorten the text"
            + (", or raise MAX_FIELD_CHARS." if setting == "MAX_FIELD_CHARS" else "."),
            line=rec.line,
            end_line=rec.end_line,
            column=column,
        )

    def label(self, rec: _Record, raw: str) -> str:
        value = raw.strip()
        if value in self.exact:
            return value
        folded = self.folded.get(value.casefold())
        if folded and len(folded) == 1:
            return folded[0]
        close = difflib.get_close_matches(value, self.labels, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        allowed = ", ".join(repr(x) for x in self.labels)
        raise _error(
            self.shown,
            f"label {value!r} is not one of LABELS: {allowed}.{hint} Fix the label in the file, "
            "or add it to LABELS (setting) if it is a tag you want.",
            line=rec.line,
            end_line=rec.end_line,
            column=rec.columns.get("label"),
        )

    def row(self, rec: _Record) -> _Row | None:
        v = rec.values
        maxc = self.max_chars
        for c in ("title", "selftext", "clean_selftext"):
            s = v.get(c)
            if s is not None and len(s) > maxc:
                self._too_long(rec, rec.columns[c], s, maxc, "MAX_FIELD_CHARS")
        if rec.extra:
            for k, s in rec.extra.items():
                if isinstance(s, str) and len(s) > maxc:
                    self._too_long(rec, repr(k), s, maxc, "MAX_FIELD_CHARS")
        ext = (v.get("external_id") or "").strip() or None
        if ext is not None and len(ext) > ID_MAX_CHARS:
            self._too_long(rec, rec.columns["external_id"], ext, ID_MAX_CHARS, "the id limit")
        title, selftext = v["title"], v["selftext"]
        label_raw = v.get("label") or ""
        label = self.label(rec, label_raw) if label_raw.strip() else None
        worker = (v.get("worker_id") or "").strip() or self.default_worker
        if label is not None and len(worker) > ID_MAX_CHARS:
            self._too_long(rec, rec.columns["worker_id"], worker, ID_MAX_CHARS, "the worker id limit")
        if not title.strip() and not selftext.strip():
            return None
        clean = v.get("clean_selftext") or ""
        if not clean.strip():
            clean = None  # computed when the post turns out to be new
        return _Row(rec.line, ext, title, selftext, clean, rec.extra, content_hash(title, selftext), label, worker)


# --- writing ------------------------------------------------------------------


class _Writer:
    def __init__(self, conn: Connection, result: ImportResult, rng: random.Random, overlap: int):
        from smartlabel.db import items, labels, utcnow

        self.conn, self.result, self.rng, self.overlap = conn, result, rng, overlap
        self.items, self.labels = items, labels
        self.now = utcnow()
        # Imports run one at a time and nothing else adds posts, so the posts this import
        # added are exactly those with a larger id than any before it.
        self.max_id_before = conn.execute(select(func.coalesce(func.max(items.c.id), 0))).scalar_one()
        self.touched: set[int] = set()
        # Plain executemany (no RETURNING): SQLite would fall back to one statement per
        # row to return ids in order; ids are looked up by content hash when labels need them.
        self.insert_items = insert(items)

    def _note(self, key: str, text_: str):
        if not any(n.startswith(key) for n in self.result.notes):
            self.result.notes.append(f"{key}{text_}")

    def write(self, batch: list[_Row]) -> None:
        conn, items, labels, res = self.conn, self.items, self.labels, self.result
        hashes = list({r.hash for r in batch})
        exts = list({r.external_id for r in batch if r.external_id})
        by_hash: dict[str, tuple[int, str | None]] = {}
        by_ext: dict[str, tuple[int, str]] = {}
        cols = (items.c.id, items.c.content_hash, items.c.external_id)
        for row in conn.execute(select(*cols).where(items.c.content_hash.in_(hashes))):
            by_hash[row.content_hash] = (row.id, row.external_id)
        if exts:
            for row in conn.execute(select(*cols).where(items.c.external_id.in_(exts))):
                by_ext[row.external_id] = (row.id, row.content_hash)

        new_rows: list[dict] = []
        new_by_hash: dict[str, int] = {}  # hash -> index in new_rows
        new_by_ext: dict[str, int] = {}
        pending_labels: list[tuple[Any, _Row]] = []  # (item id or ("new", index), row)
        for r in batch:
            ref: Any = None
            if r.external_id and r.external_id in by_ext:
                item_id, h = by_ext[r.external_id]
                if h != r.hash:
                    res.id_conflicts += 1
                    self._note(
                        "id conflict: ",
                        f"line {r.line}: id {r.external_id!r} already belongs to a post with another "
                        "text; rows like it were not imported (give them new ids, or drop the id column "
                        "to match posts by their text).",
                    )
                    continue
                ref = item_id
            elif r.external_id and r.external_id in new_by_ext:
                idx = new_by_ext[r.external_id]
                if new_rows[idx]["content_hash"] != r.hash:
                    res.id_conflicts += 1
                    self._note(
                        "id conflict: ",
                        f"line {r.line}: id {r.external_id!r} is used earlier in the file for another "
                        "text; rows like it were not imported (give each post its own id).",
                    )
                    continue
                ref = ("new", idx)
            elif r.hash in by_hash:
                ref = by_hash[r.hash][0]
            elif r.hash in new_by_hash:
                ref = ("new", new_by_hash[r.hash])
            if ref is None:
                idx = len(new_rows)
                new_rows.append(
                    {
                        "external_id": r.external_id,
                        "title": r.title,
                        "selftext": r.selftext,
                        "clean_selftext": r.clean_selftext
                        if r.clean_selftext is not None
                        else clean_text(r.selftext),
                        "extra": r.extra,
                        "content_hash": r.hash,
                        "imported_at": self.now,
                        "rand_key": self.rng.random(),
                        "label_count": 0,
                        "done": False,
                    }
                )
                new_by_hash[r.hash] = idx
                if r.external_id:
                    new_by_ext[r.external_id] = idx
                ref = ("new", idx)
            elif isinstance(ref, tuple) or ref > self.max_id_before:
                res.duplicates_in_file += 1
            else:
                res.already_present += 1
            if r.label is not None:
                pending_labels.append((ref, r))

        if new_rows:
            conn.execute(self.insert_items, new_rows)
            res.added += len(new_rows)
        if not pending_labels:
            return

        wanted = list({new_rows[ref[1]]["content_hash"] for ref, _ in pending_labels if isinstance(ref, tuple)})
        new_id: dict[str, int] = {}
        if wanted:
            q = select(items.c.id, items.c.content_hash).where(items.c.content_hash.in_(wanted))
            new_id = {h: i for i, h in conn.execute(q)}
        resolved = [
            (new_id[new_rows[ref[1]]["content_hash"]] if isinstance(ref, tuple) else ref, r)
            for ref, r in pending_labels
        ]
        ids = list({i for i, _ in resolved})
        stored: dict[tuple[int, str], str] = {}
        for row in conn.execute(
            select(labels.c.item_id, labels.c.worker_id, labels.c.label).where(labels.c.item_id.in_(ids))
        ):
            stored.setdefault((row.item_id, row.worker_id), row.label)
        to_insert = []
        for item_id, r in resolved:
            key = (item_id, r.worker_id)
            have = stored.get(key)
            if have is None:
                stored[key] = r.label
                to_insert.append(
                    {
                        "item_id": item_id,
                        "label": r.label,
                        "worker_id": r.worker_id,
                        "created_at": self.now,
                        "handout_reason": "import",
                    }
                )
            elif have == r.label:
                res.labels_present += 1
            else:
                res.labels_conflicting += 1
                self._note(
                    "label differs: ",
                    f"line {r.line}: worker {r.worker_id!r} already labelled this post {have!r}, the "
                    f"file says {r.label!r}; labels are never overwritten, the first one was kept.",
                )
        if to_insert:
            conn.execute(insert(labels), to_insert)
            res.labels_added += len(to_insert)
            self.touched.update(row["item_id"] for row in to_insert)

    def finish(self) -> None:
        """Recompute label_count (distinct workers) and done for posts that got labels."""
        items, labels = self.items, self.labels
        count = (
            select(func.count(distinct(labels.c.worker_id)))
            .where(labels.c.item_id == items.c.id)
            .scalar_subquery()
        )
        touched = sorted(self.touched)
        for i in range(0, len(touched), 1000):
            chunk = touched[i : i + 1000]
            self.conn.execute(update(items).where(items.c.id.in_(chunk)).values(label_count=count))
            self.conn.execute(
                update(items).where(items.c.id.in_(chunk)).values(done=items.c.label_count >= self.overlap)
            )


# --- the entry point ------------------------------------------------------------


def _batches(rows: Iterable[_Row | None], size: int, result: ImportResult) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        result.rows += 1
        if row is None:
            result.empty += 1
            continue
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_file(
    path: str | os.PathLike,
    url_or_engine: str | Engine | None = None,
    *,
    settings=None,
    fmt: str | None = None,
    batch_size: int = 1000,
    progress: bool = True,
    worker_id: str = DEFAULT_WORKER_ID,
    seed: int | None = None,
) -> ImportResult:
    """Import posts (and labels) from a CSV or JSONL file in one transaction.

    `url_or_engine` defaults to the settings' DATABASE_URL; the schema is migrated
    first. `fmt` forces 'csv', 'tsv' or 'jsonl' (default: from the file name, else
    sniffed). `worker_id` is recorded on imported labels when the file has no
    `worker_id` column. `seed` makes the queue's random order (items.rand_key)
    reproducible. Raises ImportFileError (nothing written) for a bad file.
    """
    from tqdm import tqdm

    from smartlabel.db import check_connection, immediate, is_postgres, make_engine
    from smartlabel.migrate import upgrade
    from smartlabel.settings import load_settings

    settings = settings or load_settings()
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise ImportFileError(f"{shown}: no such file. Check the path (relative paths start at {os.getcwd()}).")
    if p.is_dir():
        raise ImportFileError(f"{shown} is a folder: give the path of a .csv or .jsonl file.")
    worker_id = (worker_id or "").strip() or DEFAULT_WORKER_ID
    if len(worker_id) > ID_MAX_CHARS:
        raise ImportFileError(f"worker id is {len(worker_id)} characters; the limit is {ID_MAX_CHARS}.")
    if batch_size < 1:
        raise ImportFileError("batch size must be at least 1")
    kind = _detect_format(p, fmt)
    size = p.stat().st_size

    engine = make_engine(url_or_engine or settings.database_url)
    owns_engine = not isinstance(url_or_engine, Engine)
    check_connection(engine)
    upgrade(engine)

    result = ImportResult(path=shown, database=engine.url.render_as_string(hide_password=True))
    validator = _Validator(shown, settings.labels, settings.max_field_chars, worker_id)
    rng = random.Random(seed)
    field_limit = max(4 * settings.max_field_chars, 1_000_000)
    old_limit = csv.field_size_limit()
    started = time.perf_counter()
    bar = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"importing {p.name}",
        disable=None if progress else True,  # None: off when stderr is not a terminal
        file=sys.stderr,
        leave=False,
    )
    try:
        csv.field_size_limit(field_limit)
        with open(p, "rb") as fh, immediate(engine) as conn:
            if is_postgres(engine):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": IMPORT_LOCK_KEY})
            lines = _Lines(fh, shown)
            if kind == "jsonl":
                records = _jsonl_records(shown, lines)
            else:
                records = _csv_records(p, shown, lines, "\t" if kind == "tsv" else None, field_limit)
            writer = _Writer(conn, result, rng, settings.overlap)
            done_bytes = 0
            for batch in _batches((validator.row(rec) for rec in records), batch_size, result):
                writer.write(batch)
                bar.update(lines.offset - done_bytes)
                done_bytes = lines.offset
                bar.set_postfix(rows=f"{result.rows:,}", refresh=False)
            writer.finish()
            bar.update(size - done_bytes)
    finally:
        csv.field_size_limit(old_limit)
        bar.close()
        if owns_engine:
            engine.dispose()
    result.seconds = time.perf_counter() - started
    return result
