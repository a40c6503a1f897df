"""What the `parley` command checks before it starts, and how it says what is wrong.

Every failure a newcomer can cause (a setting of the wrong type, a database URL that is not
supported, PostgreSQL, Redis or the broker unreachable, a database that does not exist, a
port in use) becomes a `StartupError`: one line that names the setting and says what to
do. The command prints it and exits 2; with `--debug` the traceback follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ValidationError

from parley.settings import Settings, UnsafeSettingsError

SUPPORTED_DATABASES = "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST:PORT/NAME"
CHECK_TIMEOUT_SECONDS = 5.0


class StartupError(Exception):
    """Parley cannot start; the message is one line: what is wrong, and what to do."""


def load_settings() -> Settings:
    """The settings from the environment (and .env); StartupError naming a bad variable."""
    from parley.settings import get_settings

    try:
        return get_settings()
    except UnsafeSettingsError as exc:
        raise StartupError(str(exc)) from exc
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else "a setting"
        value = problem.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        raise StartupError(
            f"PARLEY_{field.upper()}: {problem['msg']}{shown}; see .env.example"
        ) from exc


def hide_password(url: str) -> str:
    """`url` with its password, if any, replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # not a URL at all: nothing we can tell apart from a password
        return "(an unreadable URL)"
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class Migration:
    """What `migrate` did: the revision before (None: an empty database) and after."""

    before: str | None
    after: str | None

    def describe(self) -> str:
        """One line for the operator."""
        if self.before == self.after:
            return f"the database is already at the newest migration ({self.after})"
        if self.before is None:
            return f"created the database tables (migrated to {self.after})"
        return f"migrated the database from {self.before} to {self.after}"


def migrate(url: str) -> Migration:
    """Apply the migrations up to head, saying what changed; StartupError on a database
    that cannot be reached or used."""
    from parley.db.migrate import current_revision, upgrade_to_head

    with database_errors(url):
        before = current_revision(url)
        upgrade_to_head(url)
        return Migration(before, current_revision(url))


def check_database(url: str) -> None:
    """One round trip to the database; StartupError when it cannot be used."""
    from sqlalchemy import text

    from parley.db.engine import make_engine

    async def ping() -> None:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    with database_errors(url):
        asyncio.run(asyncio.wait_for(ping(), CHECK_TIMEOUT_SECONDS))


@contextlib.contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn what a database driver raises into one line about PARLEY_DATABASE_URL."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    shown = hide_password(url)
    if not url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        raise StartupError(
            f"PARLEY_DATABASE_URL: {shown!r} is not supported; use {SUPPORTED_DATABASES}"
        )
    try:
        yield
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StartupError(
            f"PARLEY_DATABASE_URL: {shown!r} is not a valid URL ({_first_line(exc)}); "
            f"use {SUPPORTED_DATABASES}"
        ) from exc
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise StartupError(_database_problem(url, exc)) from exc


def _database_problem(url: str, exc: BaseException) -> str:
    try:
        parts = urlsplit(url.replace("+asyncpg", "").replace("+aiosqlite", ""))
        _ = parts.port
    except ValueError:
        return f"PARLEY_DATABASE_URL: not a valid URL; use {SUPPORTED_DATABASES}"
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    name = parts.path.lstrip("/")
    text = _first_line(exc)
    if url.startswith("sqlite"):
        return (
            f"PARLEY_DATABASE_URL: cannot open the SQLite database {name!r} ({text}); "
            "check that its directory exists and is writable"
        )
    if "does not exist" in text and "database" in text:
        create = f"createdb -h {parts.hostname or 'localhost'} -p {parts.port or 5432}"
        create += f" -U {parts.username}" if parts.username else ""
        return (
            f"PARLEY_DATABASE_URL: the database {name!r} does not exist on {where}; "
            f"create it ({create} {name}), then run `parley migrate`"
        )
    if "password" in text or "authentication" in text or "role" in text:
        return f"PARLEY_DATABASE_URL: PostgreSQL at {where} refused the login ({text})"
    return (
        f"PARLEY_DATABASE_URL: cannot reach PostgreSQL at {where} ({text}); "
        "start it, or point PARLEY_DATABASE_URL at it"
    )


def check_redis(url: str, setting: str = "PARLEY_REDIS_URL") -> None:
    """A PING to Redis; StartupError naming `setting` when it does not answer."""
    import redis

    shown = hide_password(url)
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
        )
    except ValueError as exc:
        raise StartupError(f"{setting}: {shown!r} is not a Redis URL ({exc})") from exc
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise StartupError(
            f"{setting}: cannot reach Redis at {shown} ({_first_line(exc)}); start it, "
            f"or point {setting} at it"
        ) from exc
    finally:
        client.close()


def check_broker(settings: Settings) -> None:
    """Connect to the job broker when it is not the in-process one nor Redis (checked
    apart); StartupError naming PARLEY_BROKER_URL when it does not answer."""
    url = settings.broker_url
    if not url or url == settings.redis_url:
        return
    if url.startswith(("redis://", "rediss://")):
        check_redis(url, "PARLEY_BROKER_URL")
        return
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0)
    except Exception as exc:  # kombu raises many kinds; each means "no broker"
        raise StartupError(
            f"PARLEY_BROKER_URL: cannot reach the broker at {hide_password(url)} "
            f"({_first_line(exc)}); start it, or fix the URL"
        ) from exc


def check_port(host: str, port: int) -> None:
    """StartupError when nothing can listen on host:port (in use, or not an address here)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
            raise StartupError(
                f"--host/--port: {host}:{port} {reason}; stop what listens there, or pass "
                "another --port"
            ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
