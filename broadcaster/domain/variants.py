"""A/B variants of a campaign's message (SPEC 5C), pure: validation, the deterministic choice
of a recipient's variant, each variant's message template, and merging the per-variant
rendered parts of a batch into the one batch the writer takes."""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from broadcaster.domain.render import Batch, Shape
from broadcaster.errors import bad_request
from broadcaster.validate import ID_RE

MAX_VARIANTS = 10
METRICS = ("read", "click", "conversion")
_WAIT_RE = re.compile(r"\A([1-9][0-9]{0,6})([smhd])\Z")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def validate(mt: dict[str, Any]) -> list[dict[str, Any]] | None:
    """message_template.variants: 2..10 of {id, weight > 0, text, attachments?, custom?}."""
    vs = mt.get("variants")
    if vs is None:
        return None
    p = "message_template.variants"
    if not isinstance(vs, list) or not 2 <= len(vs) <= MAX_VARIANTS:
        raise bad_request(f"{p} must be a list of 2 to {MAX_VARIANTS} variants")
    seen: set[str] = set()
    for i, v in enumerate(vs):
        q = f"{p}[{i}]"
        if not isinstance(v, dict):
            raise bad_request(f"{q} must be an object")
        vid = v.get("id")
        if not isinstance(vid, str) or not ID_RE.match(vid) or len(vid) > 64:
            raise bad_request(f"{q}.id must be an id of 1-64 letters, digits and @_-!.=")
        if vid in seen:
            raise bad_request(f"{q}.id {vid!r} is used twice")
        seen.add(vid)
        w = v.get("weight", 1)
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w <= 0 or w > 1e6:
            raise bad_request(f"{q}.weight must be a number > 0 (at most 1e6)")
        t = v.get("text")
        if not isinstance(t, str) or len(t) > 20_000:
            raise bad_request(f"{q}.text is required: a string of at most 20000 characters")
        if v.get("custom") is not None and not isinstance(v["custom"], dict):
            raise bad_request(f"{q}.custom must be an object")
        att = v.get("attachments")
        if att is not None and (not isinstance(att, list) or not all(isinstance(a, dict) for a in att)):
            raise bad_request(f"{q}.attachments must be a list of objects")
    return vs


