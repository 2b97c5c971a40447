"""The egress guard (pure): which addresses a webhook may be sent to.

A tenant chooses its receivers' URLs, so without a guard the worker would POST (and, before,
echo the answer of) anything it can reach: loopback services, Redis, the API itself, cloud
metadata at 169.254.169.254, the private network. Every address a URL's host stands for is
checked, in every spelling a resolver accepts: dotted, decimal `2130706433`, octal `0177.1`,
hex `0x7f.1`, short `127.1`, IPv4-mapped and -compatible IPv6, NAT64 and 6to4 embeddings.
The check runs at PATCH /app and again at connect time on the resolved addresses (DNS can
change between the two); the connection then goes to the address that was checked.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC = re.compile(r"^[0-9a-fA-FxX.]+$")  # what inet_aton might read as IPv4
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class EgressRefused(Exception):
    """The URL's host is (or resolves to) an address webhooks must not reach."""

    def __init__(self, host: str, address: str, why: str) -> None:
        super().__init__(f"{host} is {why} ({address})" if host != address else f"{address} is {why}")
        self.host = host
        self.address = address
        self.why = why


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip))
    return None


def why_blocked(ip: IP) -> str | None:
    """The kind of non-public address `ip` is, None when webhooks may go there."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) address"
        inner = _embedded_v4(ip)
        if inner is not None:
            return why_blocked(inner)
    for attr, name in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return f"a {name} address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if not ip.is_global:  # shared address space 100.64/10 and the like
        return "not a public address"
    return None


def literal(host: str) -> IP | None:
    """The address a host names literally in any spelling, None for a DNS name."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if _NUMERIC.match(h) and any(c.isdigit() for c in h):
        try:  # the C resolver's reading: decimal, octal, hex and short forms
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return None
    return None


def check_address(host: str, address: str) -> None:
    """Raise EgressRefused when `address` (as resolved for `host`) is not public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if "%" in address else address)
    except ValueError:
        raise EgressRefused(host, address, "not an IP address") from None
    if "%" in address:
        raise EgressRefused(host, address, "a scoped (link-local) address")
    why = why_blocked(ip)
    if why:
        raise EgressRefused(host, address, why)


def check_host(host: str) -> None:
    """The part of the check that needs no resolver: literal addresses and local names."""
    h = host.strip("[]").rstrip(".").lower()
    if not h:
        raise EgressRefused(host, host, "empty")
    if h in _LOCAL_NAMES or h.endswith(".localhost"):
        raise EgressRefused(host, host, "a loopback name")
    ip = literal(h)
    if ip is not None:
        why = why_blocked(ip)
        if why:
            raise EgressRefused(host, str(ip), why)


def url_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
