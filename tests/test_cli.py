"""The `parley` command: migrations, and a one-line reason, not a traceback, on bad settings."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert "newest migration" in first.stdout
    created = tables(db)
    assert {"alembic_version", "users", "chats", "chat_members", "messages"} <= created
    with sqlite3.connect(db) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    second = run(tmp_path, "migrate", PARLEY_DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
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
    for command in ("serve", "worker", "migrate", "client"):
        assert command in result.stdout
