"""clean_text against the regex-only version it replaced (kept here as the reference, nowhere
else): byte-identical output on a large varied corpus, so no stored clean_selftext changes.

The corpus is built from pieces that each rule reacts to (HTML tags, entities, comments,
script blocks, markdown links and images, URLs, digit groups, apostrophes of every kind,
underscores, Unicode letters, digits and spaces, zero-width characters, control characters,
lone surrogates), joined in random order with random separators, plus random code points and
the import benchmark's Reddit-like bodies. The faster version takes other paths for ASCII and
for other text, so the corpus holds plenty of both.
"""

from __future__ import annotations

import html
import random
import re
import sys
from pathlib import Path

import pytest

from smartlabel.text import clean_text

# --- the reference: clean_text as it was before the ASCII fast path (do not use elsewhere) ---
_R_HTML_TAGS = (
    "a abbr b big blockquote body br center code del div em font h1 h2 h3 h4 h5 h6 head hr "
    "html i img ins kbd li mark ol p pre q s script small span strike strong style sub sup "
    "table tbody td tfoot th thead title tr tt u ul"
).split()
_R_REMOVED = re.compile(r"\A\s*\[(?:removed|deleted)\]\s*\Z", re.IGNORECASE)
_R_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_R_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_R_HTML_TAG = re.compile(
    r"</?(?:%s)\b(?:\s[^<>]*)?/?>" % "|".join(sorted(_R_HTML_TAGS, key=len, reverse=True)), re.IGNORECASE)
_R_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_R_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'()\[\]]*", re.IGNORECASE)
_R_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_R_NOISE = re.compile(r"(?:[^\w\s']|_)+")
_R_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_R_SPACE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")
_R_CURLY_APOSTROPHE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def reference_clean_text(raw):
    if not raw:
        return ""
    text = str(raw)
    if _R_REMOVED.match(text):
        return ""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _R_HTML_COMMENT.sub(" ", text)
        text = _R_SCRIPT_STYLE.sub(" ", text)
        text = _R_HTML_TAG.sub(" ", text)
    if "](" in text:
        text = _R_MD_LINK.sub(r" \1 ", text)
    text = text.lower()
    if "http" in text or "www." in text:
        text = _R_URL.sub(" ", text)
    if "," in text:
        text = _R_THOUSANDS.sub("", text)
    text = _R_NOISE.sub(" ", text.translate(_R_CURLY_APOSTROPHE))
    if "'" in text:
        text = _R_LOOSE_APOSTROPHE.sub(" ", text)
    return _R_SPACE.sub(" ", text).strip()
# --- end of the reference ---


WORDS = ["the", "Post", "HELLO", "don't", "rock'n'roll", "'tis", "isn't'", "''", "'", "o'", "a'b'c",
         "snake_case", "__init__", "_", "x_1", "CamelCase", "ABC123", "42", "3.14", "v2.0", "e.g.",
         "U.S.A.", "it's", "rock-'n'-roll", "'quoted'", "\"dq\"", "10%", "$5", "#tag", "@user", "a/b",
         "back\\slash", "x^2", "a+b=c", "~~gone~~", "**bold**", "_it_", "`code`", "```", "|", "| a | b |",
         "# Heading", "> quote", "* item", "- item", "1. item", "...", "?!?!", "--", "\u2014", "\u2026"]
UNICODE = ["Caf\u00e9", "NA\u00cfVE", "\u6771\u4eac", "\u00df", "STRASSE", "\u0130stanbul", "\u212a",
           "\ufb01ne", "\u03a3\u03bf\u03c6\u03af\u03b1", "\u041c\u043e\u0441\u043a\u0432\u0430",
           "\u0645\u0631\u062d\u0628\u0627", "\u0928\u092e\u0938\u094d\u0924\u0947", "e\u0301",
           "\U0001f600", "\U0001f44d\U0001f3fd", "\u00b2", "\u00bd", "\u216b", "\u0967\u0968\u0969",
           "\u0663,\u0660\u0660\u0660", "\uff26\uff55\uff4c\uff4c", "don\u2019t", "\u2018single\u2019",
           "\u02bcokina", "\u201cquotes\u201d", "\u00ab\u00bb", "\u00a9", "\u2122", "\u00b0C", "\u20ac5",
           "\u00c6on", "\u0133", "\u1e9e", "\u01c5", "\u2160"]
SPACES = [" ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0",
          "\u1680", "\u2002", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
          "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\x00", "\x01", "\x7f", "\x9f",
          "\ud800", "\udfff"]
NUMBERS = ["1,000", "12,34", "1,0000", "5,988,123", ",000", "1,", ",", "1,00", "1,001,430;", "0,123,45",
           "\u0663,\u0660\u0660\u0660", "1,\u0660\u0660\u0660", "\u00b2,000", "a1,000", "1,000a", "1,000_"]
HTML = ["<p>", "</p>", "<br/>", "<br />", "<BR>", "<a href=\"http://x.y/z\">", "</a>", "<img src=x onerror=alert(1)>",
        "<script>var a = '<b>';</script>", "<style>p{}</style>", "<STYLE type=x>a</style >", "<script>",
        "</script>", "<!-- c -->", "<!--", "-->", "<Sedio N.V.>", "<TXC>", "< b >", "<b", "<", ">", "<>",
        "<div class='x'>", "<span\nstyle=x>", "<h1>", "<custom-tag>", "<abbr>", "<bigger>", "<a>", "</ a>",
        "<b/>", "<i >", "<table><tr><td>", "<p<b>>", "<a href='x>y'>", "<ul\t>", "<p>\u00e9</p>"]
