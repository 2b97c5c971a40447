"""The user batch of the usual campaign, rendered without a template context per recipient
(pure). It applies when the text is literal parts and plain lookups (template_shape) of the
sender or of the receiver's own fields, the message and channel custom data are constant
and channels are created (nothing else per recipient): each part is then a string fixed for
the batch or one field of the row, read the way user_view and template_shape.lookup read it.
render.users renders anything else; tests/test_fastrender.py holds the two to the same output.
The per-recipient context cost ~2 of the 3.3 us a recipient took to render."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from broadcaster import template_shape
from broadcaster.domain import unsubscribe
from broadcaster.templating import CampaignTemplates

Row = Any
_MISSING = object()


def _field(key: str) -> Callable[[Row], str]:
    """The receiver's `key` as user_view builds it (built-in fields over custom ones), as str()."""
    if key == "id":
        return lambda r: str(r["id"])
    if key in ("name", "language"):
        return lambda r: str(r[key] or "")
    if key == "role":
        return lambda r: str(r["role"])
    if key == "teams":
        return lambda r: str(list(r["teams"] or []))

    def custom(r: Row) -> str:
        v = (r["custom"] or {}).get(key, _MISSING)
        return "" if v is _MISSING else str(v)
    return custom


def plan(tpl: CampaignTemplates, sender: dict[str, Any]) -> list[str | Callable[[Row], str]] | None:
    """The text's parts (strings fixed for the batch, or a row's field), or None when the
    template needs the full context."""
    simple = tpl.text.simple
    if tpl.text.compiled is None or simple is None:
        return None
    out: list[str | Callable[[Row], str]] = []
    for p in simple:
        if isinstance(p, str):
            out.append(p)
        elif p[0] == "sender":
            out.append(template_shape.lookup({"sender": sender}, p))
        elif p == ("unsubscribe_url",):
            out.append(unsubscribe.MARK)
        elif p[0] in ("receiver", "user") and len(p) == 2:
            out.append(_field(p[1]))
        else:
            return None
    return out


def applies(tpl: CampaignTemplates, existing: set[str] | None, mentions_channel: bool) -> bool:
    return (tpl.channel_id is None and existing is None and not mentions_channel
            and tpl.channel_custom.constant and tpl.custom.constant)


def texts(parts: list[str | Callable[[Row], str]], rows: Sequence[Row]) -> list[str]:
    return ["".join([p if isinstance(p, str) else p(r) for p in parts]) for r in rows]
