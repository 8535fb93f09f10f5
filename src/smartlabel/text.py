"""Text cleaning (`clean_selftext`) and model-input assembly.

The article keeps three columns per post: `title`, `selftext` (the raw body a
labeller reads) and `clean_selftext` (what the model sees), and feeds the model
`title + " " + clean_selftext`. When a file has no `clean_selftext`, the
importer computes it with `clean_text` below. The rules, in order:

1. Reddit placeholders: a body that is exactly ``[removed]`` or ``[deleted]`` is empty.
2. HTML: comments and tags with a known HTML tag name (``<p>``, ``<br/>``,
   ``<a href=...>``) are removed; other angle-bracket text is kept as words
   (news wires write company names and tickers as ``<Sedio N.V.>``, ``<TXC>``).
   Entities (``&amp;``, ``&#x200B;``, ``&nbsp;``) are decoded first, so
   escaped tags (``&lt;b&gt;``) are removed too.
3. URLs (``http://``, ``https://``, ``www.``) are removed; a markdown link
   ``[text](url)`` keeps its text.
4. Markdown syntax (headings ``#``, quotes ``>``, list bullets, emphasis
   ``* _ ~``, code backticks, table pipes) disappears with the punctuation.
5. Lower-case; digit-group commas go (``1,001,430`` becomes ``1001430``);
   every character that is not a letter, a digit or an apostrophe inside a
   word becomes a space (so ``don't`` stays, ``'quoted'`` loses its quotes,
   ``5.93`` becomes ``5 93``).
6. Runs of whitespace (including zero-width and non-breaking spaces) collapse to
   one space; the result has no leading or trailing space.

It is a handful of precompiled regular expressions, each skipped when its
trigger character is absent; rules 4-6 are one translation of the UTF-8 bytes
and a split, with the regular expressions only for the words holding non-ASCII
characters: about 100,000 Reddit-sized ASCII bodies per second on one core
(40,000 with a few non-ASCII words). The function is pure and deterministic, so
`aldata.csv` can be rebuilt byte for byte (tests/test_text_reference.py holds it
to the regex-only version it replaced, on a large varied corpus).
"""

from __future__ import annotations

import hashlib
import html
import re

__all__ = ["clean_text", "model_input", "content_hash"]

# Tags real posts contain (Reddit's HTML export, web pages, rich-text editors).
_HTML_TAGS = (
    "a abbr b big blockquote body br center code del div em font h1 h2 h3 h4 h5 h6 head hr "
    "html i img ins kbd li mark ol p pre q s script small span strike strong style sub sup "
    "table tbody td tfoot th thead title tr tt u ul"
).split()

_REMOVED = re.compile(r"\A\s*\[(?:removed|deleted)\]\s*\Z", re.IGNORECASE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# script/style bodies are code, not text: drop them with their tags
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(
    r"</?(?:%s)\b(?:\s[^<>]*)?/?>" % "|".join(sorted(_HTML_TAGS, key=len, reverse=True)),
    re.IGNORECASE,
)
# an image's "!" is left in front of the text: it is punctuation, which goes anyway (rule 4),
# and a pattern that starts with a literal "[" is found by a fast scan
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'()\[\]]*", re.IGNORECASE)
# a comma between a digit and exactly three digits (the comma first: found by a fast scan)
_THOUSANDS = re.compile(r",(?<=\d,)(?=\d{3}(?!\d))")
# anything that is not a word character, whitespace or an apostrophe; and underscores
_NOISE = re.compile(r"(?:[^\w\s']|_)+")
# apostrophes not between two word characters
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_CURLY_APOSTROPHE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
# Rules 4-6 on the UTF-8 bytes: every ASCII byte but a letter, a digit or an apostrophe becomes
# a space (punctuation, underscores, and whitespace, which rule 6 collapses anyway); bytes of
# other characters stay, and the words holding them get the regular expressions above
_ASCII_NOISE = bytes(b if chr(b).isalnum() or b == ord("'") or b >= 0x80 else ord(" ") for b in range(256))
# an apostrophe with no letter, digit (or non-ASCII character: decided in its word) on one side
_ASCII_LOOSE_APOSTROPHE = re.compile(rb"(?<![a-zA-Z0-9\x80-\xff])'|'(?![a-zA-Z0-9\x80-\xff])")


def clean_text(raw: str | None) -> str:
    """The model-ready form of a post body (`clean_selftext`); see the module docstring.

    >>> clean_text("Check **this** out: https://example.com/x?y=1 &amp; <b>don't</b> miss it!!")
    "check this out don't miss it"
    """
    if not raw:
        return ""
    text = str(raw)
    if _REMOVED.match(text):
        return ""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _HTML_COMMENT.sub(" ", text)
        text = _SCRIPT_STYLE.sub(" ", text)
        text = _HTML_TAG.sub(" ", text)
    if "](" in text:
        text = _MD_LINK.sub(r" \1 ", text)
    text = text.lower()
    if "http" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "," in text:
        text = _THOUSANDS.sub("", text)
    data = text.encode("utf-8", "surrogatepass").translate(_ASCII_NOISE)
    if b"'" in data:
        data = _ASCII_LOOSE_APOSTROPHE.sub(b" ", data)
    words = data.split()
    if not text.isascii():
        words = [w for word in words for w in ((word,) if word.isascii() else _unicode_words(word))]
    return b" ".join(words).decode("utf-8", "surrogatepass")


def _unicode_words(word: bytes) -> list[bytes]:
    """Rules 4-6 on one space-free piece of the text that holds non-ASCII characters: the
    result is the same as on the whole text, since the spaces around it are no word characters."""
    text = word.decode("utf-8", "surrogatepass")
    if "\u2019" in text or "\u2018" in text or "\u02bc" in text:
        text = text.translate(_CURLY_APOSTROPHE)
    text = _NOISE.sub(" ", text)
    if "'" in text:
        text = _LOOSE_APOSTROPHE.sub(" ", text)
    # zero-width spaces (and lone surrogates) went with the noise; str.split finds the rest of
    # the whitespace exactly as the regular expressions' \s does
    return [w.encode() for w in text.split()]


def model_input(title: str | None, clean_selftext: str | None) -> str:
    """What the model reads for one post, as in the article: `title + " " + clean_selftext`."""
    return f"{title or ''} {clean_selftext or ''}"


def _normalise_for_hash(value: str | None) -> str:
    return (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def content_hash(title: str | None, selftext: str | None) -> str:
    """sha256 (hex) identifying a post by its text, used to skip posts already imported.

    Title and body are compared after trimming outer whitespace and unifying line
    endings (a file re-saved on Windows is still the same posts), and are joined
    by a separator no text contains, so ("ab", "c") and ("a", "bc") differ.
    """
    key = _normalise_for_hash(title) + "\x1f" + _normalise_for_hash(selftext)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