ENTITIES = ["&amp;", "&lt;b&gt;", "&#x200B;", "&#8217;", "&nbsp;", "&amp", "&#;", "&#x;", "&notanentity;",
            "&copy", "&AMP;", "&#0;", "&#xD800;", "&#1114112;", "&lt;script&gt;x&lt;/script&gt;", "&quot;",
            "&#39;", "&apos;", "&rsquo;", "&lsquo;", "&#700;", "&eacute;", "&Eacute;", "&#65;", "&#x41;",
            "&lt;!-- x --&gt;", "&amp;amp;", "&", "&&", "&#", "&lt;", "&gt;", "&lt;p", "&#x2019;"]
MARKDOWN = ["[text](http://x.y)", "![alt](http://i.x/p.png \"title\")", "[a](b)", "[](x)", "[x]( y)",
            "[x](y z)", "[[x]](y)", "[x\ny](z)", "](", "[", "]", "(", ")", "[text](url_(v2))", "![](x)", "!",
            "![x]", "!![x](y)", "[x](y)[z](w)", "[a'b](c)", "[1,000](x)", "[http://a.b](http://a.b)",
            "[x](http://a.b \"t\" )", "[x](\"q\")", "![\u00e9](x)", "[x](www.a.b)", "[x]\n(y)", "[x] (y)"]
URLS = ["http://example.com", "HTTPS://EXAMPLE.COM/Path?q=1&r=2", "www.Example.org/x", "wwwxcom", "http",
        "https:/", "http://", "ftp://x.y", "mailto:a@b.c", "www.", "(http://x.y)", "http://x.y/'quoted'",
        "<http://x.y>", "http://x.y\u00e9", "https://x.y/a_b-c~d", "http://x.y/[1]", "HtTp://x", "WWW.X.Y",
        "http://1,000.x", "www.x.y/don't", "https://x.y/\u2019"]
REDDIT = ["[removed]", "[deleted]", " [Removed] ", "[removed] by a moderator", "[DELETED]\n"]
KINDS = [WORDS, WORDS, WORDS, UNICODE, SPACES, NUMBERS, HTML, ENTITIES, MARKDOWN, URLS]


def varied_texts(n: int, seed: int, ascii_share: float = 0.5) -> list[str]:
    """`n` texts of random pieces; about `ascii_share` of them drawn from ASCII pieces only."""
    rng = random.Random(seed)
    ascii_kinds = [[p for p in kind if p.isascii()] for kind in KINDS]
    out = list(REDDIT)
    while len(out) < n:
        kinds = ascii_kinds if rng.random() < ascii_share else KINDS
        parts = []
        for _ in range(rng.randint(1, 30)):
            parts.append(rng.choice(rng.choice(kinds)))
            parts.append(rng.choice(["", " ", " ", " ", "\n", ",", "'", "."]))
        text = "".join(parts)
        if rng.random() < 0.1:  # one kind only, dense: long runs of the same rule
            kind = rng.choice(kinds)
            text = "".join(rng.choice(kind) for _ in range(rng.randint(1, 40)))
        out.append(text)
    return out


def random_code_points(n: int, seed: int) -> list[str]:
    """Texts of random characters from the ranges where the categories are most mixed."""
    rng = random.Random(seed)
    ranges = [(0, 0x7F), (0, 0x7F), (0x80, 0x2FF), (0x2000, 0x206F), (0x3000, 0x303F), (0xFE00, 0xFFFF),
              (0x1F300, 0x1F6FF), (0x0600, 0x06FF), (0x0900, 0x097F), (0xD800, 0xDFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        chars = [chr(rng.randint(lo, hi)) if rng.random() < 0.7 else rng.choice(" 'a1,<>&[]()!") for _ in
                 range(rng.randint(1, 60))]
        out.append("".join(chars))
    return out


def benchmark_bodies(n: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        import bench_import
    finally:
        sys.path.pop(0)
    rng = random.Random(5)
    bodies = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(40, 160)):
            word = rng.choice(bench_import.WORDS)
            if rng.random() < 0.05:
                word = rng.choice(bench_import.DECOR).format(word, word)
            words.append(word)
        bodies.append(" ".join(words))
    return bodies


@pytest.mark.parametrize("corpus", ["varied-ascii", "varied-unicode", "code-points", "benchmark"])
def test_clean_text_is_byte_identical_to_the_reference(corpus):
    texts = {
        "varied-ascii": lambda: varied_texts(15_000, seed=1, ascii_share=0.9),
        "varied-unicode": lambda: varied_texts(15_000, seed=2, ascii_share=0.1),
        "code-points": lambda: random_code_points(10_000, seed=3),
        "benchmark": lambda: benchmark_bodies(3_000),
    }[corpus]()
    mismatches = [(t, reference_clean_text(t), clean_text(t)) for t in texts if clean_text(t) != reference_clean_text(t)]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:3]}"
    # the corpus reaches both paths and every rule
    assert sum(t.isascii() for t in texts) > len(texts) // 20 or corpus == "code-points"
    if corpus.startswith("varied"):
        for trigger in ("&", "<", "](", "http", "www.", ",", "'", "_"):
            assert sum(trigger in t for t in texts) > 200, trigger


def test_the_reference_still_differs_from_a_wrong_cleaner():
    """The comparison can fail: dropping the apostrophe rule changes many outputs."""
    texts = varied_texts(2_000, seed=4)
    wrong = [reference_clean_text(t.replace("'", "")) for t in texts]
    assert sum(w != clean_text(t) for w, t in zip(wrong, texts)) > 100
