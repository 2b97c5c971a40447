"""Server-token checks (pure): HS256 JWT signed with the app secret, `server: true`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jwt

from broadcaster.errors import ApiError, forbidden, unauthorized

# Clock skew tolerated on iat/nbf, so a caller whose clock runs a little ahead is not refused.
LEEWAY_S = 5


def token_from_header(value: str | None) -> str:
    if not value or not value.strip():
        raise unauthorized(5, "Authorization header is missing: send the server JWT")
    token = value.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if token.count(".") != 2:
        raise unauthorized(5, "Authorization header is not a JWT")
    return token


def _decode(token: str, secrets: Sequence[str]) -> dict[str, Any]:
    """Claims of a token signed with any of the secrets (current first, then one in its grace)."""
    for i, secret in enumerate(secrets):
        try:
            return jwt.decode(  # type: ignore[no-any-return]
                token, secret, algorithms=["HS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "verify_aud": False, "verify_iss": False},
            )
        except jwt.InvalidSignatureError:
            if i == len(secrets) - 1:
                raise unauthorized(43, "JWT signature is invalid: sign it with the app secret") from None
        except jwt.PyJWTError as e:
            raise unauthorized(5, f"JWT is malformed: {e}") from None
    raise unauthorized(43, "JWT signature is invalid: sign it with the app secret")


def check_server_token(
    token: str, secret: str | Sequence[str], now: float | None = None, max_age_s: float = 0,
) -> dict[str, Any]:
    """max_age_s > 0 (BROADCASTER_MAX_TOKEN_AGE_S): tokens issued longer ago, or without iat,
    are refused."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise unauthorized(5, "Authorization header is not a valid JWT") from None
    if header.get("alg") != "HS256":
        raise unauthorized(5, "JWT must be signed with HS256")
    claims = _decode(token, [secret] if isinstance(secret, str) else list(secret))
    t = time.time() if now is None else now
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    for name, v in (("exp", exp), ("nbf", nbf), ("iat", iat)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise unauthorized(5, f"JWT claim {name} must be a number")
    if exp is not None and exp <= t:
        raise unauthorized(40, "JWT has expired (exp is in the past)")
    if nbf is not None and nbf > t + LEEWAY_S:
        raise unauthorized(41, "JWT is not yet valid (nbf is in the future)")
    if iat is not None and iat > t + LEEWAY_S:
        raise unauthorized(42, "JWT was issued in the future (iat)")
    if max_age_s > 0:
        if iat is None:
            raise unauthorized(5, f"JWT has no iat: tokens must say when they were issued (at most {max_age_s:g} s ago)")
        if iat < t - max_age_s:
            raise unauthorized(40, f"JWT is too old: issued more than {max_age_s:g} s ago (iat)")
    # A server token says `server: true` (the stream-chat SDKs); the newer SDKs (getstream,
    # @stream-io/node-sdk) sign one with no claims but iat. A token naming a user, or saying
    # `server: false`, is a user token.
    server = claims.get("server")
    if not (server is True or (server is None and "user_id" not in claims)):
        raise forbidden("a user token is not allowed here: server-side endpoints need a server token")
    return claims


def server_token(secret: str, **claims: Any) -> str:
    return jwt.encode({"server": True, **claims}, secret, algorithm="HS256")


__all__ = ["ApiError", "check_server_token", "server_token", "token_from_header"]
