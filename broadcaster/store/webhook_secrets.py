"""Per-receiver Standard Webhooks signing secrets (migration 0041), sealed at rest."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime

from broadcaster import secretbox
from broadcaster.store.webhooks import Conn


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def create_missing(conn: Conn, app_id: int, receivers: Iterable[str]) -> dict[str, str]:
    """A secret for each receiver that has none; returns only the new ones (shown once)."""
    wanted = sorted(set(receivers))
    if not wanted:
        return {}
    fresh = {r: new_secret() for r in wanted}
    rows = await conn.fetch(
        "INSERT INTO webhook_secrets (app_id, receiver, secret)"
        " SELECT $1, r, s FROM unnest($2::text[], $3::text[]) AS x(r, s)"
        " ON CONFLICT (app_id, receiver) DO NOTHING RETURNING receiver",
        app_id, wanted, [secretbox.seal(fresh[r]) for r in wanted],
    )
    return {r["receiver"]: fresh[r["receiver"]] for r in rows}


async def rotate(conn: Conn, app_id: int, receiver: str, overlap_s: float) -> tuple[str, datetime | None]:
    """A new secret; the current one keeps signing for overlap_s seconds. Returns (secret,
    when the previous one stops signing)."""
    secret = new_secret()
    row = await conn.fetchrow(
        "INSERT INTO webhook_secrets (app_id, receiver, secret) VALUES ($1, $2, $3)"
        " ON CONFLICT (app_id, receiver) DO UPDATE SET"
        "  previous_secret = CASE WHEN $4 > 0 THEN webhook_secrets.secret END,"
        "  previous_expires_at = CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END,"
        "  secret = EXCLUDED.secret"
        " RETURNING previous_expires_at",
        app_id, receiver, secretbox.seal(secret), float(overlap_s),
    )
    assert row is not None
    return secret, row["previous_expires_at"]


async def signing(conn: Conn, app_ids: Sequence[int]) -> dict[tuple[int, str], list[str]]:
    """(app_id, receiver) -> the secrets that sign now: the current one, then the previous one
    while its overlap lasts."""
    rows = await conn.fetch(
        "SELECT app_id, receiver, secret,"
        " CASE WHEN previous_expires_at > now() THEN previous_secret END AS previous"
        " FROM webhook_secrets WHERE app_id = ANY($1::bigint[])", list(app_ids),
    )
    out: dict[tuple[int, str], list[str]] = {}
    for r in rows:
        keys = [secretbox.reveal(r["secret"])]
        if r["previous"]:
            keys.append(secretbox.reveal(r["previous"]))
        out[(r["app_id"], r["receiver"])] = keys
    return out


async def forget(conn: Conn, app_id: int, receivers: Sequence[str]) -> None:
    """Removed receivers' secrets go with them (one added again later gets a new secret)."""
    if receivers:
        await conn.execute("DELETE FROM webhook_secrets WHERE app_id = $1 AND receiver = ANY($2::text[])",
                           app_id, list(receivers))
