"""The lean HTTP/1.1 client of webhooks/http1.py: a table of responses the parser must read
(or refuse) whole and split at every byte, and the client against real sockets: keep-alive
reuse, HTTP/1.0 close, a stale kept-alive connection, the egress guard on connect."""

from __future__ import annotations

import asyncio
import socket

import pytest

from broadcaster.webhooks import egress, http1, resolve
from broadcaster.webhooks.sender import header_block, headers

OK_CL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CASES = [
    # name, raw, eof needed, status, body, keep-alive
    ("content-length", OK_CL, False, 200, b"hello", True),
    ("content-length zero", b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", False, 202, b"", True),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     False, 200, b"hello world", True),
    ("chunked with extensions and trailers",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0;last\r\n"
     b"Trailer-One: 1\r\nTrailer-Two: 2\r\n\r\n", False, 200, b"hello", True),
    ("chunked upper-case hex", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
     False, 200, b"0123456789", True),
    ("100 continue then final", b"HTTP/1.1 100 Continue\r\n\r\n" + OK_CL, False, 200, b"hello", True),
    ("103 early hints then final", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK_CL,
     False, 200, b"hello", True),
    ("204 no body", b"HTTP/1.1 204 No Content\r\n\r\n", False, 204, b"", True),
    ("304 with a length but no body", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
     False, 304, b"", True),
    ("HTTP/1.0 close-delimited", b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end", True,
     200, b"until the end", False),
    ("HTTP/1.0 with length, no keep-alive", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
     False, 200, b"ok", False),
    ("HTTP/1.0 keep-alive", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
     False, 200, b"ok", True),
    ("HTTP/1.1 close", b"HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
     False, 500, b"x", False),
    ("HTTP/1.1 no length: to the close", b"HTTP/1.1 200 OK\r\n\r\nrest", True, 200, b"rest", False),
    ("reason phrase absent", b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", False, 404, b"", True),
    ("header names any case", b"HTTP/1.1 429 Slow\r\nretry-AFTER: 7\r\ncontent-length: 0\r\n\r\n",
     False, 429, b"", True),
]


def _feed(raw: bytes, chunks: list[bytes], eof: bool) -> tuple[http1.Response, int]:
    buf = bytearray()
    got = None
    for c in chunks:
        buf += c
        got = http1.parse(buf, False)
        if got is not None:
            break
    if got is None and eof:
        got = http1.parse(buf, True)
    assert got is not None
    return got


@pytest.mark.parametrize(("name", "raw", "eof", "status", "body", "keep"), CASES, ids=[c[0] for c in CASES])
def test_parse_whole_and_split_at_every_byte(name: str, raw: bytes, eof: bool, status: int,
                                             body: bytes, keep: bool) -> None:
    for cut in range(len(raw) + 1):
        chunks = [raw[:cut], raw[cut:]] if cut else [raw]
        resp, used = _feed(raw, chunks, eof)
        assert (resp.status, resp.body, resp.keep_alive) == (status, body, keep), (name, cut)
        assert used == len(raw), (name, cut)
    # a response is incomplete until its last byte (unless it runs to the close)
    if not eof:
        assert http1.parse(bytearray(raw[:-1]), False) is None
    if name == "header names any case":
        assert http1.parse(bytearray(raw), False)[0].headers[b"retry-after"] == b"7"  # type: ignore[index]


def test_pipelined_leftover_is_not_consumed() -> None:
    buf = bytearray(OK_CL + b"HTTP/1.1 204 No Content\r\n\r\n")
    resp, used = http1.parse(buf, False)  # type: ignore[misc]
    assert resp.body == b"hello" and used == len(OK_CL)


BAD = [
    ("not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", False),
    ("status not a number", b"HTTP/1.1 abc OK\r\n\r\n", False),
    ("header without colon", b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", False),
    ("bad content-length", b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", False),
    ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", False),
    ("closed before headers end", b"HTTP/1.1 200 OK\r\nContent-Len", True),
    ("closed mid-body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True),
    ("closed mid-chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe", True),
    ("oversized body", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n" + b"x" * (http1.MAX_RESPONSE + 10),
     False),
    ("oversized chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFF\r\n"
     + b"x" * (http1.MAX_RESPONSE + 10), False),
]


@pytest.mark.parametrize(("name", "raw", "eof"), BAD, ids=[b[0] for b in BAD])
def test_malformed_and_oversized_are_protocol_errors(name: str, raw: bytes, eof: bool) -> None:
    with pytest.raises(http1.ProtocolError):
        http1.parse(bytearray(raw), eof)


def test_one_header_builder_for_both_clients() -> None:
    row = {"webhook_id": "7d4c0b8e-0000-4000-8000-000000000001", "attempt": 2}
    pairs = headers(row, "key", "abc", 1700000000, "v1,xyz")
    block = header_block(pairs)
    assert block.endswith(b"\r\n") and block.count(b"\r\n") == len(pairs)
    names = [k for k, _ in pairs]
    for n in ("X-Signature", "X-Webhook-Id", "X-Webhook-Attempt", "X-Api-Key", "webhook-id",
              "webhook-timestamp", "webhook-signature"):
        assert n in names
    assert b"X-Webhook-Attempt: 2\r\n" in block and b"webhook-timestamp: 1700000000\r\n" in block


class _Server:
    """A raw HTTP server: answers each request with `answer`, counts connections."""

    def __init__(self, answer: bytes, close: bool) -> None:
        self.answer, self.close = answer, close
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                self.requests += 1
                writer.write(self.answer)
                await writer.drain()
                if self.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _serve(answer: bytes, close: bool) -> tuple[_Server, asyncio.Server, int]:
    s = _Server(answer, close)
    srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    return s, srv, srv.sockets[0].getsockname()[1]


async def test_client_keeps_connections_alive_and_handles_close() -> None:
    client = http1.Client(resolve.Resolver(allow_private=True))
    keep, srv1, p1 = await _serve(OK_CL, close=False)
    close, srv2, p2 = await _serve(b"HTTP/1.0 200 OK\r\n\r\nbye", close=True)
    try:
        for _ in range(5):
            r = await client.post(http1.target(f"http://127.0.0.1:{p1}/h"), b"", b"{}", 5)  # type: ignore[arg-type]
            assert (r.status, r.body) == (200, b"hello")
            r = await client.post(http1.target(f"http://127.0.0.1:{p2}/h"), b"", b"{}", 5)  # type: ignore[arg-type]
            assert (r.status, r.body) == (200, b"bye")
        assert (keep.requests, keep.connections) == (5, 1)
        assert (close.requests, close.connections) == (5, 5)
    finally:
        client.close()
        for s in (srv1, srv2):
            s.close()
            await s.wait_closed()


async def test_client_connects_only_to_checked_addresses() -> None:
    client = http1.Client(resolve.Resolver(allow_private=False))
    _, srv, port = await _serve(OK_CL, close=False)
    try:
        for host in ("127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"):
            with pytest.raises(egress.EgressRefused):
                await client.post(http1.target(f"http://{host}:{port}/h"), b"", b"{}", 5)  # type: ignore[arg-type]
    finally:
        client.close()
        srv.close()
        await srv.wait_closed()


async def test_refused_connection_is_an_oserror() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    client = http1.Client(resolve.Resolver(allow_private=True))
    with pytest.raises(ConnectionRefusedError):
        await client.post(http1.target(f"http://127.0.0.1:{port}/h"), b"", b"{}", 5)  # type: ignore[arg-type]
