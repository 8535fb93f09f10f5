"""Validation: a `Record` becomes a `Row` to write (lengths, ids, labels checked), or None when empty."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from smartlabel.importer.records import ID_MAX_CHARS, Record, file_error
from smartlabel.text import clean_text, content_hash


def clean_selftext_of(selftext: str, clean_selftext: str | None) -> str:
    """The model's text of a post: the file's `clean_selftext`, or `clean_text(selftext)`
    when the file has none or leaves it empty (the importer's rule; simulate uses it too)."""
    if clean_selftext is not None and clean_selftext.strip():
        return clean_selftext
    return clean_text(selftext)


@dataclass
class Row:
    """A valid post of the file, ready to write; `clean_selftext` None: computed if the post is new."""

    line: int
    external_id: str | None
    title: str
    selftext: str
    clean_selftext: str | None
    extra: dict | None
    hash: str
    label: str | None
    worker_id: str


class Validator:
    """Checks Records against the settings: LABELS (case forgiven, close matches suggested),
    MAX_FIELD_CHARS, the id length limit; `default_worker` labels rows without a worker_id."""

    def __init__(self, shown: str, labels: list[str], max_chars: int, default_worker: str):
        self.shown = shown
        self.labels = list(labels)
        self.exact = set(labels)
        self.folded = {}
        for lab in labels:
            self.folded.setdefault(lab.casefold(), []).append(lab)
        self.max_chars = max_chars
        self.default_worker = default_worker

    def _too_long(self, rec: Record, column: str, value: str, limit: int, setting: str):
        raise file_error(
            self.shown,
            f"{len(value):,} characters, more than {setting}={limit:,}. Shorten the text"
            + (", or raise MAX_FIELD_CHARS." if setting == "MAX_FIELD_CHARS" else "."),
            line=rec.line,
            end_line=rec.end_line,
            column=column,
        )

    def label(self, rec: Record, raw: str) -> str:
        """The label of LABELS that `raw` names, or an error suggesting the closest one."""
        value = raw.strip()
        if value in self.exact:
            return value
        folded = self.folded.get(value.casefold())
        if folded and len(folded) == 1:
            return folded[0]
        close = difflib.get_close_matches(value, self.labels, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        allowed = ", ".join(repr(x) for x in self.labels)
        raise file_error(
            self.shown,
            f"label {value!r} is not one of LABELS: {allowed}.{hint} Fix the label in the file, "
            "or add it to LABELS (setting) if it is a tag you want.",
            line=rec.line,
            end_line=rec.end_line,
            column=rec.columns.get("label"),
        )

    def row(self, rec: Record) -> Row | None:
        """The Row to write, None for a row with neither title nor selftext, or an error."""
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
        return Row(rec.line, ext, title, selftext, clean, rec.extra, content_hash(title, selftext), label, worker)
