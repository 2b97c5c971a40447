"""The template interpreter guard (pure): every step of a tenant template is counted and sized.

Jinja's sandbox keeps Python internals out of reach but lets any expression run as long and
grow as large as it likes. Here every operator, attribute access, call, filter, literal,
concatenation and loop iteration goes through a guard that (1) counts a step against the
render's budget and checks its deadline, and (2) bounds the size of the result *before*
computing it (ints by bit length, strings and containers by their deep size), so
`9**64**64**64`, `'%0100000000d' % 1` or `'x'.ljust(10**9)` fail in microseconds instead of
taking seconds or gigabytes. Nothing is evaluated at compile time: the optimizer is off and
the code generator never folds an expression into a constant.
"""

from __future__ import annotations

import operator
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import ChainableUndefined, Environment, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

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


def _need(estimate: int, what: str) -> None:
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
            _need(size(seq) * max(k, 0), "repetition")
    return operator.mul(a, b)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes | list | tuple) and isinstance(b, str | bytes | list | tuple):
        _need(size(a) + size(b), "+")
    return bounded(operator.add(a, b))


_PCT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


def _printf(fmt: str | bytes, args: Any) -> Any:
    """`fmt % args`: widths and precisions are part of the size estimate, `*` is refused."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    fields = _PCT.findall(text)
    if any("*" in (w, p) for w, p, _ in fields):
        raise BudgetError("'*' widths are not allowed in % formatting")
    widest = max((int(w or 0) + int(p or 0) for w, p, _ in fields), default=0)
    _need(len(text) + len(fields) * (widest + size(args)), "% formatting")
    return bounded(operator.mod(fmt, args))


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes):
        return _printf(a, b)
    return operator.mod(a, b)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add, "-": operator.sub, "*": _mul, "/": operator.truediv, "//": operator.floordiv,
    "**": _pow, "%": _mod,
}
_UNOPS: dict[str, Callable[[Any], Any]] = {"+": operator.pos, "-": operator.neg}


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


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
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
        _need(_format_estimate(owner, args, kwargs), "format()")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        hits = owner.count(old) if old else len(owner) + 1
        _need(len(owner) + hits * size(new), "replace()")
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple | str) else []
        _need(size(items) + len(items) * len(owner), "join()")
    elif name == "translate" and args and isinstance(args[0], dict):
        _need(len(owner) * max((size(v) for v in args[0].values()), default=1), "translate()")
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        _need(len(owner) + tabs * int(tab), "expandtabs()")


def guard_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """A filter as a guarded step: replace/join estimated before, every result sized after."""

    def guarded(*all_args: Any, **kwargs: Any) -> Any:
        tick()
        args = all_args[1:] if isinstance(all_args[0], EvalContext | Context | Environment) else all_args
        for a in (*args, *kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > VALUE_CAP:
                raise BudgetError(f"filter {name}: an argument beyond {VALUE_CAP}")
        if name == "replace" and len(args) >= 3 and isinstance(args[0], str) and isinstance(args[1], str):
            hits = args[0].count(args[1]) if args[1] else len(args[0]) + 1
            _need(len(args[0]) + hits * size(args[2]), "filter replace")
        if name == "join" and args:
            sep = args[1] if len(args) > 1 else kwargs.get("d", "")
            _need(size(args[0]) + (size(args[0]) + 1) * size(sep), "filter join")
        return bounded(f(*all_args, **kwargs))

    for attr in ("jinja_pass_arg",):
        if hasattr(f, attr):
            setattr(guarded, attr, getattr(f, attr))
    return guarded


def safe_range(*args: int) -> range:
    tick()
    r = range(*args)
    if len(r) > RANGE_CAP:
        raise BudgetError(f"range() is limited to {RANGE_CAP} items")
    return r


def loop_guard(it: Iterable[Any]) -> Iterator[Any]:
    """Wraps every for-loop's iterable: each iteration is a step."""
    for x in it:
        tick()
        yield x


class GuardedCodeGenerator(CodeGenerator):
    """Never folds an output expression into a constant at compile time (Jinja would evaluate
    filters and operators while compiling), and routes concatenations and literals through the
    environment's size guard."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if isinstance(node, nodes.TemplateData):
            return super()._output_child_to_const(node, frame, finalize)
        raise nodes.Impossible()

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.guard_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _sized(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.guard_value(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._sized(super().visit_List, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "store":  # an assignment target, not a value
            super().visit_Tuple(node, frame)
        else:
            self._sized(super().visit_Tuple, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._sized(super().visit_Dict, node, frame)


class GuardedEnv(ImmutableSandboxedEnvironment):
    """Immutable sandbox (no list.append/extend: state cannot grow across loop iterations)."""

    code_generator_class = GuardedCodeGenerator
    intercepted_binops = frozenset(_BINOPS)
    intercepted_unops = frozenset(_UNOPS)

    def __init__(self) -> None:
        super().__init__(undefined=ChainableUndefined, autoescape=False, auto_reload=False,
                         cache_size=0, optimized=False)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        tick()
        return _BINOPS[operator_](left, right)

    def call_unop(self, context: Any, operator_: str, arg: Any) -> Any:
        tick()
        return _UNOPS[operator_](arg)

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        tick()
        _check_call(__obj, args, {k: v for k, v in kwargs.items() if not k.startswith("_")})
        return bounded(super().call(__context, __obj, *args, **kwargs))

    def guard_concat(self, parts: tuple[Any, ...]) -> str:
        tick()
        texts = [str(bounded(p)) for p in parts]
        _need(sum(len(t) for t in texts), "~")
        return "".join(texts)

    def guard_value(self, v: Any) -> Any:
        tick()
        return bounded(v)


def guard_loops(tree: nodes.Template) -> None:
    """Route every for-loop's iterable through loop_guard (counted iterations)."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(LOOP_GUARD, "load"), [loop.iter], [], None, None,
                               lineno=loop.lineno)
