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

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import migrated_database
from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.fixtures.users import register_on

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
    started = start_server(
        server_env(database_url, redis_url), tmp_path_factory.mktemp("schemathesis")
    )
    yield started
    started.stop()


def run_schemathesis(base: str, token: str, *options: str, timeout: float) -> str:
    """Schemathesis against `base`'s OpenAPI document as the holder of `token`, with every
    check and these `options`; fails the test on any finding. Its output."""
    run = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "run"),
            f"{base}/openapi.json",
            *("--header", f"Authorization: Bearer {token}"),
            *("--checks", "all"),
            *options,
            *("--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"),
            *("--suppress-health-check", "all"),
            "--no-color",
        ],
        cwd=REPO,  # for schemathesis.toml
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    return run.stdout


@pytest.mark.timeout(300)
def test_schemathesis_finds_nothing(server: ServerProcess) -> None:
    token = asyncio.run(register_on(server.http, "schemathesis")).access_token
    asyncio.run(register_on(server.http, "someone.else"))  # for the member routes to find
    out = run_schemathesis(
        server.http, token, "--phases", "examples,coverage,fuzzing,stateful", timeout=280
    )
    assert "No issues found" in out or " passed" in out, out[-3000:]
