"""The OpenAPI document against the running server, with Schemathesis: every check, every phase.

Schemathesis generates requests from `/openapi.json` (examples, boundary values, fuzzing,
and stateful sequences that follow the document's links: create a chat, post into it...)
and checks every answer: no 5xx, every status documented with its schema and headers, valid
input accepted and invalid input refused, `Allow` on 405, authentication not ignored,
created resources reachable. `schemathesis.toml` at the repository root says which refusals
of schema-valid input are expected (a wrong one-time code, an opaque cursor). Any finding
fails the test, with Schemathesis' report.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, TEST_SECRET, migrated_database
from tests.servers import ServerProcess, start_server

REPO = Path(__file__).resolve().parents[2]
SEED = "20261129"
MAX_EXAMPLES = "15"


@pytest.fixture(scope="module")
def server(
    redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # A database of its own: the suite's shared one may be held by an in-process app's
    # transaction, which a SQLite writer in another process would wait on.
    with migrated_database(tmp_path_factory) as database_url:
        yield from _serve(database_url, redis_url, tmp_path_factory)


def _serve(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "PARLEY_ENV": "test",
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_SECRET_KEY": TEST_SECRET,
        "PARLEY_AUTO_MIGRATE": "false",
        "PARLEY_LOG_LEVEL": "WARNING",
        "PARLEY_FETCH_ALLOW_PRIVATE": "true",
    }
    if redis_url:
        env["PARLEY_REDIS_URL"] = redis_url
    started = start_server(env, tmp_path_factory.mktemp("schemathesis"))
    yield started
    started.stop()


def _token(server: ServerProcess, username: str) -> str:
    with httpx.Client(base_url=server.http, timeout=15) as c:
        c.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        resp = c.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])


@pytest.mark.timeout(300)
def test_schemathesis_finds_nothing(server: ServerProcess) -> None:
    token = _token(server, "schemathesis")
    _token(server, "someone.else")  # a second user for the member routes to find
    run = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "run"),
            f"{server.http}/openapi.json",
            *("--header", f"Authorization: Bearer {token}"),
            *("--checks", "all"),
            *("--phases", "examples,coverage,fuzzing,stateful"),
            *("--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"),
            *("--suppress-health-check", "all"),
            "--no-color",
        ],
        cwd=REPO,  # for schemathesis.toml
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-3000:]
