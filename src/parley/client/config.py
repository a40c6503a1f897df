"""The client's config file: which server, and the tokens of the session on each server.

The file is JSON, written atomically with mode 0600 in a 0700 directory, at
`$PARLEY_CLIENT_CONFIG` or `~/.config/parley/client.json`. Several client processes may
share it (a `watch` running while `send` is used): token rotation re-reads it under a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_ENV = "PARLEY_CLIENT_CONFIG"
SERVER_ENV = "PARLEY_SERVER"
DEFAULT_SERVER = "http://127.0.0.1:8000"


class ConfigError(Exception):
    """The config file exists but cannot be read or written."""


@dataclass
class Session:
    """The tokens the client holds for one server."""

    username: str
    access_token: str
    refresh_token: str

    def to_json(self) -> dict[str, str]:
        """The file form of this session."""
        return {
            "username": self.username,
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Session | None:
        """A session from its file form; None when a field is missing or mistyped."""
        username, access, refresh = (
            raw.get("username"),
            raw.get("accessToken"),
            raw.get("refreshToken"),
        )
        if isinstance(username, str) and isinstance(access, str) and isinstance(refresh, str):
            return cls(username=username, access_token=access, refresh_token=refresh)
        return None


@dataclass
class ClientConfig:
    """Everything in the config file."""

    current_server: str | None = None
    sessions: dict[str, Session] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The file form of the config."""
        return {
            "currentServer": self.current_server,
            "sessions": {url: s.to_json() for url, s in self.sessions.items()},
        }

    @classmethod
    def from_json(cls, raw: Any) -> ClientConfig:
        """The config from its file form; unknown or broken entries are dropped."""
        if not isinstance(raw, dict):
            raise ConfigError("the config file does not hold a JSON object")
        current = raw.get("currentServer")
        sessions: dict[str, Session] = {}
        raw_sessions = raw.get("sessions")
        if isinstance(raw_sessions, dict):
            for url, value in raw_sessions.items():
                session = Session.from_json(value) if isinstance(value, dict) else None
                if isinstance(url, str) and session is not None:
                    sessions[url] = session
        return cls(current_server=current if isinstance(current, str) else None, sessions=sessions)


def config_path() -> Path:
    """Where the config file lives: `$PARLEY_CLIENT_CONFIG`, else `~/.config/parley/client.json`."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "parley" / "client.json"


def normalize_server(url: str) -> str:
    """A server URL in the one form used as a key: scheme and host, no trailing slash."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def resolve_server(explicit: str | None, config: ClientConfig) -> str:
    """The server to talk to: `--server`, else `$PARLEY_SERVER`, else the one last logged
    in to, else the default."""
    chosen = explicit or os.environ.get(SERVER_ENV) or config.current_server or DEFAULT_SERVER
    return normalize_server(chosen)


def load(path: Path) -> ClientConfig:
    """The config at `path`; an empty config when there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ClientConfig()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return ClientConfig.from_json(json.loads(text))
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON; fix or delete it") from exc


def save(path: Path, config: ClientConfig) -> None:
    """Write the config atomically, readable by its owner only (mode 0600)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".client-", suffix=".json", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(config.to_json(), out, indent=2)
                out.write("\n")
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the config file (for read-modify-write of tokens)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot lock {lock_path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
