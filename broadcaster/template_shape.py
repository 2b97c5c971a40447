"""The shape of a campaign template (pure): what it may contain (checked once, at compile
time) and the fast path for templates that are only text and plain lookups."""

from __future__ import annotations

from typing import Any

from jinja2 import nodes

from broadcaster.errors import bad_request

_FORBIDDEN = (
    nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport, nodes.Macro, nodes.CallBlock,
    nodes.Block, nodes.FilterBlock, nodes.AssignBlock,
)


def check_structure(tree: nodes.Node, name: str) -> None:
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


def simple_parts(tree: nodes.Template) -> list[str | tuple[str, ...]] | None:
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


def lookup(ctx: dict[str, Any], path: tuple[str, ...]) -> str:
    v: Any = ctx
    for k in path:
        if not isinstance(v, dict):
            return ""
        v = v.get(k, _MISSING)
        if v is _MISSING:
            return ""
    return str(v)
