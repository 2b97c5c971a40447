"""Click tracking (SPEC 5C), pure: the tracked links of a rendered batch and their signed tokens.

A token names the app, campaign, recipient (target id) and link number, and is signed with
the server's link key. A link written literally in the campaign's template gets a short v3
token holding its place among the template's literal links (domain/linkbatch): the redirect
finds the URL in the stored template. A link that differs per recipient (templated) gets a v2
token carrying its URL (domain/linktoken), so nothing is stored per message at fan-out time.
Only a token we signed opens (a forged, altered or truncated one is None: the caller answers
404), so /c/ is never an open redirect.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broadcaster.domain import linkbatch, linktoken
from broadcaster.domain.linkbatch import Ref

MAX_TOKEN_CHARS = 8192
# Trailing sentence punctuation is cut from a matched link afterwards (see _trim).
_LINK_RE = linkbatch.LINK_RE
_TRAILING = ".,;:!?*_~"
ENDS = frozenset(_TRAILING + ")]}")
_SPLIT_RE = re.compile(f"({_LINK_RE.pattern})", re.IGNORECASE)  # text, link, text, ...
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
# Attachment fields that are followed by a click. Image, asset and thumbnail URLs are left as
# they are: clients load them without a click, so a rewrite would count every view as one.
LINK_FIELDS = ("title_link", "author_link", "og_scrape_url", "url")


@dataclass(frozen=True)
class Click:
    app_id: int
    campaign_id: str
    target_id: str
    link_no: int
    url: str
    test: bool  # from a test send: redirect, record nothing


def token(secret: str, c: Click) -> str:
    """The v2 token of one click (v1 where the ids do not fit), as a batch signs it."""
    s = linkbatch.BatchSigner(secret, c.app_id, c.campaign_id, (), test=c.test)
    return s.sign(s.target(c.target_id), c.target_id, c.link_no, c.url)


def open_token(secret: str, tok: str) -> Click | Ref | None:
    """The click a token names, or None for anything we did not sign exactly so. A v3
    token (a literal link of the template) comes back as a Ref: resolve() it with the
    campaign's literals."""
    raw = _raw(tok)
    if raw is None:
        return None
    return linkbatch.parse(secret, raw) or _opened(secret, raw)


def resolve(ref: Ref, lits: tuple[str, ...]) -> Click | None:
    """A v3 token's click, its URL taken from the campaign's literal links (None: they do
    not have it any more)."""
    url = linkbatch.url_of(ref, lits)
    if url is None or not is_link(url):
        return None
    return Click(ref.app_id, ref.campaign_id, ref.target_id, ref.link_no, url, ref.test)


def literals(message_template: object) -> tuple[str, ...]:
    return linkbatch.literals(message_template, _trim)


def _raw(tok: str) -> bytes | None:
    if not tok or len(tok) > MAX_TOKEN_CHARS or not _TOKEN_RE.fullmatch(tok):
        return None
    try:
        return base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    except ValueError:
        return None


def _opened(secret: str, raw: bytes) -> Click | None:
    got = linktoken.open_raw(secret, raw)
    if got is None or not is_link(got[4]):
        return None
    return Click(*got)


def is_link(url: str) -> bool:
    return bool(_LINK_RE.fullmatch(url))


def _trim(link: str) -> str:
    """Cut sentence punctuation and an unbalanced closing bracket off the end ("see
    https://x.y/a." links to https://x.y/a; "(https://x.y/a_(b))" keeps its own parens)."""
    while link:
        last = link[-1]
        if last in _TRAILING:
            link = link[:-1]
        elif last in ")]}":
            opening = {")": "(", "]": "[", "}": "{"}[last]
            if link.count(opening) < link.count(last):
                link = link[:-1]
            else:
                break
        else:
            break
    return link


def link_in(whole: str, skip_prefix: str) -> str | None:
    """The link a regex match holds (trailing punctuation trimmed), or None when it is not
    one to track: nothing left after trimming, or already ours (starts with skip_prefix)."""
    # most links end in neither punctuation nor a bracket: no trimming to do
    link = _trim(whole) if whole[-1] in ENDS else whole
    if (link is not whole and not is_link(link)) or (skip_prefix and link.startswith(skip_prefix)):
        return None
    return link


