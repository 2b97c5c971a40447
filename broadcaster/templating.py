"""Campaign templates (pure): Jinja2 in a sandbox, compiled once per campaign.

Templates come from API callers, so rendering must never reach Python internals and never
run unbounded. The sandbox blocks internals; the budget is enforced three ways: structure
checked at compile time (no include/import/macros/recursive or nested loops), values bounded
while rendering (string/list repetition, powers, ranges, filter results), and the output
length plus the elapsed time checked on every chunk the template yields.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from broadcaster.errors import bad_request

TEXT_CAP = 5_000  # characters of rendered message text
FIELD_CAP = 1_000  # characters of a rendered id / custom value
VALUE_CAP = 20_000  # any intermediate string or list built while rendering
RANGE_CAP = 1_000
RENDER_SECONDS = 0.05  # per render


class RenderError(Exception):
    """A render failed or exceeded its budget; it errors that one recipient only."""


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > VALUE_CAP:
        raise RenderError(f"a value grew beyond {VALUE_CAP} characters/items")
    return value


def _safe_mul(a: Any, b: Any) -> Any:
    for seq, k in ((a, b), (b, a)):
        if isinstance(seq, str | list | tuple) and isinstance(k, int):
            if len(seq) * max(k, 0) > VALUE_CAP:
                raise RenderError(f"a value grew beyond {VALUE_CAP} characters/items")
    return operator.mul(a, b)


def _safe_pow(a: Any, b: Any) -> Any:
    if isinstance(b, int | float) and abs(b) > 64:
        raise RenderError("exponent too large")
    return operator.pow(a, b)


def _safe_range(*args: int) -> range:
    r = range(*args)
    if len(r) > RANGE_CAP:
        raise RenderError(f"range() is limited to {RANGE_CAP} items")
    return r


# Filters campaign texts plausibly need; each result is bounded.
_FILTERS = (
    "abs", "capitalize", "default", "d", "e", "escape", "first", "float", "int", "join",
    "last", "length", "count", "lower", "replace", "round", "string", "title", "trim",
    "truncate", "upper", "urlencode", "list", "sort", "unique", "min", "max", "sum", "reverse",
    "striptags", "safe",
)


class _Env(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            return _safe_mul(left, right)
        if operator_ == "**":
            return _safe_pow(left, right)
        return _bounded(operator.add(left, right))


def _wrap(f: Callable[..., Any]) -> Callable[..., Any]:
    def bounded_filter(*args: Any, **kwargs: Any) -> Any:
        return _bounded(f(*args, **kwargs))

    for attr in ("jinja_pass_arg",):
        if hasattr(f, attr):
            setattr(bounded_filter, attr, getattr(f, attr))
    return bounded_filter


def _make_env() -> _Env:
    env = _Env(undefined=ChainableUndefined, autoescape=False, auto_reload=False, cache_size=0)
    env.filters = {k: _wrap(v) for k, v in env.filters.items() if k in _FILTERS}
    env.tests = dict(env.tests)
    env.globals = {"range": _safe_range}
    return env


ENV = _make_env()
_FORBIDDEN = (
    nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport, nodes.Macro, nodes.CallBlock,
    nodes.Block, nodes.FilterBlock,
)


def _check_structure(tree: nodes.Node, name: str) -> None:
    for node in tree.find_all(_FORBIDDEN):
        raise bad_request(
            f"{name} line {node.lineno}: {type(node).__name__.lower()} is not allowed in campaign templates"
        )
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise bad_request(f"{name} line {loop.lineno}: recursive loops are not allowed")
        for inner in loop.find_all(nodes.For):
            raise bad_request(f"{name} line {inner.lineno}: nested loops are not allowed")


_MISSING = object()
_DICT_ATTRS = frozenset(dir(dict))


def _simple_parts(tree: nodes.Template) -> list[str | tuple[str, ...]] | None:
    """Literal text and plain `{{ a.b.c }}` lookups only, or None. Such templates (the usual
    campaign text and channel id) render by dict lookups: no sandbox needed, ~10x faster."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None if tree.body else []
    out: list[str | tuple[str, ...]] = []
    for n in tree.body[0].nodes:
        if isinstance(n, nodes.TemplateData):
            out.append(n.data)
            continue
        path: list[str] = []
        while isinstance(n, nodes.Getattr | nodes.Getitem):
            key = n.attr if isinstance(n, nodes.Getattr) else getattr(n.arg, "value", None)
            if not isinstance(key, str) or key.startswith("_") or key in _DICT_ATTRS:
                return None
            path.append(key)
            n = n.node
        if not isinstance(n, nodes.Name) or n.name.startswith("_"):
            return None
        path.append(n.name)
        out.append(tuple(reversed(path)))
    return out


