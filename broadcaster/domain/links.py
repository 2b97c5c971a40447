"""Click tracking (SPEC 5C), pure: link rewriting of a rendered message and its signed tokens.

A token names the app, campaign, recipient (target id), link number and the exact original
URL, and is signed with the server's link key (domain/linktoken). The URL is inside the token because with
templated text the links differ per recipient: nothing has to be stored per message at
fan-out time, and the redirect needs no lookup to find where to go. Only a token we signed
opens (a forged, altered or truncated one is None: the caller answers 404), so /c/ is
never an open redirect.
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
# A link runs to whitespace or a character that cannot appear unescaped in one; trailing
# sentence punctuation is cut afterwards (see _trim).
_LINK_RE = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~"
_ENDS = frozenset(_TRAILING + ")]}")
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
    return linktoken.make(secret, c.app_id, c.campaign_id, c.target_id, c.link_no, c.url, c.test)


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


def _link_in(whole: str, skip_prefix: str) -> str | None:
    """The link a regex match holds (trailing punctuation trimmed), or None when it is not
    one to track: nothing left after trimming, or already ours (starts with skip_prefix)."""
    # most links end in neither punctuation nor a bracket: no trimming to do
    link = _trim(whole) if whole[-1] in _ENDS else whole
    if (link is not whole and not is_link(link)) or (skip_prefix and link.startswith(skip_prefix)):
        return None
    return link


def rewrite_text(text: str, track: Callable[[int, str], str], start: int = 0, skip_prefix: str = "") -> tuple[str, int]:
    """Every http(s) link of `text` replaced by track(link_no, url), numbered from `start` in
    order of appearance; links that already start with `skip_prefix` (our own tracking
    links) are left alone. Returns the text and the next link number."""
    no = start

    def one(m: re.Match[str]) -> str:
        nonlocal no
        whole = m.group(0)
        link = _link_in(whole, skip_prefix)
        if link is None:
            return whole
        no += 1
        return track(no - 1, link) + whole[len(link):]

    return _LINK_RE.sub(one, text), no


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


def tracker(public_url: str, secret: str, app_id: int, campaign_id: str, target_id: str,
            *, test: bool = False) -> Callable[[int, str], str]:
    """track(link_no, url) for one recipient's message: <public_url>/c/<token>."""
    return _tracker(public_url.rstrip("/") + "/c/", linktoken.signer(secret, app_id, campaign_id, test=test), target_id)


def _tracker(base: str, sign: Callable[[str, int, str], str], target_id: str) -> Callable[[int, str], str]:
    return lambda no, url: base + sign(target_id, no, url)


def rewrite(text: str, attachments: Any, track: Callable[[int, str], str], skip_prefix: str = "") -> tuple[str, Any]:
    """A rendered message with every link tracked: text links first, then attachments."""
    new_text, no = rewrite_text(text, track, 0, skip_prefix)
    new_att, _ = rewrite_attachments(attachments, track, no, skip_prefix)
    return new_text, new_att


def _prepared(prepare: Callable[[int, str], Any], skip: str, no: int, whole: str) -> Any:
    """(keyed state, token bytes after the target, MAC bytes after it, head, text after the
    link) for a matched link at this number, or None when it is not one to track."""
    link = _link_in(whole, skip)
    if link is None:
        return None
    return (*prepare(no, link), whole[len(link):])


@dataclass(frozen=True)
class Tracking:
    """Where tracked links point (BROADCASTER_PUBLIC_URL) and the key that signs them."""

    base: str
    secret: str


def track_rows(
    tracking: Tracking, app_id: int, campaign_id: str, targets: list[str], texts: list[str] | None,
    const_text: str, attachments: Any, *, test: bool = False, lits: tuple[str, ...] = (),
) -> tuple[list[str] | None, list[Any] | None]:
    """A rendered batch's texts and attachments with each recipient's links tracked, as
    per-row lists (None: unchanged, nothing to track). texts None = const_text for all.
    lits: the campaign's literal links (literals(message_template)), signed as v3 tokens;
    test sends sign none so (their draft template may still change)."""
    if texts is None and not has_links(const_text, attachments):
        return None, None
    att_links = rewrite_attachments(attachments, lambda i, u: u)[1] > 0
    skip = tracking.base.rstrip("/") + "/c/"
    signer = linkbatch.BatchSigner(tracking.secret, app_id, campaign_id, () if test else lits, test=test)
    prepare, sign = signer.prepare, signer.sign
    b2a, tr = binascii.b2a_base64, linkbatch.B64_TABLE
    # (link number, matched text) -> how to sign it (None: not a link to track), made once per
    # batch: most links repeat over its recipients, each then costs one hash and one base64
    prep: dict[tuple[int, str], Any] = {}
    out_t: list[str] = []
    out_a: list[Any] = []
    for i, target in enumerate(targets):
        tb = signer.target(target)
        parts = _SPLIT_RE.split(texts[i] if texts is not None else const_text)
        no = 0
        for j in range(1, len(parts), 2):
            whole = parts[j]
            k = (no, whole)
            p = prep.get(k, False)
            if p is False:
                p = prep[k] = _prepared(prepare, skip, no, whole)
            if p is None:
                continue
            keyed, mid, after, head, rest = p
            no += 1
            if tb is None or mid is None:
                parts[j] = skip + sign(tb, target, no - 1, whole[:len(whole) - len(rest)]) + rest
                continue
            h = keyed.copy()
            h.update(tb)
            h.update(after)
            parts[j] = skip + b2a(h.digest() + head + tb + mid, newline=False).translate(tr).decode().rstrip("=") + rest
        out_t.append("".join(parts))
        if att_links:

            def track(n: int, u: str, tb: bytes | None = tb, target: str = target) -> str:
                return skip + sign(tb, target, n, u)

            out_a.append(rewrite_attachments(attachments, track, no, skip)[0])
    return out_t, out_a if att_links else None
