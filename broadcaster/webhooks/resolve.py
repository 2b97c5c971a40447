"""Resolving webhook hosts through the egress guard (broadcaster.webhooks.egress).

Both HTTP clients connect only to addresses returned here: the lean client (http1) connects
to the checked IP itself, aiohttp through `GuardedResolver`. A name any of whose addresses is
not public is refused whole, so a DNS answer mixing a public and a private address cannot
be used to reach the private one.
"""

from __future__ import annotations

import asyncio
import socket
import time

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from broadcaster.webhooks import egress

CACHE_S = 5.0  # a receiver closing every connection (HTTP/1.0) must not cost a lookup per POST
PATCH_LOOKUP_S = 2.0


class Resolver:
    """Checked (family, address) lists per (host, port), cached a few seconds."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._cache: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}

    async def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """Raise EgressRefused for a non-public target, OSError when the name does not resolve."""
        if not self.allow_private:
            egress.check_host(host)
        ip = egress.literal(host)
        if ip is not None:
            return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))]
        now = time.monotonic()
        hit = self._cache.get((host, port))
        if hit is not None and hit[0] > now:
            return hit[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        out: list[tuple[int, str]] = []
        for family, _, _, _, sockaddr in infos:
            addr = str(sockaddr[0])
            if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
                addr = f"{addr}%{sockaddr[3]}"
            if not self.allow_private:
                egress.check_address(host, addr)
            if (family, addr) not in out:
                out.append((family, addr))
        if not out:
            raise OSError(f"{host} has no address")
        if len(self._cache) > 1024:
            self._cache.clear()
        self._cache[(host, port)] = (now + CACHE_S, out)
        return out


class GuardedResolver(AbstractResolver):
    """aiohttp's threaded resolver, each answer checked by the egress guard."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if not self.allow_private:
            egress.check_host(host)
        got = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            for r in got:
                egress.check_address(host, r["host"])
        return got

    async def close(self) -> None:
        await self._inner.close()


async def check_url(url: str, allow_private: bool) -> None:
    """The PATCH-time check: literal and local names, then what the name resolves to now.
    A name that does not resolve yet is accepted; it is checked again at every connection."""
    if allow_private or not url:
        return
    host = egress.url_host(url)
    if host is None:
        return
    egress.check_host(host)
    if egress.literal(host) is not None:
        return
    try:
        async with asyncio.timeout(PATCH_LOOKUP_S):
            infos = await asyncio.get_running_loop().getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return
    for family, _, _, _, sockaddr in infos:
        addr = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            addr = f"{addr}%{sockaddr[3]}"
        egress.check_address(host, addr)
