"""A lean HTTP/1.1 POST client for plain-http webhook receivers.

aiohttp spends ~3x the CPU of the request itself per POST (request/response objects,
multidicts, payload wrappers, timers, connector bookkeeping); at thousands of deliveries/s
that is the worker's whole budget. Here a request is one prebuilt bytes write on a
kept-alive connection and the answer is parsed from one buffer. https and anything unusual
(credentials in the URL, odd characters) stay on aiohttp: see `supports`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

MAX_RESPONSE = 1 << 20  # a receiver's answer is read whole; more than this is an error
_NO_BODY = (204, 304)


class ProtocolError(ConnectionError):
    """The receiver's answer is not HTTP/1.x we can read (an OSError: a network failure)."""


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[tuple[int, str]]: ...


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    head: bytes  # request line + Host header


@lru_cache(maxsize=1024)
def target(url: str) -> Target | None:
    """Where to send, None when the URL needs the full client (https, userinfo, odd bytes)."""
    if any(c in url for c in " \t\r\n") or not url.isascii():
        return None
    try:
        u = urlsplit(url)
        port = u.port or 80
    except ValueError:
        return None
    if u.scheme != "http" or not u.hostname or "@" in u.netloc:
        return None
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return Target(u.hostname, port, f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\n".encode())


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]  # lower-case names
    body: bytes
    keep_alive: bool


def parse(buf: bytearray, eof: bool) -> tuple[Response, int] | None:
    """(response, bytes used) when buf holds a whole final response; None if more is needed."""
    start = 0
    while True:
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            if eof:
                raise ProtocolError("connection closed before a full response")
            return None
        lines = bytes(buf[start:end]).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError("malformed response header")
            headers[name.strip().lower()] = value.strip()
        pos = end + 4
        if 100 <= status < 200:  # interim answers (100 Continue, 103): the final one follows
            start = pos
            continue
        break
    conn = headers.get(b"connection", b"").lower()
    keep = (b"close" not in conn) if parts[0] == b"HTTP/1.1" else (b"keep-alive" in conn)
    if status in _NO_BODY:
        return Response(status, headers, b"", keep), pos
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        chunks: list[bytes] = []
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return _more(buf, eof)
            try:
                size = int(bytes(buf[pos:nl]).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError("malformed chunk size") from None
            if size == 0:
                tail = buf.find(b"\r\n\r\n", nl) if buf[nl + 2:nl + 4] != b"\r\n" else nl
                if tail < 0:
                    return _more(buf, eof)
                return Response(status, headers, b"".join(chunks), keep), tail + 4
            if len(buf) < nl + 2 + size + 2:
                return _more(buf, eof)
            chunks.append(bytes(buf[nl + 2:nl + 2 + size]))
            pos = nl + 2 + size + 2
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise ProtocolError("malformed Content-Length")
        n = int(length)
        if len(buf) - pos < n:
            return _more(buf, eof)
        return Response(status, headers, bytes(buf[pos:pos + n]), keep), pos + n
    if not eof:  # no length: the body runs to the end of the connection
        return _more(buf, eof)
    return Response(status, headers, bytes(buf[pos:]), False), len(buf)


def _more(buf: bytearray, eof: bool) -> tuple[Response, int] | None:
    if eof:
        raise ProtocolError("connection closed mid-response")
    if len(buf) > MAX_RESPONSE:
        raise ProtocolError("response too large")
    return None


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.waiter: asyncio.Future[Response] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._check()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._check()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.eof = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(exc or ProtocolError("connection closed before a full response"))

    def _check(self) -> None:
        w = self.waiter
        if w is None or w.done():
            return
        try:
            got = parse(self.buf, self.eof)
        except ProtocolError as e:
            w.set_exception(e)
            return
        if got is not None:
            del self.buf[:got[1]]
            w.set_result(got[0])

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Client:
    """Kept-alive connections per (host, port); one request at a time on each. New
    connections go to an address `resolver` returned (the egress guard checked it)."""

    def __init__(self, resolver: Resolver) -> None:
        self.idle: dict[tuple[str, int], list[_Conn]] = {}
        self.resolver = resolver

    async def _connect(self, t: Target) -> _Conn:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for family, addr in await self.resolver.resolve(t.host, t.port):
            try:
                _, conn = await loop.create_connection(_Conn, addr, t.port, family=family)
                return conn
            except OSError as e:
                last = e
        assert last is not None
        raise last

    async def post(self, t: Target, headers: bytes, body: bytes, timeout: float) -> Response:
        """headers: the request's own header lines, each ending in CRLF. Raises OSError on
        network and protocol errors, TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            req = b"".join((t.head, headers, b"Content-Length: %d\r\n\r\n" % len(body), body))
            for reused in (True, False):
                conn = self._idle(t) if reused else None
                if reused and conn is None:
                    continue
                if conn is None:
                    conn = await self._connect(t)
                try:
                    resp = await self._exchange(conn, req)
                except ConnectionError:
                    conn.close()
                    if reused and not conn.buf:  # a stale kept-alive connection: once more, fresh
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                if resp.keep_alive and not conn.eof and not conn.buf:
                    self.idle.setdefault((t.host, t.port), []).append(conn)
                else:
                    conn.close()
                return resp
        raise AssertionError("unreachable")

    def _idle(self, t: Target) -> _Conn | None:
        free = self.idle.get((t.host, t.port))
        while free:
            c = free.pop()
            if not c.closed and not c.eof:
                return c
            c.close()
        return None

    @staticmethod
    async def _exchange(conn: _Conn, req: bytes) -> Response:
        conn.waiter = asyncio.get_running_loop().create_future()
        assert conn.transport is not None
        conn.transport.write(req)
        try:
            return await conn.waiter
        finally:
            conn.waiter = None

    def close(self) -> None:
        for conns in self.idle.values():
            for c in conns:
                c.close()
        self.idle.clear()
