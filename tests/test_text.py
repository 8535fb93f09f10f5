"""smartlabel.text: the cleaning rules, the model input and the content hash."""

import pytest

from smartlabel.text import clean_text, content_hash, model_input


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello   WORLD", "hello world"),
        ("", ""),
        (None, ""),
        ("[removed]", ""),
        (" [Deleted] \n", ""),
        ("[removed] by a moderator", "removed by a moderator"),
        # URLs go, markdown link text stays
        ("see https://example.com/a?b=1&c=2 and www.Example.org/x now", "see and now"),
        ("read [the guide](https://example.com/guide_(v2)) first", "read the guide first"),
        ("![alt text](http://i.imgur.com/x.png)", "alt text"),
        # HTML entities and tags; angle-bracket words that are not HTML stay
        ("Tom &amp; Jerry&#x200B;&nbsp;show", "tom jerry show"),
        ("<p>Hi<br/>there</p><!-- hidden -->", "hi there"),
        ('<a href="https://x.y">click</a>', "click"),
        ("<script>alert(1)</script>safe", "safe"),
        ("&lt;b&gt;bold&lt;/b&gt;", "bold"),
        ("Sandoz sold it to <Sedio N.V.> <TXC>", "sandoz sold it to sedio n v txc"),
        ("if a < b and c > d", "if a b and c d"),
        # markdown syntax
        ("# Heading\n> quote\n* item\n- item\n1. item\n`code` **bold** _it_ ~~gone~~ | a | b |",
         "heading quote item item 1 item code bold it gone a b"),
        # punctuation noise, apostrophes, numbers
        ("Wait...what?!?! Really???", "wait what really"),
        ("don't 'quoted' rock'n'roll don\u2019t 'tis", "don't quoted rock'n'roll don't tis"),
        ("snake_case and CamelCase", "snake case and camelcase"),
        ("5,988 tons vs 1,001,430; 5.93 mln; 12,34", "5988 tons vs 1001430 5 93 mln 12 34"),
        # unicode letters are letters; odd spaces collapse
        ("Caf\u00e9 NA\u00cfVE \u6771\u4eac\u00a0x\u200by\tz\r\n", "caf\u00e9 na\u00efve \u6771\u4eac x y z"),
    ],
)
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_is_idempotent_on_its_output():
    raw = "A **messy** post: http://x.y &amp; <i>more</i>... don't stop!"
    once = clean_text(raw)
    assert clean_text(once) == once


def test_model_input_is_title_space_clean_selftext():
    assert model_input("My Title", "body words") == "My Title body words"
    assert model_input("Only title", "") == "Only title "
    assert model_input(None, None) == " "


def test_content_hash_identifies_title_and_body():
    h = content_hash("t", "body")
    assert len(h) == 64 and int(h, 16) >= 0
    assert content_hash("t", "body") == h
    # same text with Windows line endings or outer whitespace is the same post
    assert content_hash(" t ", "line1\r\nline2") == content_hash("t", "line1\nline2")
    # the title/body boundary matters; the body matters
    assert content_hash("ab", "c") != content_hash("a", "bc")
    assert content_hash("t", "body") != content_hash("t", "Body")
