"""One `parley serve` (in the suite's mode) for the client tests, and users driving the real
client against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.client.harness import ClientUser, Deployment, deployment, unique


@pytest.fixture(scope="package")
def client_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A real server (and its job worker in services mode) shared by the client tests."""
    with deployment(tmp_path_factory.mktemp("client-server")) as running:
        yield running


@pytest.fixture
def make_user(client_server: Deployment, tmp_path: Path) -> Callable[[str], ClientUser]:
    """A factory of client users, each with a unique name and their own config file."""

    def make(prefix: str) -> ClientUser:
        name = unique(prefix)
        return ClientUser(name, tmp_path / name / "client.json", client_server.http)

    return make


@pytest.fixture
def alice(make_user: Callable[[str], ClientUser]) -> ClientUser:
    """A registered, logged-in client user."""
    user = make_user("alice")
    user.sign_up()
    return user


@pytest.fixture
def bob(make_user: Callable[[str], ClientUser]) -> ClientUser:
    """Another registered, logged-in client user."""
    user = make_user("bob")
    user.sign_up()
    return user
