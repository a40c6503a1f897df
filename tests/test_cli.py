"""The `parley` command: migrations, and a one-line reason, not a traceback, on bad settings."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

import parley
from parley.auth.models import User
from parley.chats.models import Message
from parley.db.engine import Database
from tests.fixtures.servers import free_port
from tests.fixtures.users import db_user

pytestmark = pytest.mark.mode_independent

PARLEY = Path(sys.executable).parent / "parley"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`parley <args>` in a scratch directory, with no PARLEY_* variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run(
        [str(PARLEY), *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def test_migrate_twice_succeeds_both_times(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    url = f"sqlite+aiosqlite:///{db}"
    first = run(tmp_path, "migrate", PARLEY_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "created the database tables" in first.stdout
    created = tables(db)
    assert {"alembic_version", "users", "chats", "chat_members", "messages"} <= created
    with sqlite3.connect(db) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    second = run(tmp_path, "migrate", PARLEY_DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert "already at the newest migration" in second.stdout
    assert tables(db) == created
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(version,)]


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "PARLEY_SECRET_KEY must be set"),
        ("too-short", "PARLEY_SECRET_KEY must be at least 32 characters"),
    ],
    ids=["no secret", "short secret"],
)
def test_unsafe_production_settings_exit_2_with_one_line(
    tmp_path: Path, secret: str | None, reason: str
) -> None:
    db = tmp_path / "prod.db"
    env = {"PARLEY_ENV": "production", "PARLEY_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    if secret is not None:
        env["PARLEY_SECRET_KEY"] = secret
    result = run(tmp_path, "migrate", **env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("parley: ")
    assert reason in lines[0]
    assert not db.exists()  # refused before touching anything


def test_production_with_a_proper_secret_migrates(tmp_path: Path) -> None:
    db = tmp_path / "prod.db"
    result = run(
        tmp_path,
        "migrate",
        PARLEY_ENV="production",
        PARLEY_SECRET_KEY="k" * 48,
        PARLEY_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
    )
    assert result.returncode == 0, result.stderr
    assert "users" in tables(db)


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 2
    assert "usage: parley" in result.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("serve", "worker", "migrate", "demo", "client"):
        assert command in result.stdout


def test_version(tmp_path: Path) -> None:
    result = run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"parley {parley.__version__}"


@pytest.mark.parametrize("command", ["serve", "hooks", "worker", "migrate", "demo"])
def test_every_option_says_what_it_does_and_its_default(tmp_path: Path, command: str) -> None:
    result = run(tmp_path, command, "--help")
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("options:", 1)[1]
    for entry in re.split(r"\n  (?=-)", "\n" + section)[1:]:
        words = " ".join(entry.split())
        flag = words.split()[0].rstrip(",")
        if flag == "-h":
            continue
        takes_a_value = words.split()[1].isupper()
        described = words.split(maxsplit=2 if takes_a_value else 1)[-1]
        assert len(described) > 10, (command, words)
        if takes_a_value:
            assert "(default:" in words, (command, words)
        # Said once, and never as a bare None.
        assert words.count("(default") <= 1, (command, words)
        assert "(default: None)" not in words, (command, words)


def one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command exited 2 with one line on stderr, holding every one of `needles`."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_a_database_url_that_is_not_supported(tmp_path: Path) -> None:
    for url in ("mysql://root@localhost/parley", "postgresql://nobody@localhost/x", "nonsense"):
        one_line_failure(run(tmp_path, "migrate", PARLEY_DATABASE_URL=url), "PARLEY_DATABASE_URL")


def test_a_database_that_does_not_exist_says_how_to_create_it(tmp_path: Path) -> None:
    name = f"parley_missing_{os.getpid()}"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    line = one_line_failure(run(tmp_path, "migrate", PARLEY_DATABASE_URL=url), "does not exist")
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {name}" in line


def test_postgresql_redis_or_the_broker_unreachable(tmp_path: Path) -> None:
    dead = free_port()
    db = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    one_line_failure(
        run(tmp_path, "migrate", PARLEY_DATABASE_URL=f"postgresql+asyncpg://u@127.0.0.1:{dead}/x"),
        "PARLEY_DATABASE_URL",
        "cannot reach PostgreSQL",
    )
    for command in ("serve", "worker"):
        one_line_failure(
            run(
                tmp_path,
                command,
                PARLEY_DATABASE_URL=db,
                PARLEY_REDIS_URL=f"redis://127.0.0.1:{dead}/0",
            ),
            "PARLEY_REDIS_URL",
            "cannot reach Redis",
        )
    one_line_failure(
        run(
            tmp_path,
            "serve",
            "--port",
            str(free_port()),
            PARLEY_DATABASE_URL=db,
            PARLEY_BROKER_URL=f"amqp://guest:secret@127.0.0.1:{dead}//",
        ),
        "PARLEY_BROKER_URL",
        "guest:***@",
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_named(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
        result = run(
            tmp_path, "serve", "--port", str(port), "--workers", workers, PARLEY_DATABASE_URL=db
        )
    one_line_failure(result, f"127.0.0.1:{port}", "in use", "--port")


def test_embedded_mode_refuses_more_than_one_process(tmp_path: Path) -> None:
    """Live events, the event log and the job queue live in one process's memory there: a
    second process would serve sockets that never get another's events."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    result = run(
        tmp_path, "serve", "--port", str(free_port()), "--workers", "2", PARLEY_DATABASE_URL=db
    )
    one_line_failure(result, "--workers 2", "PARLEY_REDIS_URL", "one process")
    assert not (tmp_path / "p.db").exists()  # refused before it migrated anything