def template_of(mt: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """The message template a variant's recipients get: the variant's text, and its custom
    and attachments where given (else the campaign's), custom carrying `variant_id`."""
    out = {k: x for k, x in mt.items() if k != "variants"}
    out["text"] = v["text"]
    out["custom"] = {**(v["custom"] if v.get("custom") is not None else (mt.get("custom") or {})),
                     "variant_id": v["id"]}
    if v.get("attachments") is not None:
        out["attachments"] = v["attachments"]
    return out


def chooser(campaign_id: str, variants: Sequence[dict[str, Any]]) -> Callable[[Sequence[str]], list[str]]:
    """assign(targets) -> each one's variant, for one campaign: the hash state fed the campaign
    once and the cumulative weights summed once (per batch, not per recipient), then one
    hash and one bisection per recipient."""
    base = hashlib.blake2b(f"{campaign_id}\x00".encode(), digest_size=8)
    total = sum(float(v.get("weight", 1)) for v in variants)
    bounds: list[float] = []
    acc = 0.0
    for v in variants:
        acc += float(v.get("weight", 1)) / total
        bounds.append(acc)
    # the first variant whose bound is above the point; past the last bound (rounding): the last
    ids = [str(v["id"]) for v in variants] + [str(variants[-1]["id"])]
    # the point is int(digest) / 2**64 as a float; compared as the digest's bytes instead,
    # against the least 8-byte value whose point reaches each bound (the same choices)
    edges = [_edge(b) for b in bounds]

    def assign(targets: Sequence[str]) -> list[str]:
        out = []
        for t in targets:
            h = base.copy()
            h.update(t.encode())
            out.append(ids[bisect_right(edges, h.digest())])
        return out

    return assign


def _edge(bound: float) -> bytes:
    """The least x with x / 2**64 >= bound (as floats), as 8 big-endian bytes (9 when no
    8-byte value reaches it, so that every digest compares below)."""
    lo, hi = 0, 2**64  # x / 2**64 is monotonic in x: bisect for the edge
    while lo < hi:
        mid = (lo + hi) // 2
        if mid / 2**64 >= bound:
            hi = mid
        else:
            lo = mid + 1
    return lo.to_bytes(8, "big") if lo < 2**64 else b"\xff" * 8 + b"\x00"


def choose(campaign_id: str, target_id: str, variants: Sequence[dict[str, Any]]) -> str:
    """The recipient's variant: a uniform point from a hash of (campaign, recipient) placed on
    the cumulative weights, so it never changes for that pair and splits by weight."""
    return chooser(campaign_id, variants)([target_id])[0]


def merge(parts: list[tuple[str, Batch, Shape]]) -> tuple[Batch, Shape]:
    """One batch of the per-variant parts (variant id, batch, its shape): the columns that
    differ between variants go per row, each row records its variant."""
    first = parts[0][2]
    out = Batch(channel_mode=parts[0][1].channel_mode, receivers=None if not parts[0][1].channel_mode else [],
                texts=[], customs=[], attachments=[], variants=[])
    if all(b.customs is None for _, b, _ in parts):  # untemplated custom: one per variant, not per row
        out.customs, out.variant_customs = None, {vid: sh.custom for vid, _, sh in parts}
    any_chid = any(b.chids is not None for _, b, _ in parts)
    any_cc = any(b.ccustoms is not None for _, b, _ in parts)
    out.chids = [] if any_chid else None
    out.ccustoms = [] if any_cc else None
    # the same attachments for every row (the common case: none): shipped once, not per row
    if all(b.attachments is None and sh.attachments == first.attachments for _, b, sh in parts):
        out.attachments = None
    for vid, b, sh in parts:
        n = len(b.targets)
        out.targets += b.targets
        if out.receivers is not None and b.receivers is not None:
            out.receivers += b.receivers
        if out.chids is not None:
            out.chids += b.chids if b.chids is not None else [None] * n  # the 1:1 channel, found in SQL
        out.texts += b.texts if b.texts is not None else [sh.text] * n  # type: ignore[operator]
        if out.customs is not None:
            out.customs += b.customs if b.customs is not None else [sh.custom] * n
        if out.ccustoms is not None:
            out.ccustoms += b.ccustoms if b.ccustoms is not None else [sh.ccustom] * n
        if out.attachments is not None:
            out.attachments += b.attachments if b.attachments is not None else [sh.attachments] * n
        out.variants += [vid] * n  # type: ignore[operator]
        out.other += b.other
        out.errored += b.errored
    return out, first


def wait_seconds(wait: str) -> int:
    m = _WAIT_RE.match(wait)
    assert m is not None
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def validate_winner(w: Any, mt: dict[str, Any]) -> dict[str, Any] | None:
    """winner {metric: read|click|conversion, test_fraction (0 < f < 1), wait "<n>s|m|h|d"
    (at most 30d)}; only with variants."""
    if w is None:
        return None
    if not isinstance(w, dict):
        raise bad_request("winner must be an object {metric, test_fraction, wait}")
    if not mt.get("variants"):
        raise bad_request("winner needs message_template.variants")
    if w.get("metric") not in METRICS:
        raise bad_request(f"winner.metric must be one of {', '.join(METRICS)}")
    f = w.get("test_fraction")
    if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1:
        raise bad_request("winner.test_fraction must be a number between 0 and 1 (exclusive)")
    wait = w.get("wait")
    if not isinstance(wait, str) or not _WAIT_RE.match(wait) or wait_seconds(wait) > 30 * 86400:
        raise bad_request("winner.wait must be a duration like \"30m\", \"4h\" or \"1d\" (at most 30d)")
    return {"metric": w["metric"], "test_fraction": float(f), "wait": wait}


def in_test(campaign_id: str, target_id: str, fraction: float) -> bool:
    """The test audience: a deterministic, uniformly spread subset (its own hash, independent
    of the variant choice, so the test fraction splits by weight too)."""
    h = hashlib.blake2b(f"test\x00{campaign_id}\x00{target_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < fraction


_RATE_KEY = {"read": "read", "click": "clicked", "conversion": "converted"}


def pick_winner(metric: str, vs: Sequence[dict[str, Any]], counts: dict[str, dict[str, int]]) -> str:
    """The best variant by the metric's rate among its test recipients (the weights may
    differ); ties go to the earlier variant."""
    key = _RATE_KEY[metric]
    best, best_rate = str(vs[0]["id"]), -1.0
    for v in vs:
        c = counts.get(str(v["id"])) or {}
        sent = int(c.get("sent", 0))
        r = int(c.get(key, 0)) / sent if sent else 0.0
        if r > best_rate:
            best, best_rate = str(v["id"]), r
    return best


def winner_stats(winner: Any, phase: str | None, variant: str | None) -> dict[str, Any]:
    """The campaign stats of the winner flow: waiting_for_winner, and winner once chosen."""
    if not winner:
        return {}
    out: dict[str, Any] = {"waiting_for_winner": phase == "waiting"}
    if variant is not None:
        out["winner"] = {"variant": variant, "metric": winner.get("metric")}
    return out
