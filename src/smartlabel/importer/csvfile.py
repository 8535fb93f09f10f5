"""Reading CSV: header, column matching, rows as `Record`s, and CSV errors explained."""

from __future__ import annotations

import csv
import difflib
from pathlib import Path

from smartlabel.importer.lines import Lines
from smartlabel.importer.records import REQUIRED_COLUMNS, Record, canonical, file_error

# column names other tools use for the required columns: named in the error's hint
_SYNONYMS = {
    "title": ["headline", "subject", "heading", "name"],
    "selftext": ["body", "text", "content", "post", "message", "description", "self_text"],
}



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


def csv_records(path: Path, shown: str, lines: Lines, delimiter: str | None, field_limit: int):
    it = iter(lines)
    first = next(it, None)
    if first is None or not first.strip():
        rest_blank = first is not None and all(not ln.strip() for ln in it)
        if first is None or rest_blank:
            raise file_error(
                shown,
                "the file is empty. A CSV file needs a header line such as 'title,selftext' and one "
                "line per post below it.",
            )
        raise file_error(shown, "the first line (the header) is blank: put the column names on line 1.", line=1)
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
        raise file_error(shown, f"the header line cannot be read as CSV ({exc}).", line=1) from None
    names = [h.strip() for h in header]
    canon: dict[str, int] = {}
    seen: dict[str, int] = {}
    extras: list[tuple[int, str]] = []
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
        c = canonical(name)
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
        raise file_error(
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
                raise file_error(
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
            yield Record(start, end, rec_values, extra, colname)
    except csv.Error as exc:
        msg = str(exc)
        start = prev_end + 1
        if "unexpected end of data" in msg:
            line_text = _read_line(path, start)
            fno = _find_open_quote(line_text, delimiter)
            where = f"{fno} ({names[fno - 1]})" if fno and fno <= len(names) else None
            raise file_error(
                shown,
                "a double quote opened here is never closed, so the rest of the file was read as "
                "one field. Add the missing closing quote (\"), and write a quote inside a quoted "
                'field as two quotes ("").',
                line=start,
                column=where,
            ) from None
        if "field larger than field limit" in msg:
            raise file_error(
                shown,
                f"a field longer than {field_limit:,} characters starts in the record here: most "
                "likely a double quote that is never closed (add the closing quote), otherwise a "
                "text far over MAX_FIELD_CHARS.",
                line=start,
            ) from None
        if "expected after" in msg:
            raise file_error(
                shown,
                "text follows the closing quote of a quoted field. A double quote inside a quoted "
                'field must be written as two quotes (""), e.g. "He said ""hi""".',
                line=reader.line_num,
            ) from None
        raise file_error(shown, f"not valid CSV ({msg}).", line=reader.line_num) from None
    if rows == 0:
        raise file_error(shown, "the file has a header but no rows: there is nothing to import.")
