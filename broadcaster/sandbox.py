"""The template interpreter guard (pure): every step of a tenant template is counted and sized.

Jinja's sandbox keeps Python internals out of reach but lets any expression run as long and
grow as large as it likes. Here every operator, attribute access, call, filter, literal,
concatenation and loop iteration goes through a guard that (1) counts a step against the
render's budget and checks its deadline, and (2) bounds the size of the result *before*
computing it (ints by bit length, strings and containers by their deep size), so
`9**64**64**64`, `'%0100000000d' % 1` or `'x'.ljust(10**9)` fail in microseconds instead of
taking seconds or gigabytes. Nothing is evaluated at compile time: the optimizer is off and
the code generator never folds an expression into a constant. The meter and the size
estimates live in broadcaster/sandbox_budget.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import ChainableUndefined, Environment, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from broadcaster.sandbox_budget import (
    BINOPS,
    LOOP_GUARD,
    METER,
    RANGE_CAP,
    UNOPS,
    VALUE_CAP,
    BudgetError,
    bounded,
    check_call,
    need,
    size,
    tick,
)

__all__ = ["LOOP_GUARD", "METER", "RANGE_CAP", "VALUE_CAP", "BudgetError", "GuardedEnv", "bounded",
           "guard_filter", "guard_loops", "loop_guard", "safe_range", "size", "tick"]


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
            need(len(args[0]) + hits * size(args[2]), "filter replace")
        if name == "join" and args:
            sep = args[1] if len(args) > 1 else kwargs.get("d", "")
            need(size(args[0]) + (size(args[0]) + 1) * size(sep), "filter join")
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
    intercepted_binops = frozenset(BINOPS)
    intercepted_unops = frozenset(UNOPS)

    def __init__(self) -> None:
        super().__init__(undefined=ChainableUndefined, autoescape=False, auto_reload=False,
                         cache_size=0, optimized=False)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        tick()
        return BINOPS[operator_](left, right)

    def call_unop(self, context: Any, operator_: str, arg: Any) -> Any:
        tick()
        return UNOPS[operator_](arg)

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        tick()
        check_call(__obj, args, {k: v for k, v in kwargs.items() if not k.startswith("_")})
        return bounded(super().call(__context, __obj, *args, **kwargs))

    def guard_concat(self, parts: tuple[Any, ...]) -> str:
        tick()
        texts = [str(bounded(p)) for p in parts]
        need(sum(len(t) for t in texts), "~")
        return "".join(texts)

    def guard_value(self, v: Any) -> Any:
        tick()
        return bounded(v)


def guard_loops(tree: nodes.Template) -> None:
    """Route every for-loop's iterable through loop_guard (counted iterations)."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(LOOP_GUARD, "load"), [loop.iter], [], None, None,
                               lineno=loop.lineno)
