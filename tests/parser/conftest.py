"""Fixtures for the parser tests: real HTTP(S) servers on loopback."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest
from parser_testserver import PageServer, TLSPageServer, make_certificate, serve, serve_tls


@pytest.fixture(scope="session")
def page_server() -> Iterator[PageServer]:
    """The test server on 127.0.0.1."""
    yield from serve(socket.AF_INET, "127.0.0.1")


@pytest.fixture(scope="session")
def page_server_v6() -> Iterator[PageServer]:
    """The test server on [::1], or a skip where IPv6 loopback is unavailable."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    yield from serve(socket.AF_INET6, "::1")


@pytest.fixture(scope="session")
def tls_page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSPageServer]:
    """The test server on 127.0.0.1 over TLS, certified for ``public.example`` only."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = make_certificate(openssl, tmp_path_factory.mktemp("tls"), "public.example")
    yield from serve_tls(cert, key, "public.example")


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
