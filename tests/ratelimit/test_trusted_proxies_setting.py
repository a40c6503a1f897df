"""PARLEY_TRUSTED_PROXIES: addresses and networks, checked when the settings are read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parley.settings import Settings


def settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_default_trusts_the_loopback_proxy_only() -> None:
    assert settings().trusted_proxy_list == ["127.0.0.1/32", "::1/128"]


def test_addresses_and_networks_are_read_canonically() -> None:
    value = " 10.0.0.0/8, 192.168.1.7 ,fd00::/8,, 172.16.5.4/12"
    assert settings(trusted_proxies=value).trusted_proxy_list == [
        "10.0.0.0/8",
        "192.168.1.7/32",
        "fd00::/8",
        "172.16.0.0/12",
    ]


def test_empty_trusts_no_one() -> None:
    assert settings(trusted_proxies="").trusted_proxy_list == []


@pytest.mark.parametrize("value", ["nginx", "*", "10.0.0.0/33", "1.2.3.4:80"])
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="PARLEY_TRUSTED_PROXIES"):
        settings(trusted_proxies=value)
