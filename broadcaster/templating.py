"""Campaign templates (pure): Jinja2 in a sandbox, compiled once per campaign.

Templates come from API callers, so rendering must never reach Python internals and never
run unbounded. The sandbox blocks internals; the budget is enforced three ways: structure
checked at compile time (no include/import/macros/recursive or nested loops), values bounded
while rendering (string/list repetition, powers, ranges, filter results), and the output
length plus the elapsed time checked on every chunk the template yields.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SecurityError

from broadcaster import sandbox, template_shape
from broadcaster.errors import bad_request
from broadcaster.sandbox import VALUE_CAP, BudgetError

TEXT_CAP = 5_000  # characters of rendered message text
FIELD_CAP = 1_000  # characters of a rendered id / custom value
RANGE_CAP = sandbox.RANGE_CAP
RENDER_SECONDS = 0.02  # CPU time of the rendering thread per render (sandbox.tick checks it)
BATCH_SECONDS = 0.25  # CPU time for all renders of one batch (see batch_budget)
TEST_SEND_SECONDS = 0.1  # all renders of one test send (up to 100 users)
SOURCE_CAP = 40_000  # characters of template source per campaign (text, custom, channel template)
CACHE_BYTES = 4_000_000  # template source held compiled per process

__all__ = ["VALUE_CAP", "BudgetError", "CampaignTemplates", "RenderError", "compile_campaign"]


class RenderError(Exception):
    """A render failed or exceeded its budget; it errors that one recipient only. Budget
    failures read `template_budget: ...` (the ledger's reason)."""


# Filters campaign texts plausibly need; each one is a guarded step with a sized result.
_FILTERS = (
    "abs", "capitalize", "default", "d", "e", "escape", "first", "float", "int", "join",
    "last", "length", "count", "lower", "replace", "round", "string", "title", "trim",
    "truncate", "upper", "urlencode", "list", "sort", "unique", "min", "max", "sum", "reverse",
    "striptags", "safe",
)


def _make_env() -> sandbox.GuardedEnv:
    env = sandbox.GuardedEnv()
    env.filters = {k: sandbox.guard_filter(k, v) for k, v in env.filters.items() if k in _FILTERS}
    env.tests = dict(env.tests)
    env.globals = {"range": sandbox.safe_range, sandbox.LOOP_GUARD: sandbox.loop_guard}
    return env


ENV = _make_env()


# A ContextVar, not a thread-local: concurrent asyncio tasks on one thread each keep their own.
_BATCH: ContextVar[float] = ContextVar("template_batch_deadline", default=float("inf"))


@contextmanager
def batch_budget(seconds: float | None = None) -> Iterator[None]:
    """All renders inside share one CPU-time budget (a batch of recipients): once spent,
    the remaining recipients of the batch error with template_budget without rendering.
    Wrap synchronous rendering only (an await inside would count other tasks' time)."""
    token = _BATCH.set(min(_BATCH.get(), time.thread_time() + (BATCH_SECONDS if seconds is None else seconds)))
    try:
        yield
    finally:
        _BATCH.reset(token)


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
            text = "".join(p if isinstance(p, str) else template_shape.lookup(ctx, p) for p in self.simple)
            if len(text) > self.cap:
                raise RenderError(f"template_budget: {self.name} output exceeds {self.cap} characters")
            return text
        now = time.thread_time()
        batch_deadline = _BATCH.get()
        if now > batch_deadline:
            raise RenderError(f"template_budget: {self.name}: the batch's render time budget is spent")
        meter = sandbox.METER
        meter.steps = 0
        meter.deadline = min(now + RENDER_SECONDS, batch_deadline)
        out: list[str] = []
        size = 0
        try:
            for chunk in self.compiled.root_render_func(self.compiled.new_context(ctx)):
                size += len(chunk)
                if size > self.cap:
                    raise RenderError(f"template_budget: {self.name} output exceeds {self.cap} characters")
                sandbox.tick()
                out.append(chunk)
        except RenderError:
            raise
        except BudgetError as e:
            raise RenderError(f"template_budget: {self.name}: {str(e).removeprefix('template_budget: ')}") from None
        except SecurityError as e:
            raise RenderError(f"{self.name}: unsafe operation: {e}") from None
        except Exception as e:  # any runtime failure of a user template is that recipient's error
            raise RenderError(f"{self.name}: {type(e).__name__}: {e}"[:500]) from None
        finally:
            meter.deadline = float("inf")
        return "".join(out)


def compile_one(source: str, name: str, cap: int = FIELD_CAP) -> Tpl:
    """Compile one template string; a syntax error is a 400 naming the template and line."""
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return Tpl(name, source, cap)
    try:
        tree = ENV.parse(source)
    except RecursionError:
        raise bad_request(f"{name} is nested too deeply to compile") from None
    except TemplateSyntaxError as e:
        raise bad_request(f"{name} has a template syntax error at line {e.lineno}: {e.message}") from None
    template_shape.check_structure(tree, name)
    sandbox.guard_loops(tree)
    try:
        compiled = ENV.from_string(tree)
    except TemplateSyntaxError as e:
        raise bad_request(f"{name} has a template syntax error at line {e.lineno}: {e.message}") from None
    except RecursionError:  # Jinja's code generator recurses once per nesting level
        raise bad_request(f"{name} is nested too deeply to compile") from None
    simple = template_shape.simple_parts(tree)
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


def _template_source(v: Any) -> int:
    """Characters of template source (strings holding template syntax) in a JSON value."""
    if isinstance(v, str):
        return len(v) if "{{" in v or "{%" in v or "{#" in v else 0
    if isinstance(v, dict):
        return sum(_template_source(x) for x in v.values())
    if isinstance(v, list):
        return sum(_template_source(x) for x in v)
    return 0


def compile_campaign(message_template: dict[str, Any], channel_template: dict[str, Any] | None) -> CampaignTemplates:
    """Compiling costs CPU in proportion to the source (a few hundred ms for 20,000 characters),
    so the source of one campaign's templates is capped; callers on an event loop compile in a
    thread."""
    total = _template_source([message_template.get("text"), message_template.get("custom"),
                              (channel_template or {}).get("id"), (channel_template or {}).get("custom")])
    if total > SOURCE_CAP:
        raise bad_request(f"message_template and channel_template hold {total} characters of template source,"
                          f" at most {SOURCE_CAP} are allowed")
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


def _source_size(mt: Any, ct: Any) -> int:
    return sandbox.size((mt, ct), limit=1 << 40)


class TemplateCache:
    """Compiled campaigns per process, least recently used first out, bounded by the total
    size of their sources (a compiled template's memory follows its source, not its count)."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Any, tuple[Any, CampaignTemplates, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, version: Any, mt: dict[str, Any], ct: dict[str, Any] | None) -> CampaignTemplates:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == version:
                self._items.move_to_end(key)
                return hit[1]
        tpl = compile_campaign(mt, ct)
        n = _source_size(mt, ct)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            if n <= self.max_bytes:
                self._items[key] = (version, tpl, n)
                self.bytes += n
            while self.bytes > self.max_bytes:
                self.bytes -= self._items.popitem(last=False)[1][2]
        return tpl

    def __len__(self) -> int:
        return len(self._items)


CACHE = TemplateCache()
