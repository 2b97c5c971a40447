"""A/B variants of a campaign's message (SPEC 5C), pure: validation, the deterministic choice
of a recipient's variant, each variant's message template, and merging the per-variant
rendered parts of a batch into the one batch the writer takes."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from broadcaster import ids as idgen
from broadcaster.domain.render import Batch, Shape
from broadcaster.errors import bad_request
from broadcaster.validate import ID_RE

MAX_VARIANTS = 10


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


def choose(campaign_id: str, target_id: str, variants: Sequence[dict[str, Any]]) -> str:
    """The recipient's variant: a uniform point from a hash of (campaign, recipient) placed on
    the cumulative weights, so it never changes for that pair and splits by weight."""
    h = hashlib.blake2b(f"{campaign_id}\x00{target_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(h, "big") / 2**64
    total = sum(float(v.get("weight", 1)) for v in variants)
    acc = 0.0
    for v in variants:
        acc += float(v.get("weight", 1)) / total
        if u < acc:
            return str(v["id"])
    return str(variants[-1]["id"])


def merge(parts: list[tuple[str, Batch, Shape]], sender_id: str) -> tuple[Batch, Shape]:
    """One batch of the per-variant parts (variant id, batch, its shape): the columns that
    differ between variants go per row, each row records its variant."""
    first = parts[0][2]
    out = Batch(channel_mode=parts[0][1].channel_mode, receivers=None if not parts[0][1].channel_mode else [],
                texts=[], customs=[], attachments=[], variants=[])
    any_chid = any(b.chids is not None for _, b, _ in parts)
    any_cc = any(b.ccustoms is not None for _, b, _ in parts)
    out.chids = [] if any_chid else None
    out.ccustoms = [] if any_cc else None
    for vid, b, sh in parts:
        n = len(b.targets)
        out.targets += b.targets
        if out.receivers is not None and b.receivers is not None:
            out.receivers += b.receivers
        if out.chids is not None:
            out.chids += b.chids if b.chids is not None else [
                idgen.distinct_channel_id((sender_id, t)) for t in b.targets]
        out.texts += b.texts if b.texts is not None else [sh.text] * n  # type: ignore[operator]
        out.customs += b.customs if b.customs is not None else [sh.custom] * n  # type: ignore[operator]
        if out.ccustoms is not None:
            out.ccustoms += b.ccustoms if b.ccustoms is not None else [sh.ccustom] * n
        out.attachments += b.attachments if b.attachments is not None else [sh.attachments] * n  # type: ignore[operator]
        out.variants += [vid] * n  # type: ignore[operator]
        out.other += b.other
        out.errored += b.errored
    return out, first
