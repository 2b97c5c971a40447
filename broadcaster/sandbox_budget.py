"""Budgets of the template guard (pure): the step meter, deep sizes, and the operators and
method calls whose result size is estimated *before* it is computed (ints by bit length,
strings and containers by their deep size), so `9**64**64**64` or `'%0100000000d' % 1` fail in
microseconds. broadcaster/sandbox.py wires them into Jinja's sandbox."""

from __future__ import annotations

import operator
import re
import string
import threading
import time
from collections.abc import Callable
from typing import Any

VALUE_CAP = 20_000  # deep size (characters + items) of any value built while rendering
INT_BITS = 4_096  # bit length of any integer built while rendering
RANGE_CAP = 1_000
STEP_CAP = 20_000  # guarded operations per render
LOOP_GUARD = "__bc_loop"


class BudgetError(Exception):
    """A render went over a budget (steps, time, size). str() starts with `template_budget`."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"template_budget: {detail}")


class _Meter(threading.local):
    steps = 0
    deadline = float("inf")


METER = _Meter()


def tick() -> None:
    METER.steps += 1
    if METER.steps > STEP_CAP:
        raise BudgetError(f"more than {STEP_CAP} operations")
    # CPU time of this thread, not the wall clock: a worker preempted on a busy machine must
    # not error good renders. Read every 32 steps (it is a system call, ~1 us).
    if not METER.steps & 31 and time.thread_time() > METER.deadline:
        raise BudgetError("render exceeded its time budget")


def size(v: Any, limit: int = VALUE_CAP) -> int:
    """Deep size of a value (string characters, container items), counted up to just past limit
    so that measuring a value built from shared references never costs more than the limit."""
    total = 0
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str | bytes):
            total += len(x)
        elif isinstance(x, int) and not isinstance(x, bool):
            total += x.bit_length() // 3 + 1
        elif isinstance(x, dict):
            total += len(x) + 1
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list | tuple | set | frozenset):
            total += len(x) + 1
            stack.extend(x)
        else:
            total += 8  # floats, None, Undefined, views: small when printed
        if total > limit:
            return total
    return total


def bounded(v: Any) -> Any:
    if size(v) > VALUE_CAP:
        raise BudgetError(f"a value grew beyond {VALUE_CAP} characters/items")
    return v


def need(estimate: int, what: str) -> None:
    if estimate > VALUE_CAP:
        raise BudgetError(f"{what} would build a value beyond {VALUE_CAP} characters/items")


def _int_bits(a: Any) -> int:
    return a.bit_length() if isinstance(a, int) else 0


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        if _int_bits(a) * b > INT_BITS:
            raise BudgetError(f"a power beyond {INT_BITS} bits")
    return operator.pow(a, b)


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        if _int_bits(a) + _int_bits(b) > INT_BITS:
            raise BudgetError(f"a product beyond {INT_BITS} bits")
    for seq, k in ((a, b), (b, a)):
        if isinstance(seq, str | bytes | list | tuple) and isinstance(k, int):
            need(size(seq) * max(k, 0), "repetition")
    return operator.mul(a, b)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes | list | tuple) and isinstance(b, str | bytes | list | tuple):
        need(size(a) + size(b), "+")
    return bounded(operator.add(a, b))


_PCT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


def _printf(fmt: str | bytes, args: Any) -> Any:
    """`fmt % args`: widths and precisions are part of the size estimate, `*` is refused."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    fields = _PCT.findall(text)
    if any("*" in (w, p) for w, p, _ in fields):
        raise BudgetError("'*' widths are not allowed in % formatting")
    widest = max((int(w or 0) + int(p or 0) for w, p, _ in fields), default=0)
    need(len(text) + len(fields) * (widest + size(args)), "% formatting")
    return bounded(operator.mod(fmt, args))


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes):
        return _printf(a, b)
    return operator.mod(a, b)


BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add, "-": operator.sub, "*": _mul, "/": operator.truediv, "//": operator.floordiv,
    "**": _pow, "%": _mod,
}
UNOPS: dict[str, Callable[[Any], Any]] = {"+": operator.pos, "-": operator.neg}


def _format_estimate(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    fields = 0
    widest = 0
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None:
            continue
        fields += 1
        for n in re.findall(r"\d+", spec or ""):
            widest = max(widest, int(n))
        if spec and "{" in spec:
            raise BudgetError("nested format specs are not allowed")
    return len(fmt) + fields * (widest + size((args, kwargs)))


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse arguments that would make a method build a value beyond the cap."""
    inner = getattr(obj, "__wrapped__", obj)
    name = getattr(inner, "__name__", "")
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > VALUE_CAP:
            raise BudgetError(f"{name}(): an argument beyond {VALUE_CAP}")
    owner = getattr(inner, "__self__", None)
    if not isinstance(owner, str | bytes):
        return
    if name in ("format", "format_map") and isinstance(owner, str):
        need(_format_estimate(owner, args, kwargs), "format()")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        hits = owner.count(old) if old else len(owner) + 1
        need(len(owner) + hits * size(new), "replace()")
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple | str) else []
        need(size(items) + len(items) * len(owner), "join()")
    elif name == "translate" and args and isinstance(args[0], dict):
        need(len(owner) * max((size(v) for v in args[0].values()), default=1), "translate()")
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        need(len(owner) + tabs * int(tab), "expandtabs()")
