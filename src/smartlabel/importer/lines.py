"""Reading a file: its format, and its lines decoded as UTF-8 (shared by the CSV and JSONL readers),
with the line, column and byte offset of any byte that is not UTF-8 text."""

from __future__ import annotations

import io
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

from smartlabel.errors import ImportFileError
from smartlabel.importer.records import file_error

_CSV_SUFFIXES = {".csv", ".tsv", ".tab", ".txt"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
UTF8_BOM = b"\xef\xbb\xbf"


class Lines:
    """Iterate a binary file as decoded text lines, failing clearly on bytes we cannot take.

    Splitting on b"\\n" is safe for UTF-8 (the byte never occurs inside a multi-byte
    character), so every error can name its line, column and byte offset.

    The file is read and decoded CHUNK bytes (whole lines) at a time; a chunk with a NUL
    byte or a byte that is not UTF-8 is gone through line by line, so its good lines come
    first and the error names the exact place. `offset` (bytes read, for a progress bar)
    and `lineno` (lines read) count whole chunks: they run ahead of the consumer by up to
    one chunk.
    """

    CHUNK = 1 << 20

    def __init__(self, fh, path: str):
        self.fh = fh
        self.path = path
        self.lineno = 0
        self.offset = 0  # bytes consumed

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[Iterable[str]]:
        """The file's lines, a chunk of whole lines at a time."""
        pending: list[bytes] = []  # read, not yet up to a line end
        first = True
        while data := self.fh.read(self.CHUNK):
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                pending.append(data)
                continue
            pending.append(data[:cut])
            part, pending = b"".join(pending), [data[cut:]]
            yield self._decoded(self._first(part) if first else part)
            first = False
        part = b"".join(pending)
        if part:
            yield self._decoded(self._first(part) if first else part)

    def _first(self, part: bytes) -> bytes:
        """The first chunk without its UTF-8 byte-order mark; an error for UTF-16."""
        if part.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise file_error(
                self.path,
                "the file is UTF-16 encoded (starts with a UTF-16 byte-order mark). "
                "Re-save it as UTF-8 (in Excel: 'CSV UTF-8'; or: iconv -f utf-16 -t utf-8 in.csv > out.csv).",
                line=1,
            )
        if part.startswith(UTF8_BOM):
            self.offset += len(UTF8_BOM)
            return part[len(UTF8_BOM):]
        return part

    def _decoded(self, part: bytes) -> Iterable[str]:
        """The lines of `part` (whole lines, or the file's last line), decoded; counted read."""
        start, lineno = self.offset, self.lineno
        self.offset += len(part)
        self.lineno += part.count(b"\n") + (bool(part) and not part.endswith(b"\n"))
        if b"\x00" not in part:
            try:
                return io.StringIO(part.decode("utf-8"), newline="\n")
            except UnicodeDecodeError:
                pass
        return self._line_by_line(part, start, lineno)

    def _line_by_line(self, part: bytes, offset: int, lineno: int) -> Iterator[str]:
        """The lines of `part` one at a time, up to the first bad one, which is an error."""
        path = self.path
        for raw in io.BytesIO(part):
            start = offset
            lineno += 1
            offset += len(raw)
            if b"\x00" in raw:
                at = raw.index(b"\x00")
                col = len(raw[:at].decode("utf-8", "replace")) + 1
                raise file_error(
                    path,
                    f"NUL byte (0x00) at byte offset {start + at}: this is not a text file, or it is "
                    "UTF-16 or damaged. Re-save it as UTF-8 text (in Excel: 'CSV UTF-8'), or remove "
                    "the NUL bytes (tr -d '\\000' < in > out).",
                    line=lineno,
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
                    line=lineno,
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

