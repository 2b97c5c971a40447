"""Sandboxed campaign templates (pure): rendering, dot paths, refusals, budgets."""

from __future__ import annotations

import pytest

from broadcaster.errors import ApiError
from broadcaster.templating import RenderError, compile_campaign, compile_one

CTX = {"sender": {"id": "s", "name": "Sam"}, "receiver": {"id": "r", "name": "Ria", "address": {"country": "NL"}}}


def test_render_fast_path_and_sandbox_agree() -> None:
    t = compile_one("Hi {{ receiver.name }} in {{ receiver.address.country }}{{ receiver.none.x }}", "t")
    assert t.simple is not None
    assert t.render(CTX) == t.compiled.render(CTX) == "Hi Ria in NL"
    t2 = compile_one("{{ receiver.name | upper }}{% if sender %}!{% endif %}", "t")
    assert t2.simple is None and t2.render(CTX) == "RIA!"
    assert compile_one("{{ receiver.name }}", "t").render({"sender": {}}) == ""


@pytest.mark.parametrize("src", [
    "{{ receiver.__class__ }}", "{{ sender.name.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
])
def test_internals_unreachable(src: str) -> None:
    try:
        out = compile_one(src, "t").render(CTX)
    except RenderError:
        return
    assert "class" not in out and "function" not in out


@pytest.mark.parametrize(("src", "why"), [
    ("{{ 'x' * 10**6 }}", "exponent|20000"), ("{{ 'x' * 1000000 }}", "20000"),
    ("{% for i in range(10**5) %}{% endfor %}", "range"), ("{{ 'a' * 4999 }}{{ 'b' * 10 }}", "5000"),
    ("{{ 1 / 0 }}", "ZeroDivision"),
])
def test_budgets_error_the_render(src: str, why: str) -> None:
    with pytest.raises(RenderError, match=why):
        compile_one(src, "message_template.text", 5000).render(CTX)


@pytest.mark.parametrize(("src", "words"), [
    ("a\nb {{ x ", ["message_template.text", "line 2"]),
    ("{% for a in b %}{% for c in d %}{% endfor %}{% endfor %}", ["nested loops"]),
    ("{% macro m() %}{% endmacro %}", ["macro"]), ("{% import 'x' as y %}", ["import"]),
])
def test_refused_at_compile(src: str, words: list[str]) -> None:
    with pytest.raises(ApiError) as e:
        compile_campaign({"text": src}, None)
    assert e.value.status == 400 and all(w in e.value.message for w in words)


def test_custom_and_channel_templates() -> None:
    tpl = compile_campaign({"text": "x", "custom": {"a": {"b": "{{ receiver.id }}"}, "n": 1}},
                           {"type": "t", "id": "{{ receiver.id }}-{{ sender.id }}", "custom": {"k": "{{ sender.name }}"}})
    assert tpl.custom.render(CTX) == {"a": {"b": "r"}, "n": 1}
    assert tpl.channel_id is not None and tpl.channel_id.render(CTX) == "r-s"
    assert tpl.channel_custom.render(CTX) == {"k": "Sam"}
