"""importer.lines.Lines reads a file a chunk at a time: the lines it yields, and the error for a
NUL byte, a byte that is not UTF-8 or a UTF-16 file, are those of reading it line by line,
wherever the chunk boundaries fall (inside a line, inside a multi-byte character, at the end)."""

from __future__ import annotations

import io
import random

import pytest

from smartlabel.errors import ImportFileError
from smartlabel.importer.lines import UTF8_BOM, Lines

PIECES = [b"a", b"word ", b",", b'"', b"\r", b"\n", b"\r\n", "\u00e9".encode(), "\u4e2d".encode(),
          "\U0001f600".encode(), b"\t", b"  "]
BAD = [b"\x00", b"\xff", b"\xe9", "\u00e9".encode()[:1], b"\xed\xa0\x80"]


def read_all(data: bytes, chunk: int):
    """(lines, error message or None, lineno, offset) reading `data` with Lines.CHUNK = chunk."""
    lines = Lines(io.BytesIO(data), "f.csv")
    lines.CHUNK = chunk
    out = []
    try:
        for line in lines:
            out.append(line)
    except ImportFileError as exc:
        return out, str(exc), None, None
    return out, None, lines.lineno, lines.offset


def by_line(data: bytes) -> list[str]:
    body = data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data
    return [raw.decode("utf-8") for raw in io.BytesIO(body)]


def random_file(rng: random.Random, bad: bool) -> bytes:
    data = b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 300)))
    if rng.random() < 0.3:
        data = UTF8_BOM + data
    if bad:
        at = rng.randint(0, len(data))
        data = data[:at] + rng.choice(BAD) + data[at:]
    return data


@pytest.mark.parametrize("seed", range(40))
def test_chunks_give_the_lines_and_errors_of_reading_line_by_line(seed):
    rng = random.Random(seed)
    for _ in range(25):
        bad = rng.random() < 0.4
        data = random_file(rng, bad)
        whole = read_all(data, 1 << 30)  # one chunk: a bad chunk is read line by line, as before
        if whole[1] is None:
            assert whole[0] == by_line(data)
            assert (whole[2], whole[3]) == (len(whole[0]), len(data))
        for chunk in (1, 2, 3, 7, 64):
            assert read_all(data, chunk) == whole, (data, chunk)


def test_the_good_lines_before_a_bad_byte_come_first_and_the_error_names_its_place():
    data = b"one\ntwo \xc3\xa9\nthr\xe9e\nfour\n"  # line 3 is Latin-1
    lines, error, _, _ = read_all(data, 1 << 20)
    assert lines == ["one\n", "two \u00e9\n"]
    assert error.startswith("f.csv, line 3, column 4: byte 0xe9 at byte offset 14 is not valid UTF-8")


def test_utf16_is_refused_even_without_a_line_end():
    for data in (b"\xff\xfet\x00i\x00", b"\xff\xfet\x00\n\x00i\x00"):
        _, error, _, _ = read_all(data, 2)
        assert error.startswith("f.csv, line 1: the file is UTF-16 encoded")
