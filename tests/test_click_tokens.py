"""v3 click tokens (domain/linkbatch): the links written literally in a campaign's template get
a short token without the URL, opened against the stored template's literal links; templated
links keep their v2 token with the URL; anything altered is refused by its MAC (nothing read
from the database for it), and a template that no longer has the link at that place is
refused too; earlier tokens still open."""

from __future__ import annotations

import base64
import re

from broadcaster.domain import links, linktoken
from broadcaster.domain.links import Click, Ref

SECRET = "s3cret"
TRACKING = links.Tracking("https://go.example", SECRET)
TEMPLATE = {
    "text": "base https://base.example/x",
    "attachments": [{"title_link": "https://att.example/a", "image_url": "https://img.example/i.png"}],
    "variants": [
        {"id": "a", "text": "Hi {{ receiver.name }}: https://shop.example/spring?u={{ receiver.id }} or https://shop.example/b."},
        {"id": "b", "text": "{% if x %}https://cond.example/{% endif %} https://shop.example/faq and https://x.example/{{ receiver.id }}"},
    ],
}
TOKEN = re.compile(r"https://go\.example/c/([A-Za-z0-9_-]+)")


def _open(tok: str, lits: tuple[str, ...]) -> Click | None:
    got = links.open_token(SECRET, tok)
    return links.resolve(got, lits) if isinstance(got, Ref) else got


def test_literals_are_the_links_written_without_template_syntax() -> None:
    assert links.literals(TEMPLATE) == (
        "https://att.example/a", "https://base.example/x", "https://img.example/i.png",
        "https://shop.example/b", "https://shop.example/faq")
    assert links.literals({"text": "no links"}) == ()


def test_literal_links_get_short_tokens_that_open_to_the_exact_url() -> None:
    lits = links.literals(TEMPLATE)
    texts = ["Hi Al: https://shop.example/spring?u=al or https://shop.example/b.",
             "Hi Bo: https://shop.example/spring?u=bo or https://shop.example/b."]
    out, atts = links.track_rows(TRACKING, 7, "spring", ["al", "bo"], texts, "", TEMPLATE["attachments"], lits=lits)
    assert out is not None and atts is not None
    for target, text, att in zip(["al", "bo"], out, atts, strict=True):
        assert text.endswith(".") and "shop.example" not in text
        toks = TOKEN.findall(text) + TOKEN.findall(att[0]["title_link"])
        assert att[0]["image_url"] == "https://img.example/i.png"
        templated, literal, attached = (links.open_token(SECRET, t) for t in toks)
        assert templated == Click(7, "spring", target, 0, f"https://shop.example/spring?u={target}", False)
        assert isinstance(literal, Ref) and isinstance(attached, Ref)
        assert _open(toks[1], lits) == Click(7, "spring", target, 1, "https://shop.example/b", False)
        assert _open(toks[2], lits) == Click(7, "spring", target, 2, "https://att.example/a", False)
        assert len(toks[1]) < len(links.token(SECRET, Click(7, "spring", target, 1, "https://shop.example/b", False)))
    # the same text without the literals (a test send, or older code): v2 tokens carrying the URL
    v2, _ = links.track_rows(TRACKING, 7, "spring", ["al"], texts[:1], "", None, lits=lits, test=True)
    assert v2 is not None
    assert all(isinstance(links.open_token(SECRET, t), Click) for t in TOKEN.findall(v2[0]))


def test_several_literal_links_of_a_row_each_open_to_their_own_url() -> None:
    lits = links.literals(TEMPLATE)
    texts = ["https://shop.example/faq, https://shop.example/b and again https://shop.example/faq"] * 2
    out, _ = links.track_rows(TRACKING, 7, "spring", ["al", "bo"], texts, "", None, lits=lits)
    assert out is not None
    for target, text in zip(["al", "bo"], out, strict=True):
        toks = TOKEN.findall(text)
        assert all(isinstance(links.open_token(SECRET, t), Ref) for t in toks)
        assert [_open(t, lits) for t in toks] == [
            Click(7, "spring", target, 0, "https://shop.example/faq", False),
            Click(7, "spring", target, 1, "https://shop.example/b", False),
            Click(7, "spring", target, 2, "https://shop.example/faq", False)]


def test_v3_tokens_refuse_anything_altered_and_a_changed_template() -> None:
    lits = links.literals(TEMPLATE)
    out, _ = links.track_rows(TRACKING, 7, "spring", ["al"], ["see https://shop.example/faq"], "", None, lits=lits)
    assert out is not None
    tok = TOKEN.findall(out[0])[0]
    assert _open(tok, lits) == Click(7, "spring", "al", 0, "https://shop.example/faq", False)
    for i in range(len(tok)):  # every single-character change is refused, by the MAC alone
        ch = "A" if tok[i] != "A" else "B"
        assert links.open_token(SECRET, tok[:i] + ch + tok[i + 1:]) is None
    assert _open(tok[:-1], lits) is None and _open(tok + "A", lits) is None
    # a template whose literal at that index is another link, or that has none: 404
    assert _open(tok, tuple(sorted(lits, reverse=True))) is None
    assert _open(tok, ()) is None
    # signed with another key
    other = links.Tracking("https://go.example", "other")
    forged, _ = links.track_rows(other, 7, "spring", ["al"], ["see https://shop.example/faq"], "", None, lits=lits)
    assert forged is not None and _open(TOKEN.findall(forged[0])[0], lits) is None
    # the recipient and campaign are in the signed bytes: no URL, but both named
    raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    assert b"spring" in raw and b"al" in raw and b"shop.example" not in raw


def test_earlier_tokens_still_open() -> None:
    v2 = links.token(SECRET, Click(7, "spring", "al", 1, "https://shop.example/b", False))
    v1 = linktoken._v1(SECRET, 7, "spring", "al", 1, "https://shop.example/b", False)
    for tok in (v2, v1):
        assert links.open_token(SECRET, tok) == Click(7, "spring", "al", 1, "https://shop.example/b", False)
