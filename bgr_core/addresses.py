"""Which network addresses a URL parameter may reach: globally routable unicast only.

`refused_address` is asked before every connection (and for every redirect) when the
caller has not allowed private addresses. An IPv6 address is judged on itself and on
every IPv4 address it carries or routes to, so that no spelling reaches a private IPv4
host through a translator or tunnel: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-translated
(``::ffff:0:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``; the
local-use ``64:ff9b:1::/48`` is refused outright), 6to4 (``2002::/16``), Teredo
(``2001::/32``: server and client) and ISATAP interface identifiers
(``…:0:5efe:a.b.c.d``, ``…:200:5efe:a.b.c.d``).
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

__all__ = ["refused_address", "embedded_ipv4"]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")


def embedded_ipv4(addr: IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address carries or is translated or tunnelled to."""
    value = int(addr)
    low32 = IPv4Address(value & 0xFFFFFFFF)
    found: list[IPv4Address] = []
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    if value >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d, IPv4-translated (RFC 2765)
        found.append(low32)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d, IPv4-compatible (deprecated)
        found.append(low32)
    if addr in _NAT64:
        found.append(low32)
    if addr in _SIXTOFOUR and addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)
    if (value >> 32) & 0xFDFFFFFF == 0x00005EFE:  # ISATAP: interface id 0:5efe or 200:5efe
        found.append(low32)
    return found


def _bad_v4(addr: IPv4Address) -> bool:
    return not addr.is_global or addr.is_multicast or addr.is_reserved or addr.is_unspecified


def refused_address(text: str) -> bool:
    """True unless `text` (an IP address, IPv6 zone allowed) is globally routable unicast,
    IPv4 or IPv6, and every IPv4 address it embeds is too."""
    addr = ipaddress.ip_address(text.split("%")[0])
    if isinstance(addr, IPv4Address):
        return _bad_v4(addr)
    value = int(addr)
    if addr.ipv4_mapped is not None or value >> 32 == 0xFFFF0000 or addr in _NAT64:
        return _bad_v4(IPv4Address(value & 0xFFFFFFFF))  # an IPv4 address in IPv6 spelling
    if (
        not addr.is_global or addr.is_multicast or addr.is_reserved or addr.is_unspecified
        or addr.is_site_local or addr.is_link_local or addr in _NAT64_LOCAL
    ):
        return True
    return any(_bad_v4(v4) for v4 in embedded_ipv4(addr))