def _lookup(ctx: dict[str, Any], path: tuple[str, ...]) -> str:
    v: Any = ctx
    for k in path:
        if not isinstance(v, dict):
            return ""
        v = v.get(k, _MISSING)
        if v is _MISSING:
            return ""
    return str(v)


@dataclass(frozen=True)
class Tpl:
    """One compiled template string, or a constant when it holds no template syntax."""

    name: str
    source: str
    cap: int
    compiled: Any = None
    simple: tuple[str | tuple[str, ...], ...] | None = None

    def render(self, ctx: dict[str, Any]) -> str:
        if self.compiled is None:
            return self.source
        if self.simple is not None:
            text = "".join(p if isinstance(p, str) else _lookup(ctx, p) for p in self.simple)
            if len(text) > self.cap:
                raise RenderError(f"{self.name} output exceeds {self.cap} characters")
            return text
        started = time.perf_counter()
        out: list[str] = []
        size = 0
        try:
            for chunk in self.compiled.root_render_func(self.compiled.new_context(ctx)):
                size += len(chunk)
                if size > self.cap:
                    raise RenderError(f"{self.name} output exceeds {self.cap} characters")
                if time.perf_counter() - started > RENDER_SECONDS:
                    raise RenderError(f"{self.name} render exceeded its time budget")
                out.append(chunk)
        except RenderError:
            raise
        except SecurityError as e:
            raise RenderError(f"{self.name}: unsafe operation: {e}") from None
        except Exception as e:  # any runtime failure of a user template is that recipient's error
            raise RenderError(f"{self.name}: {type(e).__name__}: {e}"[:500]) from None
        return "".join(out)


def compile_one(source: str, name: str, cap: int = FIELD_CAP) -> Tpl:
    """Compile one template string; a syntax error is a 400 naming the template and line."""
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return Tpl(name, source, cap)
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as e:
        raise bad_request(f"{name} has a template syntax error at line {e.lineno}: {e.message}") from None
    _check_structure(tree, name)
    try:
        compiled = ENV.from_string(tree)
    except TemplateSyntaxError as e:
        raise bad_request(f"{name} has a template syntax error at line {e.lineno}: {e.message}") from None
    simple = _simple_parts(tree)
    return Tpl(name, source, cap, compiled, tuple(simple) if simple is not None else None)


class JsonTpl:
    """A JSON value whose string leaves are templates (custom data, channel custom)."""

    def __init__(self, value: Any, name: str) -> None:
        self.value = value
        self.parts: list[tuple[list[Any], Tpl]] = []
        self._walk(value, [], name)

    def _walk(self, v: Any, path: list[Any], name: str) -> None:
        if isinstance(v, str):
            t = compile_one(v, name)
            if t.compiled is not None:
                self.parts.append((path, t))
        elif isinstance(v, dict):
            for k, x in v.items():
                self._walk(x, [*path, k], f"{name}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                self._walk(x, [*path, i], f"{name}[{i}]")

    @property
    def constant(self) -> bool:
        return not self.parts

    def render(self, ctx: dict[str, Any]) -> Any:
        if not self.parts:
            return self.value
        out = _copy(self.value)
        for path, t in self.parts:
            if not path:
                return t.render(ctx)
            target = out
            for p in path[:-1]:
                target = target[p]
            target[path[-1]] = t.render(ctx)
        return out


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


@dataclass(frozen=True)
class CampaignTemplates:
    text: Tpl
    custom: JsonTpl
    channel_id: Tpl | None
    channel_custom: JsonTpl


def compile_campaign(message_template: dict[str, Any], channel_template: dict[str, Any] | None) -> CampaignTemplates:
    text = compile_one(message_template.get("text") or "", "message_template.text", TEXT_CAP)
    custom = JsonTpl(message_template.get("custom") or {}, "message_template.custom")
    ct = channel_template or {}
    cid = ct.get("id")
    channel_id = compile_one(cid, "channel_template.id", 64) if isinstance(cid, str) else None
    channel_custom = JsonTpl(ct.get("custom") or {}, "channel_template.custom")
    return CampaignTemplates(text, custom, channel_id, channel_custom)


def user_view(row: Any) -> dict[str, Any]:
    """A user as templates see it: built-in fields plus custom fields at the top level."""
    out: dict[str, Any] = dict(row["custom"] or {})
    out.update(id=row["id"], name=row["name"] or "", role=row["role"], teams=list(row["teams"] or []),
               language=row["language"] or "")
    return out
