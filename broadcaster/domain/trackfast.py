"""Tracked links of fastrender's batch (SPEC 5C), pure: the links are found once per batch in
the template's literal parts, not per recipient in each rendered text.

fastrender renders the usual campaign as literal parts and row fields. A link the template
writes literally is the same for every recipient: per recipient only its token is made. A
link that runs from a literal into a field (`https://x.example/?u={{ receiver.id }}`) has its
URL assembled from the parts. links.track_rows finds the links of the whole rendered text;
this must find the same ones, so per recipient the fields are checked not to change where
links start or end (a field inside a link holds no character that ends one; a field outside
links holds no ':' or '/', without which no `http(s)://` can form in or across it), and a
recipient whose fields fail that takes the general path. A template whose literal parts
leave room for a field to start a link (a literal ending in `htt` before a field...) is not
planned at all. tests/test_trackfast.py holds the two paths to the same output row by row.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.domain import linkbatch, links

Row = Any
Part = str | Callable[[Row], str]
_TERM = linkbatch.LINK_STOP_RE
_SCHEMES = ("https://", "http://")
_SEP = re.compile("(?=://)")
# what a literal after a field may not begin "://" with: the scheme's letters would come from
# the field (the empty prefix too: the field would supply all of them)
_SCHEME_TAILS = frozenset(s[i:-3] for s in _SCHEMES for i in range(len(s) - 2))


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Field:
    at: int  # index into the row's field values


@dataclass(frozen=True)
class Link:
    """A link closed within a literal: its URL (trimmed) and the text after it in the match."""

    url: str
    rest: str


@dataclass(frozen=True)
class Span:
    """A link running from a literal through one field into the next literal's head."""

    pre: str
    at: int
    post: str


Op = Lit | Field | Link | Span


def _merge(parts: Sequence[Part]) -> list[Part]:
    out: list[Part] = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        elif not (isinstance(p, str) and not p):
            out.append(p)
    return out


def _safe_edges(parts: list[Part]) -> bool:
    """Whether no field can take part in a link's `http(s)://` (see the module doc)."""
    for i, p in enumerate(parts):
        if not isinstance(p, str):
            continue
        low = p.lower()
        after_field = i > 0
        before_field = i + 1 < len(parts)
        if before_field:
            tail = _TERM.split(low)[-1]
            # (a tail holding a link runs into the field: a span, where anything may follow)
            if not linkbatch.LINK_RE.search(tail) and any(tail.endswith(s[:k]) for s in _SCHEMES for k in range(1, len(s) + 1)):
                return False  # `htt` + field, or `https://` + field with nothing after
            if low.endswith((":", ":/")) and i + 2 < len(parts) and str(parts[i + 2]).startswith("/"):
                return False  # `:` + empty field + `//`
        if after_field:
            for q in (m.start() for m in _SEP.finditer(low[:7])):
                if not _TERM.search(low[:q]) and low[:q] in _SCHEME_TAILS:
                    return False
    return True


def plan(parts: Sequence[Part], skip: str) -> list[Op] | None:
    """The ops that build a tracked text from a row's field values, or None: not planned."""
    ps = _merge(parts)
    if not _safe_edges(ps):
        return None
    fields = 0
    ops: list[Op] = []
    i = 0
    lead = 0  # where the current literal's own text starts (after a span took its head)
    while i < len(ps):
        p = ps[i]
        if not isinstance(p, str):
            ops.append(Field(fields))
            fields += 1
            i += 1
            continue
        text, pos = p[lead:], 0
        lead = 0
        for m in linkbatch.LINK_RE.finditer(text):
            ops.append(Lit(text[pos:m.start()]))
            pos = m.end()
            if m.end() < len(text) or i + 1 == len(ps):
                link = links.link_in(m.group(0), skip)
                if link is None:
                    ops.append(Lit(m.group(0)))
                else:
                    ops.append(Link(link, m.group(0)[len(link):]))
                continue
            # runs into the next field, and through it into the next literal's head
            nxt = ps[i + 2] if i + 2 < len(ps) else ""
            assert isinstance(nxt, str)
            t = _TERM.search(nxt)
            if t is None and i + 3 < len(ps):
                return None  # would run on through a second field
            lead = t.start() if t is not None else len(nxt)
            ops.append(Span(m.group(0), fields, nxt[:lead]))
            fields += 1
            i += 1  # the field is the span's
            if t is None:
                i += 1  # the last literal is wholly the span's
        if pos < len(text) or not text:
            ops.append(Lit(text[pos:]))
        i += 1
    return [o for o in ops if not (isinstance(o, Lit) and not o.text)]


def fields_of(parts: Sequence[Part]) -> list[Callable[[Row], str]]:
    return [p for p in _merge(parts) if not isinstance(p, str)]


