"""Which addresses the fetcher may reach."""

from __future__ import annotations

import ipaddress

import pytest

from parley.parser import BlockedAddressError, FetchConnectError, is_public_address, resolve_checked

pytestmark = pytest.mark.mode_independent

NOT_PUBLIC = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.255",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.0.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::8.8.8.8",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",
    "100::1",
    "2001:db8::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
]
PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.32.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:82b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "::1",
        "0.0.0.0",
        "2130706433",
        "0x7f000001",
        "017700000001",
        "127.1",
        "::ffff:127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
    ],
)
async def test_resolve_checked_refuses(host: str) -> None:
    with pytest.raises(BlockedAddressError):
        await resolve_checked(host, 80, allow_private=False)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", ["127.0.0.1"]),
        ("0x7f000001", ["127.0.0.1"]),
        ("[::1]", ["::1"]),
        ("127.0.0.1", ["127.0.0.1"]),
    ],
)
async def test_resolve_checked_allows_private_when_asked(host: str, expected: list[str]) -> None:
    assert await resolve_checked(host, 80, allow_private=True) == expected


async def test_resolve_checked_passes_public_literals() -> None:
    # A literal address resolves without DNS, so this needs no network.
    assert await resolve_checked("8.8.8.8", 443, allow_private=False) == ["8.8.8.8"]
    assert await resolve_checked("[2606:4700::1111]", 443, allow_private=False) == [
        "2606:4700::1111"
    ]


@pytest.mark.parametrize("host", ["no-such-host.invalid", "", "[]", "a..b"])
async def test_resolve_checked_reports_unresolvable(host: str) -> None:
    with pytest.raises(FetchConnectError) as caught:
        await resolve_checked(host, 80, allow_private=True)
    assert caught.value.transient is True