def rewrite_attachments(
    attachments: Any, track: Callable[[int, str], str], start: int = 0, skip_prefix: str = "",
) -> tuple[Any, int]:
    """Copies of the attachments with their link fields (LINK_FIELDS, and `url` of each of
    their `actions`) tracked, numbered on from `start`."""
    if not isinstance(attachments, list):
        return attachments, start
    no = start

    def one(d: dict[str, Any]) -> dict[str, Any]:
        nonlocal no
        new = dict(d)
        for k in LINK_FIELDS:
            v = new.get(k)
            if isinstance(v, str) and is_link(v) and not (skip_prefix and v.startswith(skip_prefix)):
                new[k] = track(no, v)
                no += 1
        return new

    out = []
    for a in attachments:
        if not isinstance(a, dict):
            out.append(a)
            continue
        new = one(a)
        if isinstance(new.get("actions"), list):
            new["actions"] = [one(x) if isinstance(x, dict) else x for x in new["actions"]]
        out.append(new)
    return out, no


def has_links(text: str, attachments: Any) -> bool:
    """Whether a message (template or rendered) has anything to track."""
    if _LINK_RE.search(text or ""):
        return True
    _, n = rewrite_attachments(attachments, lambda i, u: u)
    return n > 0


@dataclass(frozen=True)
class Tracking:
    """Where tracked links point (BROADCASTER_PUBLIC_URL) and the key that signs them."""

    base: str
    secret: str

    @property
    def click_prefix(self) -> str:
        """What every tracked link starts with (links already so are left alone)."""
        return self.base.rstrip("/") + "/c/"


def _prepared(prepare: Callable[[int, str], Any], skip: str, no: int, whole: str) -> Any:
    """(keyed state, token bytes after the target, MAC bytes after it, head, text after the
    link) for a matched link at this number, or None when it is not one to track."""
    link = link_in(whole, skip)
    if link is None:
        return None
    return (*prepare(no, link), whole[len(link):])


def track_rows(
    tracking: Tracking, app_id: int, campaign_id: str, targets: list[str], texts: list[str] | None,
    const_text: str, attachments: Any, *, test: bool = False, lits: tuple[str, ...] = (),
) -> tuple[list[str] | None, list[Any] | None]:
    """A rendered batch's texts and attachments with each recipient's links tracked, as
    per-row lists (None: unchanged, nothing to track). texts None = const_text for all.
    Links are numbered in order of appearance, text first, then attachments; links already
    ours (under the tracking base) are left alone. lits: the campaign's literal links
    (literals(message_template)), signed as v3 tokens; test sends sign none so (their draft
    template may still change)."""
    if texts is None and not has_links(const_text, attachments):
        return None, None
    att_links = rewrite_attachments(attachments, lambda i, u: u)[1] > 0
    skip = tracking.click_prefix
    signer = linkbatch.BatchSigner(tracking.secret, app_id, campaign_id, () if test else lits, test=test)
    prepare, sign, v3, head3 = signer.prepare, signer.sign, signer.v3, signer.head3
    b2a, tr = binascii.b2a_base64, linkbatch.B64_TABLE
    split = _SPLIT_RE.split
    # per link number: matched text -> how to sign it (None: not a link to track), made once
    # per batch: most links repeat over its recipients, each then costs one hash and one base64
    prep: list[dict[str, Any]] = []
    out_t: list[str] = []
    out_a: list[Any] = []
    for i, target in enumerate(targets):
        parts = split(texts[i] if texts is not None else const_text)
        tb = signer.target(target)
        no = 0
        # the v3 MAC state fed this recipient's bytes, and their token bytes: once per
        # recipient, not per link
        r3: Any = None
        h3 = b""
        for j in range(1, len(parts), 2):
            whole = parts[j]
            if no == len(prep):
                prep.append({})
            p = prep[no].get(whole, False)
            if p is False:
                p = prep[no][whole] = _prepared(prepare, skip, no, whole)
            if p is None:
                continue
            keyed, mid, after, head, rest = p
            no += 1
            if tb is None or mid is None:
                tok = sign(tb, target, no - 1, whole[:len(whole) - len(rest)])
            elif keyed is v3:
                if r3 is None:
                    r3 = v3.copy()
                    r3.update(tb)
                    h3 = head3 + tb
                h = r3.copy()
                h.update(mid)
                tok = b2a(h.digest() + h3 + mid, newline=False).translate(tr).decode().rstrip("=")
            else:
                h = keyed.copy()
                h.update(tb)
                h.update(after)
                tok = b2a(h.digest() + head + tb + mid, newline=False).translate(tr).decode().rstrip("=")
            parts[j] = skip + tok + rest if rest else skip + tok
        out_t.append("".join(parts))
        if att_links:

            def track(n: int, u: str, tb: bytes | None = tb, target: str = target) -> str:
                return skip + sign(tb, target, n, u)

            out_a.append(rewrite_attachments(attachments, track, no, skip)[0])
    return out_t, out_a if att_links else None
