"""domain/links.py: which links a message's text and attachments have, how a batch's links are
tracked (links.track_rows, the one path that makes tokens), and that only tokens we signed,
unaltered, open."""

from __future__ import annotations

import base64
import re
from typing import Any

from broadcaster.domain import links, linktoken
from broadcaster.domain.links import Click

SECRET = "s3cret"
TRACKING = links.Tracking("https://go.example/", SECRET)
TOKEN = re.compile(r"https://go\.example/c/([A-Za-z0-9_-]+)")


def numbered(no: int, url: str) -> str:
    return f"<{no}:{url}>"


def _opened(tok: str) -> str:
    c = links.open_token(SECRET, tok)
    assert isinstance(c, Click), tok
    assert (c.app_id, c.campaign_id, c.target_id, c.test) == (7, "spring", "alice", False)
    return numbered(c.link_no, c.url)


def tracked(text: str, attachments: Any = None) -> tuple[str, Any]:
    """One recipient's text and attachments as the batch path tracks them, each token
    replaced by <link number:URL> it opens to."""
    texts, atts = links.track_rows(TRACKING, 7, "spring", ["alice"], [text], "", attachments)
    assert texts is not None
    att = atts[0] if atts is not None else attachments
    for a in att or []:
        for k, v in a.items():
            if isinstance(v, str):
                a[k] = TOKEN.sub(lambda m: _opened(m.group(1)), v)
    return TOKEN.sub(lambda m: _opened(m.group(1)), texts[0]), att


def test_text_links_are_found_and_trimmed() -> None:
    text = ("See https://shop.example/sale?x=1&y=2. Or (http://a.example/b_(c)) and "
            "https://b.example/path, then ftp://no.example and mailto:x@y.z; https://c.example!")
    assert tracked(text)[0] == (
        "See <0:https://shop.example/sale?x=1&y=2>. Or (<1:http://a.example/b_(c)>) and "
        "<2:https://b.example/path>, then ftp://no.example and mailto:x@y.z; <3:https://c.example>!")


def test_text_without_links_and_our_own_links_are_left_alone() -> None:
    assert tracked("no links here, http:// nor https://")[0] == "no links here, http:// nor https://"
    assert links.track_rows(TRACKING, 7, "spring", ["alice"], None, "no links", []) == (None, None)
    own = "go https://go.example/c/abc and https://x.example"
    texts, _ = links.track_rows(TRACKING, 7, "spring", ["alice"], [own], "", None)
    assert texts is not None and texts[0].startswith("go https://go.example/c/abc and https://go.example/c/")
    assert _opened(TOKEN.findall(texts[0])[1]) == "<0:https://x.example>"


def test_attachment_link_fields_tracked_images_not() -> None:
    att = [{"type": "image", "image_url": "https://img.example/a.png", "title_link": "https://p.example/1",
            "actions": [{"type": "button", "url": "https://p.example/buy"}, "odd"]},
           "not an object", {"og_scrape_url": "https://p.example/2", "thumb_url": "https://img.example/t.png",
                             "url": "javascript:alert(1)"}]
    new, n = links.rewrite_attachments(att, numbered, start=3)
    assert n == 6
    assert new[0] == {"type": "image", "image_url": "https://img.example/a.png", "title_link": "<3:https://p.example/1>",
                      "actions": [{"type": "button", "url": "<4:https://p.example/buy>"}, "odd"]}
    assert new[1] == "not an object"
    assert new[2] == {"og_scrape_url": "<5:https://p.example/2>", "thumb_url": "https://img.example/t.png",
                      "url": "javascript:alert(1)"}
    assert att[0]["title_link"] == "https://p.example/1"  # the template is not modified


def test_text_links_numbered_first_then_attachments_and_has_links() -> None:
    text, att = tracked("a https://x.example b https://y.example", [{"title_link": "https://z.example"}])
    assert text == "a <0:https://x.example> b <1:https://y.example>"
    assert att == [{"title_link": "<2:https://z.example>"}]
    # a constant text is tracked per recipient too, each with its own tokens
    texts, atts = links.track_rows(TRACKING, 7, "spring", ["alice", "bob"], None, "x https://a.example",
                                   [{"url": "https://b.example"}])
    assert texts is not None and atts is not None and texts[0] != texts[1]
    for row, who in ((0, "alice"), (1, "bob")):
        toks = TOKEN.findall(texts[row]) + TOKEN.findall(atts[row][0]["url"])
        assert [links.open_token(SECRET, t) for t in toks] == [
            Click(7, "spring", who, 0, "https://a.example", False), Click(7, "spring", who, 1, "https://b.example", False)]
    assert links.has_links("x https://a.example", [])
    assert links.has_links("none", [{"title_link": "https://a.example"}])
    assert not links.has_links("none", [{"image_url": "https://a.example/i.png"}])


def test_tokens_round_trip_and_refuse_anything_altered() -> None:
    c = Click(7, "spring", "alice", 0, "https://shop.example/a?b=c&d=%20#frag", False)
    texts, _ = links.track_rows(TRACKING, 7, "spring", ["alice"], [f"go {c.url}"], "", None)
    assert texts is not None and texts[0].startswith("go https://go.example/c/")
    tok = TOKEN.findall(texts[0])[0]
    assert links.open_token(SECRET, tok) == c
    assert links.open_token("other-secret", tok) is None
    for i in range(len(tok)):  # every single-character change is refused
        ch = "A" if tok[i] != "A" else "B"
        assert links.open_token(SECRET, tok[:i] + ch + tok[i + 1:]) is None
    assert links.open_token(SECRET, tok[:-1]) is None
    assert links.open_token(SECRET, tok + "A") is None
    for junk in ("", "!!!", "a" * 9000, "a.b", "%2F"):
        assert links.open_token(SECRET, junk) is None
    test_tok = links.token(SECRET, Click(7, "spring", "alice", 0, "https://a.example", True))
    assert links.open_token(SECRET, test_tok).test  # type: ignore[union-attr]
    # the batch path signs a link exactly as links.token does
    assert links.token(SECRET, c) == tok


def test_a_signed_non_http_url_is_refused() -> None:
    # Only track_rows() makes tokens, and only of http(s) links; even if one were signed for
    # another scheme the redirect refuses it.
    tok = links.token(SECRET, Click(1, "c", "u", 0, "javascript:alert(1)", False))
    assert links.open_token(SECRET, tok) is None


def test_token_formats_compact_and_earlier_ones_still_open() -> None:
    for url in ("https://shop.example/x", "http://a.example/(1)", "HTTPS://UPPER.example/p"):
        for test in (False, True):
            c = Click(7, "spring", "alice", 3, url, test)
            tok = links.token(SECRET, c)
            assert links.open_token(SECRET, tok) == c
    # the scheme is a bit of the token, not its 8 characters
    tok = links.token(SECRET, Click(7, "spring", "alice", 0, "https://shop.example/x", False))
    raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    assert b"shop.example/x" in raw and b"https:" not in raw
    # long ids fall back to the v1 format, which opens too (links already delivered carry it)
    long = Click(7, "c" * 300, "alice", 0, "https://a.example", False)
    assert links.open_token(SECRET, links.token(SECRET, long)) == long
    v1 = linktoken._v1(SECRET, 7, "spring", "alice", 1, "https://a.example/", False)
    assert links.open_token(SECRET, v1) == Click(7, "spring", "alice", 1, "https://a.example/", False)
    assert links.open_token("other-secret", v1) is None
