"""Decide which addresses the fetcher may connect to.

The check happens after DNS resolution, on every address a host resolves to, so that a
name pointing at an internal service (or a URL written as ``2130706433``, ``0x7f000001``
or ``[::ffff:127.0.0.1]``) is refused just like the literal address would be.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from parley.parser.errors import BlockedAddressError, FetchConnectError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges that are never fetched, on top of what ``is_global`` already refuses. Python's
# ``is_global`` misses some of them (multicast, 6to4 relays, site-local, ...) and its
# answers differ between Python versions, so the list is explicit.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", including the unspecified address
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including broadcast
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 segment identifiers
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Return True only for an address that is globally routable on the internet.

    Loopback, private, CGNAT, link-local, multicast, unspecified, reserved, documentation
    and benchmarking addresses are not public. IPv6 addresses that embed an IPv4 address
    (IPv4-mapped, 6to4, Teredo, NAT64) are public only if the embedded address is too.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(embedded):
            return False
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return True  # the embedded IPv4 address decided
        blocked: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _BLOCKED_V6
        if ip.is_site_local:
            return False
    else:
        blocked = _BLOCKED_V4
    if (
        not ip.is_global
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
    ):
        return False
    return not any(ip in net for net in blocked)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a packet to ``ip`` really reaches, if it embeds one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Resolve ``host`` and return its addresses, after checking every one of them.

    Raises :class:`FetchConnectError` when the name does not resolve, and, unless
    ``allow_private``, :class:`BlockedAddressError` when ANY resolved address is not
    public. The returned strings are the exact addresses to connect to, in resolver order
    and without duplicates; connecting to anything else would reopen DNS rebinding.
    """
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not name:
        raise FetchConnectError("the URL has no host name")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError, ValueError) as exc:
        raise FetchConnectError(f"could not resolve {name}") from exc

    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address in addresses:
            continue
        if not allow_private:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            if ip is None or not is_public_address(ip):
                raise BlockedAddressError(
                    f"refused to fetch from {name}: it resolves to {address}, "
                    "which is not a public internet address"
                )
        addresses.append(address)
    if not addresses:
        raise FetchConnectError(f"could not resolve {name}")
    return addresses
