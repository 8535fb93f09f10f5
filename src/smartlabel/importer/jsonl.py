"""Reading JSON Lines: one object per line, its keys matched to the known columns."""

from __future__ import annotations

import json
from typing import Any, Iterator

from smartlabel.importer.lines import Lines
from smartlabel.importer.records import REQUIRED_COLUMNS, Record, file_error, match_columns

_KeyMap = tuple[dict[str, str], list[str]]  # (known name -> the object's key, the other keys)


class _NotJSON(ValueError):
    pass


def _reject_constant(name: str):
    raise _NotJSON(name)  # NaN, Infinity, -Infinity: Python accepts them, JSON does not


def jsonl_records(shown: str, lines: Lines) -> Iterator[Record]:
    """The objects of a JSON Lines file as Records (blank lines skipped); an error if there are none."""
    rows = 0
    keymaps: dict[tuple, _KeyMap] = {}  # objects of one file mostly share their keys
    for lineno, line_text in enumerate(lines, 1):
        if not line_text.strip():
            continue
        obj = _parse(shown, line_text, lineno, first=rows == 0)
        keys = tuple(obj)
        if keys not in keymaps:
            match = match_columns(keys)
            keymaps[keys] = ({c: keys[i] for c, i in match.canon.items()}, [keys[i] for i in match.extras])
        canon, extras = keymaps[keys]
        missing = [c for c in REQUIRED_COLUMNS if c not in canon]
        if missing:
            raise file_error(
                shown,
                f"missing key{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
                f"(found: {', '.join(repr(k) for k in keys) or 'none'}). Every line needs 'title' and "
                "'selftext'; use \"\" where a post has no title or no body.",
                line=lineno,
            )
        values = {c: _text(shown, k, obj[k], lineno) for c, k in canon.items()}
        extra = {k: obj[k] for k in extras} if extras else None
        rows += 1
        yield Record(lineno, lineno, values, extra, {c: f"{k!r}" for c, k in canon.items()})
    if rows == 0:
        raise file_error(
            shown,
            "the file is empty. A JSON Lines file needs one object per line, e.g. "
            '{"title": "...", "selftext": "..."}.',
        )


def _parse(shown: str, line_text: str, lineno: int, first: bool) -> dict:
    """The JSON object on this line, or an error saying what is wrong with it."""
    try:
        obj = json.loads(line_text.rstrip("\r\n"), parse_constant=_reject_constant)
    except _NotJSON as exc:
        raise file_error(
            shown,
            f"{exc} is not valid JSON (the database would refuse it): write null or a string.",
            line=lineno,
        ) from None
    except json.JSONDecodeError as exc:
        if first and line_text.lstrip().startswith("["):
            raise file_error(
                shown,
                "this looks like a JSON array of posts, which is not supported: write one JSON "
                "object per line (JSON Lines), e.g. with: jq -c '.[]' posts.json > posts.jsonl",
                line=lineno,
            ) from None
        raise file_error(
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
        raise file_error(shown, f"expected a JSON object, found {kind}.{hint}", line=lineno)
    return obj


def _text(shown: str, key: str, value: Any, lineno: int) -> str:
    """A known column's value as text: null is "", numbers are written out, anything else is an error."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise file_error(shown, f"{key!r} must be a string, found {json.dumps(value)[:60]}.", line=lineno)
    value = value if isinstance(value, str) else str(value)
    if "\x00" in value:
        raise file_error(
            shown,
            f"{key!r} contains a NUL character (\\u0000), which the database cannot store: remove it.",
            line=lineno,
        )
    return value
