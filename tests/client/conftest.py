"""One embedded `parley serve` for the client tests, and users driving the real client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.client.harness import ClientUser, start_embedded_server, unique
from tests.servers import ServerProcess


@pytest.fixture(scope="session")
def client_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server process (embedded mode, its own SQLite file) shared by the client tests."""
    server = start_embedded_server(tmp_path_factory.mktemp("client-server"))
    yield server
    server.stop()


@pytest.fixture
def make_user(client_server: ServerProcess, tmp_path: Path) -> Callable[[str], ClientUser]:
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
