"""One signed webhook POST: the headers (built once for both HTTP clients), the client that
carries it, and what came of it as a Result that holds no byte of the receiver's answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from broadcaster import metrics
from broadcaster.webhooks import egress, http1, resolve, secret_bytes


@dataclass(frozen=True)
class Result:
    row: Any
    status: int | None  # None: no HTTP answer (network error, timeout, refused by the guard)
    retry_after: str | None
    error: str | None  # a category (http_404, timeout, refused, ...), never the answer's bytes
    final: bool = False  # no retry whatever the status
    sent_at: float = 0.0  # monotonic, when the request started
    latency_s: float = 0.0


def headers(row: Any, api_key: str, signature: str, timestamp: int, standard: str) -> list[tuple[str, str]]:
    """The request headers of one delivery, for either client: the hosted API's and the
    Standard Webhooks ones (webhook-id is the X-Webhook-Id: the same on every retry)."""
    wid = str(row["webhook_id"])
    out = [
        ("Content-Type", "application/json"),
        ("User-Agent", "broadcaster-webhooks"),
        ("X-Signature", signature),
        ("X-Webhook-Id", wid),
        ("X-Webhook-Attempt", str(row["attempt"])),
        ("X-Api-Key", api_key),
        ("webhook-id", wid),
        ("webhook-timestamp", str(timestamp)),
    ]
    if standard:
        out.append(("webhook-signature", standard))
    return out


def header_block(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in pairs)


def header_safe(pairs: list[tuple[str, str]]) -> bool:
    """Values the lean client can write as they are (printable ASCII)."""
    return all(v.isascii() and v.isprintable() for _, v in pairs)


def error_category(e: BaseException) -> str:
    """What went wrong, in words that carry nothing the receiver sent."""
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(e, socket.gaierror):
        return "dns"
    if isinstance(e, http1.ProtocolError | aiohttp.ClientResponseError | aiohttp.ServerDisconnectedError):
        return "protocol"
    if isinstance(e, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(e, aiohttp.ClientConnectorError) and isinstance(e.os_error, ConnectionRefusedError):
        return "refused"
    return "connection"


class Sender:
    """Signs and POSTs deliveries: plain-http receivers on the lean client, https and the
    unusual on aiohttp; both connect only to addresses the egress guard passed."""

    def __init__(self, timeout_s: float, allow_private: bool) -> None:
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self._macs: dict[bytes, Any] = {}
        self._keys: dict[str, bytes] = {}
        self.fast = http1.Client(resolve.Resolver(allow_private))
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30,
                                           resolver=resolve.GuardedResolver(allow_private)),
            skip_auto_headers=("Accept", "Accept-Encoding"), auto_decompress=False,
        )

    async def close(self) -> None:
        self.fast.close()
        await self.http.close()

    def _mac(self, key: bytes) -> Any:
        mac = self._macs.get(key)
        if mac is None:  # the keyed state once per secret, copied per body
            if len(self._macs) > 10_000:
                self._macs.clear()
            mac = self._macs[key] = hmac.new(key, digestmod=hashlib.sha256)
        return mac.copy()

    def sign(self, body: bytes, secret: str) -> str:
        m = self._mac(secret.encode())
        m.update(body)
        return m.hexdigest()

    def sign_standard(self, msg_id: str, timestamp: int, body: bytes, whsecs: list[str]) -> str:
        """`v1,<sig>` per signing secret, space-separated (both during a rotation's overlap)."""
        out = []
        for s in whsecs:
            key = self._keys.get(s)
            if key is None:
                key = self._keys[s] = secret_bytes(s)
            m = self._mac(key)
            m.update(b"%s.%d." % (msg_id.encode(), timestamp))
            m.update(body)
            out.append("v1," + base64.b64encode(m.digest()).decode())
        return " ".join(out)

    async def post(self, row: Any, url: str, api_key: str, secret: str, whsecs: list[str]) -> Result:
        """POST one claimed row; the timeout starts here, when the request is about to be
        written (a row waits for its receiver's window before this is called)."""
        body = row["payload"].encode()
        ts = int(time.time())
        pairs = headers(row, api_key, self.sign(body, secret), ts,
                        self.sign_standard(str(row["webhook_id"]), ts, body, whsecs))
        fast = http1.target(url) if header_safe(pairs) else None
        sent_at = time.monotonic()
        started = time.perf_counter()

        def result(status: int | None, retry_after: str | None, error: str | None,
                   final: bool = False) -> Result:
            return Result(row, status, retry_after, error, final, sent_at, time.monotonic() - sent_at)

        try:
            if fast is not None:
                r = await self.fast.post(fast, header_block(pairs), body, self.timeout_s)
                status = r.status
                ra = r.headers.get(b"retry-after")
                retry_after = ra.decode("latin-1") if ra is not None else None
            else:
                host = egress.url_host(url)
                if not self.allow_private and host is not None:
                    egress.check_host(host)  # aiohttp skips its resolver for literal addresses
                async with self.http.post(url, data=body, headers=dict(pairs),
                                          timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                          allow_redirects=False) as resp:
                    await resp.read()  # read to keep the connection; never recorded
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            # the status and a category only: a receiver's answer is never stored or shown
            return result(status, retry_after, None if 200 <= status < 300 else f"http_{status}")
        except egress.EgressRefused as e:
            return result(None, None, f"egress_refused: {e}", final=True)
        except TimeoutError:
            return result(None, None, f"timeout after {self.timeout_s}s")
        except (aiohttp.ClientError, OSError) as e:
            return result(None, None, error_category(e))
        finally:
            metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)
