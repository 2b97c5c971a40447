"""Sandboxed campaign templates (pure): rendering, dot paths, refusals, budgets."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from broadcaster import templating
from broadcaster.errors import ApiError
from broadcaster.templating import (
    RenderError,
    TemplateCache,
    batch_budget,
    compile_campaign,
    compile_one,
)

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


AMPLIFIERS = [
    "{{ (((9**64)**64)**64)**64 > 1 }}", "{{ '%0100000000d' % 1 }}", "{{ 'x'.ljust(10**8) }}",
    "{{ 'ab'.center(100000000) }}", "{{ '{:>100000000}'.format(1) }}", "{{ 'x'.zfill(10**9) }}",
    "{% set x = 'x' * 15000 %}{{ x.replace('x', x) }}", "{% set x = 'x' * 15000 %}{{ x.join(x) }}",
    "{% set x = 'x' * 15000 %}{{ x|replace('x', x) }}", "{% set x = 'x' * 15000 %}{{ x|join(x) }}",
    "{% set x = 'x' * 15000 %}{{ x ~ x ~ x }}", "{% set x = 'x' * 15000 %}{{ x + x }}",
    "{% set x = 'x' * 15000 %}{{ [x] * 3 }}", "{{ '%(a)s%(a)s' % {'a': 'x' * 15000} }}",
    "{% set x = ['x' * 1000] %}{{ [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x] }}",
    "{{ ('\t' * 10000).expandtabs(10000) }}", "{{ (1).to_bytes(10**9, 'big') }}", "{{ range(10**100) }}",
    "{{ 'abc'.translate({97: 'y' * 15000}) }}", "{{ 'x'|truncate(10**9) }}", "{{ -(10**5000) }}",
    "{% set x = 'x' * 15000 %}" + "{% for i in range(1000) %}{% if x.upper().title() %}{% endif %}{% endfor %}" * 3,
    "{% for i in range(1000) %}{% if i.real + i.real + i.real + i.real + i.real + i.real < 0 %}{% endif %}{% endfor %}" * 3,
]


@pytest.mark.exclusive  # a wall-clock bound of the issue: run alone (tests/exclusive.py)
@pytest.mark.parametrize("src", AMPLIFIERS)
def test_amplifiers_fail_fast_and_small(src: str) -> None:
    """Each errors its render with template_budget, in well under a second and a few MB."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        tpl = compile_one(src, "message_template.text", 5000)
        with pytest.raises(RenderError, match="^template_budget: message_template.text"):
            tpl.render(CTX)
        took, peak = time.perf_counter() - t, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert took < 0.5 and peak < 5_000_000, (took, peak)


def test_nothing_is_folded_or_mutated_at_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    # the wall-clock budget is not what this checks: on a loaded machine it can fire first
    monkeypatch.setattr(templating, "RENDER_SECONDS", 5.0)
    tracemalloc.start()
    try:
        compile_one("{{ '%0100000000d' % 1 }}{{ 'x' * 100000000 }}{{ 'x'|replace('x', 'y') }}", "t")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    with pytest.raises(RenderError, match="unsafe"):
        compile_one("{% set l = [] %}{% for i in range(3) %}{{ l.append(l) }}{% endfor %}", "t").render(CTX)
    with pytest.raises(ApiError, match="assignblock"):
        compile_one("{% set x %}{{ receiver.name }}{% endset %}", "t")


def test_ordinary_templates_still_render() -> None:
    src = ("{{ receiver.name|upper }} {{ 3 * 4 }} {{ 'hi ' ~ receiver.id }} {{ '%05d' % 42 }} {{ '{:>3}'.format('a') }}"
           "{% for t in [1, 2, 3] %}{{ t }}{{ loop.index }}{% endfor %} {{ ['a', 'b']|join(', ') }} {{ 2 ** 10 }}")
    assert compile_one(src, "t").render(CTX) == "RIA 12 hi r 00042   a112233 a, b 1024"


def test_batch_budget_errors_the_rest_of_the_batch() -> None:
    slow = compile_one("{% set x = 'x' * 15000 %}{% for i in range(1000) %}{% if x.upper().title() %}{% endif %}"
                       "{% endfor %}", "t")
    fast = compile_one("{{ receiver.name|lower }}", "t")
    with batch_budget(0.05):
        errors = 0
        for _ in range(20):
            with pytest.raises(RenderError, match="template_budget"):
                slow.render(CTX)
            try:
                fast.render(CTX)
            except RenderError as e:
                errors += 1
                assert "batch" in str(e)
    assert errors > 0
    assert fast.render(CTX) == "ria"


def test_cache_bounded_by_source_bytes() -> None:
    cache = TemplateCache(max_bytes=50_000)
    big = {"text": "{{ receiver.name }}" + "x" * 19_000}
    for i in range(10):
        cache.get(("app", i), 1, big, None)
    assert cache.bytes <= 50_000 and len(cache) == 2
    a = cache.get(("app", 9), 1, big, None)
    assert cache.get(("app", 9), 1, big, None) is a and cache.get(("app", 9), 2, big, None) is not a


@pytest.mark.parametrize(("mt", "ct", "words"), [
    ({"text": "{{" + "(" * 3000 + "1" + ")" * 3000 + "}}"}, None, ["message_template.text", "nested too deeply"]),
    ({"text": "x", "custom": {f"k{i}": "{{ receiver.name }}" + "y" * 1000 for i in range(50)}}, None,
     ["template source", "40000"]),
    ({"text": "{{ a }}" * 3000}, {"type": "t", "id": "{{ b }}" * 2000, "custom": {"c": "{{ c }}" * 2000}},
     ["template source"]),
])
def test_compile_limits(mt: dict, ct: dict | None, words: list[str]) -> None:
    with pytest.raises(ApiError) as e:
        compile_campaign(mt, ct)
    assert e.value.status == 400 and all(w in e.value.message for w in words), e.value.message
