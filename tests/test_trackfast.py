"""domain/trackfast tracks the links of fastrender's batch from the template's parts: it must
give what rendering and then links.track_rows give, row for row, for any field values."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster.domain import fastrender, links, render, trackfast
from broadcaster.templating import batch_budget, compile_campaign

TRACKING = links.Tracking("https://go.example/", "s3cret")
SENDER = {"id": "boss", "name": "The Boss", "role": "admin", "teams": [], "language": "", "site": "https://boss.example/x"}
NAMES = ["Ann", "", "Ann Lee", "http", "https://evil.example/p", "a:b", "a/b", "x.", "(y)", "ht", "tp://z",
         "://", "//w", "s", "ok!", "café", "u\u00a0v", "https://go.example/c/abc", "<b>", "E" * 300]
ROWS: list[dict[str, Any]] = [
    {"id": f"u{i}", "found": True, "name": n, "role": "user", "teams": [], "language": "",
     "custom": {"code": NAMES[-i - 1], "n": i}} for i, n in enumerate(NAMES)
] + [
    {"id": "gone", "found": False, "name": None, "role": None, "teams": None, "language": None, "custom": None},
    {"id": "out", "found": True, "name": "O", "role": "user", "teams": [], "language": "",
     "custom": {"campaigns_opt_out": True}},
    {"id": "x" * 300, "found": True, "name": "long id", "role": "user", "teams": [], "language": "", "custom": {}},
]
PLANNED = [
    # the bench's two variants
    "Hi {{ receiver.name }}: spring sale https://shop.example/spring?u={{ receiver.id }}",
    "{{ receiver.name }}, 20 % off https://shop.example/b and https://shop.example/faq",
    "https://a.example/x.",
    "{{ receiver.name }} (see https://a.example/x_(y)), https://b.example/{{ receiver.code }}/z, bye",
    "{{ receiver.name }}https://a.example {{ receiver.code }} https://b.example/?q={{ receiver.id }}",
    "x https://a.example/{{ receiver.id }}",
    "x https://a.example/{{ receiver.code }}y https://b.example",
    "link https://go.example/c/already and {{ receiver.name }} https://c.example!",
    "from {{ sender.name }} {{ sender.site }} to {{ receiver.name }} https://d.example/{{ receiver.n }}",
    "no links for {{ receiver.name }} at all: ftp://f.example or mailto:a@b.c",
    "HTTPS://Up.Example/A {{ receiver.name }}",
    "{{ receiver.name }}:{{ receiver.code }}",
    "{{ receiver.code }} ps://x https://y.example/'{{ receiver.name }}'",
    "x https://a.example/{{ receiver.code }} https://a.example/s 100%",  # code "s": a literal's URL
]
UNPLANNED = [
    "go htt{{ receiver.code }} now",  # the field could complete a scheme
    "{{ receiver.code }}ps://x.example",  # ... or begin one
    "see https://{{ receiver.code }}",  # a link begun by its scheme alone
    "a:{{ receiver.code }}//b",  # "://" across an empty field
    "https://a.example/{{ receiver.code }}x{{ receiver.name }}",  # a link through two fields
]


def _camp(text: str) -> dict[str, Any]:
    return {"app_id": 7, "id": "spring", "channel_template": {"type": "messaging"}, "message_template": {"text": text},
            "sender_id": "boss", "sender_mode": "include", "create_channels": True}


def _general(camp: dict[str, Any], tpl: Any, lits: tuple[str, ...]) -> render.Batch:
    with batch_budget():
        b = render.users(camp, tpl, ROWS, SENDER, None)
    texts, atts = links.track_rows(TRACKING, 7, "spring", b.targets, b.texts, tpl.text.source, [], lits=lits)
    assert atts is None
    if texts is not None:
        b.texts = texts
    return b


@pytest.mark.parametrize("text", PLANNED + UNPLANNED)
def test_the_fused_path_tracks_what_rendering_then_tracking_does(text: str) -> None:
    camp = _camp(text)
    tpl = compile_campaign(camp["message_template"], camp["channel_template"])  # type: ignore[arg-type]
    parts = fastrender.plan(tpl, SENDER) if tpl.text.compiled is not None else [text]
    assert parts is not None
    ops = trackfast.plan(parts, "https://go.example/c/")
    assert (ops is not None) == (text in PLANNED), ops
    lits = links.literals(camp["message_template"])
    with batch_budget():
        fused = render.tracked_users(camp, tpl, ROWS, SENDER, TRACKING, lits)
    if ops is None:
        assert fused is None
        return
    assert fused is not None
    general = _general(camp, tpl, lits)
    assert fused.targets == general.targets
    assert fused.texts == general.texts
    assert sorted(map(str, fused.other)) == sorted(map(str, general.other)) and fused.errored == general.errored
    assert "gone" not in fused.targets and "out" not in fused.targets


def test_most_rows_take_the_fused_path() -> None:
    """The per-recipient fallback is for fields that could start or end a link, not the usual ones."""
    tpl = compile_campaign({"text": PLANNED[0]}, {"type": "messaging"})
    parts = fastrender.plan(tpl, SENDER)
    assert parts is not None
    ops = trackfast.plan(parts, "https://go.example/c/")
    assert ops is not None
    rows = [r for r in ROWS if r["found"]]
    out, general = trackfast.texts(ops, trackfast.fields_of(parts), rows, TRACKING, 7, "spring", (), 5000)
    assert [rows[i]["name"] for i in general] == ["https://evil.example/p", "a:b", "a/b", "tp://z", "://", "//w",
                                                   "https://go.example/c/abc", "long id"]
    assert all(t is not None for i, t in enumerate(out) if i not in general)


def test_templates_needing_more_than_the_parts_are_not_fused() -> None:
    for mt in ({"text": "x https://a.example", "attachments": [{"title_link": "https://b.example"}]},
               {"text": "x https://a.example {{ unsubscribe_url }}"},
               {"text": "{{ receiver.name | upper }} https://a.example"}):
        camp = {**_camp(""), "message_template": mt}
        tpl = compile_campaign(mt, camp["channel_template"])  # type: ignore[arg-type]
        with batch_budget():
            assert render.tracked_users(camp, tpl, ROWS, SENDER, TRACKING, ()) is None, mt