def test_a_bad_setting_value_names_the_variable(tmp_path: Path) -> None:
    one_line_failure(
        run(tmp_path, "migrate", PARLEY_DATABASE_POOL_SIZE="many"),
        "PARLEY_DATABASE_POOL_SIZE",
        "'many'",
    )


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run(tmp_path, "--debug", "migrate", PARLEY_DATABASE_URL="mysql://x/y")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("parley: PARLEY_DATABASE_URL")


def test_demo_fills_an_empty_database_once(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    env = {"PARLEY_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    first = run(tmp_path, "demo", **env)
    assert first.returncode == 0, first.stderr
    assert "alice" in first.stdout
    assert "parley-demo" in first.stdout
    with sqlite3.connect(db) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        chats = conn.execute("SELECT type, title FROM chats ORDER BY id").fetchall()
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert users == 4
    assert [c[0] for c in chats] == ["direct", "group", "group"]
    assert messages >= 10
    again = run(tmp_path, "demo", **env)
    one_line_failure(again, "already has 4 users", "--force")


def test_demo_on_the_suite_s_database_and_with_force(tmp_path: Path, own_database_url: str) -> None:
    """The same on this pass's database (PostgreSQL in services mode); --force adds the demo
    beside real users, and says so in one line when the demo is there already."""
    env = {"PARLEY_DATABASE_URL": own_database_url}
    asyncio.run(_register_someone(own_database_url))
    refused = run(tmp_path, "demo", **env)
    one_line_failure(refused, "already has 1 users", "--force")

    forced = run(tmp_path, "demo", "--force", **env)
    assert forced.returncode == 0, forced.stderr
    assert asyncio.run(_count(own_database_url, User)) == 5
    assert asyncio.run(_count(own_database_url, Message)) >= 10

    again = run(tmp_path, "demo", "--force", **env)
    one_line_failure(again, "demo's users are there already", "alice")
    assert asyncio.run(_count(own_database_url, User)) == 5


async def _register_someone(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db_user(db, "erin")
    finally:
        await db.dispose()


async def _count(database_url: str, model: type[User | Message]) -> int:
    db = Database(database_url)
    try:
        async with db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        await db.dispose()