def texts(
    ops: list[Op], fields: list[Callable[[Row], str]], rows: Sequence[Row], tracking: links.Tracking,
    app_id: int, campaign_id: str, lits: tuple[str, ...], cap: int,
) -> tuple[list[str | None], list[int]]:
    """Each row's tracked text (None: its untracked text is over cap characters), and the
    indexes of the rows to track on the general path instead (their text is None here too).

    Column by column (each field's values, each link's tokens over the rows), then one
    %-format per row: a loop over the ops per row cost as much as searching the text."""
    skip = tracking.click_prefix
    signer = linkbatch.BatchSigner(tracking.secret, app_id, campaign_id, lits, test=False)
    const = sum(len(o.text) if isinstance(o, Lit) else len(o.url) + len(o.rest) if isinstance(o, Link)
                else len(o.pre) + len(o.post) for o in ops if not isinstance(o, Field))
    if not signer.ok or sum(isinstance(o, Link | Span) for o in ops) > 256:  # v1 tokens only
        return [None] * len(rows), list(range(len(rows)))
    cols = [[f(r) for r in rows] for f in fields]
    ids = [r["id"].encode() for r in rows]  # as signer.target(), without a call per row
    tbs = [bytes((len(e),)) + e if len(e) <= 255 else None for e in ids]
    spans = [o for o in ops if isinstance(o, Span)]
    wholes = {o.at: [o.pre + v + o.post for v in cols[o.at]] for o in spans}
    out: list[str | None] = [None] * len(rows)
    bad: set[int] = {i for i, n in enumerate(map(sum, zip(*[map(len, c) for c in cols], strict=True)))
                     if const + n > cap} if cols else (set(range(len(rows))) if const > cap else set())
    general = {i for i, tb in enumerate(tbs) if tb is None}  # only a v1 token fits: links.track_rows
    span_at = {o.at for o in spans}
    for k, col in enumerate(cols):
        if k in span_at:
            general.update(i for i, v in enumerate(col) if _TERM.search(v))
        else:
            general.update(i for i, v in enumerate(col) if ":" in v or "/" in v)
    for w in wholes.values():  # a link trimmed or left alone here shifts the numbers after it
        general.update(i for i, x in enumerate(w) if x[-1] in links.ENDS or x.startswith(skip))
    general -= bad
    keep = [i for i in range(len(rows)) if i not in bad and i not in general] if bad or general else None

    def pick(col: list[Any]) -> list[Any]:
        return col if keep is None else [col[i] for i in keep]

    signed: list[bytes] = pick(tbs)  # no None left: those rows are general
    fmt: list[str] = []
    dyn: list[list[str]] = []
    r3s: list[Any] | None = None
    no = 0
    for o in ops:
        if isinstance(o, Lit):
            fmt.append(o.text.replace("%", "%%"))
        elif isinstance(o, Field):
            fmt.append("%s")
            dyn.append(pick(cols[o.at]))
        elif isinstance(o, Link):
            keyed, mid, after, head = signer.prepare(no, o.url)
            assert mid is not None  # (None: more than 256 links, or ids too long; not here)
            if keyed is signer.v3:
                if r3s is None:
                    r3s = [_fed(signer.v3, tb) for tb in signed]
                h3 = signer.head3
                raw = [_mac(r3, mid) + h3 + tb + mid for r3, tb in zip(r3s, signed, strict=True)]
            else:
                raw = [_mac2(keyed, tb, after) + head + tb + mid for tb in signed]
            fmt.append(skip.replace("%", "%%") + "%s" + o.rest.replace("%", "%%"))
            dyn.append(_b64s(raw))
            no += 1
        else:
            urls = pick(wholes[o.at])
            # every URL of the span starts with its literal head, so has its scheme
            bit, cut = linkbatch.scheme(o.pre)
            keyed2, head2, nob = signer.keyed2(bit), signer.heads[bit], bytes((no,))
            toks = []
            for tb, url in zip(signed, urls, strict=True):
                if url in signer.index:  # a URL another part writes literally: its v3 token
                    keyed, mid, after, head = signer.prepare(no, url)
                    assert mid is not None
                    toks.append(_mac2(keyed, tb, after) + head + tb + mid)
                else:
                    after = nob + url[cut:].encode()
                    toks.append(_mac2(keyed2, tb, after) + head2 + tb + after)
            fmt.append(skip.replace("%", "%%") + "%s")
            dyn.append(_b64s(toks))
            no += 1
    f = "".join(fmt)
    done = [f % t for t in zip(*dyn, strict=True)] if dyn else [f.replace("%%", "%")] * len(signed)
    for i, text in zip(keep if keep is not None else range(len(rows)), done, strict=True):
        out[i] = text
    return out, sorted(general)


def _fed(v3: Any, tb: bytes) -> Any:
    h = v3.copy()
    h.update(tb)
    return h


def _mac(r3: Any, mid: bytes) -> bytes:
    h = r3.copy()
    h.update(mid)
    return h.digest()  # type: ignore[no-any-return]


def _mac2(keyed: Any, tb: bytes, after: bytes) -> bytes:
    h = keyed.copy()
    h.update(tb)
    h.update(after)
    return h.digest()  # type: ignore[no-any-return]


def _b64s(raws: list[bytes]) -> list[str]:
    """Unpadded base64url of each, in four calls for the whole column (padding is only ever
    at the end of each, and newline is not in the alphabet)."""
    if not raws:
        return []
    joined = b"\n".join([binascii.b2a_base64(r, newline=False) for r in raws])
    return joined.translate(linkbatch.B64_TABLE).decode().replace("=", "").split("\n")
