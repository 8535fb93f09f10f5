"""Reading JSON Lines: one object per line, keys matched to the known columns."""

from __future__ import annotations

import json

from smartlabel.importer.lines import Lines
from smartlabel.importer.records import REQUIRED_COLUMNS, Record, canonical, file_error


class _NotJSON(ValueError):
    pass


def _reject_constant(name: str):
    raise _NotJSON(name)  # NaN, Infinity, -Infinity: Python accepts them, JSON does not


def jsonl_records(shown: str, lines: Lines):
    rows = 0
    keymaps: dict[tuple, tuple[dict[str, str], list[str]]] = {}
    for line_text in lines:
        lineno = lines.lineno
        if not line_text.strip():
            continue
        try:
            obj = json.loads(line_text.rstrip("\r\n"), parse_constant=_reject_constant)
        except _NotJSON as exc:
            raise file_error(
                shown,
                f"{exc} is not valid JSON (the database would refuse it): write null or a string.",
                line=lineno,
            ) from None
        except json.JSONDecodeError as exc:
            if rows == 0 and line_text.lstrip().startswith("["):
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
        keys = tuple(obj)
        km = keymaps.get(keys)
        if km is None:
            canon: dict[str, str] = {}
            extras: list[str] = []
            for k in keys:
                c = canonical(k)
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
            raise file_error(
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
                raise file_error(
                    shown,
                    f"{k!r} must be a string, found {json.dumps(v)[:60]}.",
                    line=lineno,
                )
            elif not isinstance(v, str):
                v = str(v)
            if "\x00" in v:
                raise file_error(
                    shown,
                    f"{k!r} contains a NUL character (\\u0000), which the database cannot store: remove it.",
                    line=lineno,
                )
            values[c] = v
        extra = {k: obj[k] for k in extras} if extras else None
        rows += 1
        yield Record(lineno, lineno, values, extra, {c: f"{k!r}" for c, k in canon.items()})
    if rows == 0:
        raise file_error(
            shown,
            "the file is empty. A JSON Lines file needs one object per line, e.g. "
            '{"title": "...", "selftext": "..."}.',
        )
