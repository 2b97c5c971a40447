"""domain/fastrender renders the usual user batch without a context per recipient: it must
give what render.users' general path gives, row for row, skips and errors included."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster.domain import fastrender, render
from broadcaster.templating import batch_budget, compile_campaign

ROWS: list[dict[str, Any]] = [
    {"id": "a", "found": True, "name": "Ann", "role": "user", "teams": ["t1"], "language": "fr",
     "custom": {"city": "Oslo", "vip": True, "name": "shadowed", "n": 0}},
    {"id": "b", "found": True, "name": None, "role": None, "teams": None, "language": None, "custom": None},
    {"id": "c", "found": False, "name": None, "role": None, "teams": None, "language": None, "custom": None},
    {"id": "d", "found": True, "name": "Dee", "role": "admin", "teams": [], "language": "",
     "custom": {"campaigns_opt_out": True}},
    {"id": "e", "found": True, "name": "E" * 6000, "role": "user", "teams": [], "language": "", "custom": {}},
    {"id": "f", "found": True, "name": "Fay", "role": "user", "teams": ["x", "y"], "language": "de",
     "custom": {"city": None}},
]
SENDER = {"id": "boss", "name": "The Boss", "role": "admin", "teams": [], "language": "", "vip": 1}
TEXTS = [
    "Hi {{ receiver.name }}, I'm {{ sender.name }}!",
    "{{ user.id }}/{{ receiver.role }}/{{ receiver.teams }}/{{ receiver.language }}/{{ receiver.city }}",
    "{{ receiver.vip }} {{ receiver.n }} {{ receiver.missing }} {{ sender.vip }} {{ sender.nope }}",
    "stop: {{ unsubscribe_url }}",
    "{{ receiver['name'] }} {{ receiver.name }}",
]


def _batch(text: str, test: bool, fast: bool, monkeypatch: pytest.MonkeyPatch) -> render.Batch:
    camp = {"channel_template": {"type": "messaging"}, "message_template": {"text": text},
            "sender_id": "boss", "sender_mode": "include", "create_channels": True}
    tpl = compile_campaign(camp["message_template"], camp["channel_template"])  # type: ignore[arg-type]
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(fastrender, "applies", lambda *a: False)
        else:
            assert fastrender.plan(tpl, SENDER) is not None
        with batch_budget():
            return render.users(camp, tpl, ROWS, SENDER, None, test=test)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("test", [False, True])
def test_the_fast_path_renders_what_the_general_one_does(text: str, test: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, general = _batch(text, test, True, monkeypatch), _batch(text, test, False, monkeypatch)
    assert fast.targets == general.targets and fast.texts == general.texts
    assert sorted(map(str, fast.other)) == sorted(map(str, general.other)) and fast.errored == general.errored
    assert (fast.chids, fast.customs, fast.ccustoms) == (general.chids, general.customs, general.ccustoms)
    assert "c" not in fast.targets and ("d" in fast.targets) == test  # found / opted out, as before


def test_templates_beyond_plain_lookups_take_the_general_path() -> None:
    for text in ("{{ receiver.name | upper }}", "{% if receiver.vip %}x{% endif %}", "{{ receiver }}",
                 "{{ receiver.address.city }}"):
        tpl = compile_campaign({"text": text}, {"type": "messaging"})
        assert fastrender.plan(tpl, SENDER) is None, text
