"""Reading a file: its format, and its lines decoded as UTF-8 (shared by the CSV and JSONL readers),
with the line, column and byte offset of any byte that is not UTF-8 text."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from smartlabel.errors import ImportFileError
from smartlabel.importer.records import file_error

_CSV_SUFFIXES = {".csv", ".tsv", ".tab", ".txt"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
UTF8_BOM = b"\xef\xbb\xbf"


class Lines:
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
                    raise file_error(
                        path,
                        "the file is UTF-16 encoded (starts with a UTF-16 byte-order mark). "
                        "Re-save it as UTF-8 (in Excel: 'CSV UTF-8'; or: iconv -f utf-16 -t utf-8 in.csv > out.csv).",
                        line=1,
                    )
                if raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM):]
                    start += len(UTF8_BOM)
            if b"\x00" in raw:
                at = raw.index(b"\x00")
                col = len(raw[:at].decode("utf-8", "replace")) + 1
                raise file_error(
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
                raise file_error(
                    path,
                    f"byte 0x{bad} at byte offset {start + exc.start} is not valid UTF-8. The file is "
                    "probably in another encoding (Windows-1252 or Latin-1 are common): re-save it as "
                    "UTF-8 (in Excel: 'CSV UTF-8'; or: iconv -f cp1252 -t utf-8 in.csv > out.csv).",
                    line=self.lineno,
                    column=str(col),
                ) from None


def detect_format(path: Path, forced: str | None) -> str:
    """'csv', 'tsv' or 'jsonl': `forced` if given, else from the file name, else from its first bytes."""
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
        head = fh.read(4096).lstrip(UTF8_BOM).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"

