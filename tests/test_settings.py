"""Settings: environment and .env reading, and production refusing unsafe defaults."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError

from parley.auth import passwords
from parley.settings import DEFAULT_DATABASE_URL, Settings, UnsafeSettingsError

pytestmark = pytest.mark.mode_independent

LONG_SECRET = "s" * 32


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PARLEY_* variable from the outside, and a scratch working directory."""
    for name in list(os.environ):
        if name.startswith("PARLEY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_defaults_are_embedded_development() -> None:
    s = settings()
    assert s.env == "development"
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.redis_url is None
    assert s.services_mode is False
    assert s.effective_broker_url == "memory://"
    assert s.auto_migrate is True
    assert s.fetch_allow_private is False
    assert s.root_path == ""
    assert s.max_body_bytes == 1024 * 1024
    assert s.secure_cookies is False


def test_production_without_a_secret_is_refused() -> None:
    with pytest.raises(UnsafeSettingsError, match="PARLEY_SECRET_KEY must be set"):
        settings(env="production")


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_production_with_an_empty_or_short_secret_is_refused(secret: str) -> None:
    with pytest.raises(UnsafeSettingsError, match="PARLEY_SECRET_KEY"):
        settings(env="production", secret_key=secret)


def test_production_with_debug_is_refused() -> None:
    with pytest.raises(UnsafeSettingsError, match="PARLEY_DEBUG"):
        settings(env="production", secret_key=LONG_SECRET, debug=True)


def test_production_with_a_long_secret_is_fine_and_has_secure_cookies() -> None:
    s = settings(env="production", secret_key=LONG_SECRET)
    assert s.signing_key() == LONG_SECRET
    assert s.secure_cookies is True
    assert not Path(".parley-secret").exists()


def test_production_is_refused_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_ENV", "production")
    with pytest.raises(UnsafeSettingsError):
        settings()
    monkeypatch.setenv("PARLEY_SECRET_KEY", LONG_SECRET)
    assert settings().env == "production"


def test_the_secret_is_not_in_the_repr() -> None:
    s = settings(env="production", secret_key=LONG_SECRET)
    assert LONG_SECRET not in repr(s)


def test_development_generates_a_local_secret_once(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="PARLEY_SECRET_KEY is not set"):
        first = settings().signing_key()
    secret_file = tmp_path / ".parley-secret"
    assert secret_file.read_text().strip() == first
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(first) >= 32
    # Another process (or restart) reads the same key instead of making a new one.
    assert settings().signing_key() == first


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_DATABASE_URL", "postgresql+asyncpg://db/parley")
    monkeypatch.setenv("PARLEY_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("PARLEY_AUTO_MIGRATE", "false")
    monkeypatch.setenv("PARLEY_FETCH_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("PARLEY_ROOT_PATH", "/chat")
    s = settings()
    assert s.database_url == "postgresql+asyncpg://db/parley"
    assert s.services_mode is True
    assert s.effective_broker_url == "redis://cache:6379/0"
    assert s.auto_migrate is False
    assert s.fetch_allow_private is True
    assert s.root_path == "/chat"


def test_an_explicit_broker_wins_over_redis() -> None:
    s = settings(redis_url="redis://cache/0", broker_url="amqp://rabbit//")
    assert s.effective_broker_url == "amqp://rabbit//"


def test_values_come_from_a_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("PARLEY_ENV=production\nPARLEY_SECRET_KEY=" + LONG_SECRET + "\n")
    s = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert (s.env, s.secret_key) == ("production", LONG_SECRET)


@pytest.mark.parametrize(
    "values",
    [
        {"env": "prod"},
        {"auto_migrate": "maybe"},
        {"max_body_bytes": "lots"},
        {"database_pool_size": 0},
        {"database_max_overflow": -1},
    ],
    ids=repr,
)
def test_invalid_values_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)


def test_cors_origins_are_a_comma_separated_list() -> None:
    s = settings(cors_origins=" https://a.example , https://b.example,, ")
    assert s.cors_origin_list == ["https://a.example", "https://b.example"]


def test_password_hash_costs_default_to_argon2s_own() -> None:
    s = settings()
    default = PasswordHasher()
    assert (
        s.password_hash_time_cost,
        s.password_hash_memory_cost,
        s.password_hash_parallelism,
    ) == (default.time_cost, default.memory_cost, default.parallelism)


@pytest.mark.parametrize(
    "values",
    [
        {"password_hash_time_cost": 0},
        {"password_hash_parallelism": 0},
        {"password_hash_memory_cost": 7},
        {"password_hash_memory_cost": 16, "password_hash_parallelism": 4},
    ],
)
def test_password_hash_costs_argon2_cannot_use_are_refused(values: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)


def test_configured_costs_hash_and_other_costs_still_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "_configured", None)  # restored after: this process's costs
    passwords.configure(settings(password_hash_memory_cost=4096, password_hash_parallelism=2))
    old = passwords.hash_password("pw")
    passwords.configure(
        settings(
            password_hash_time_cost=1, password_hash_memory_cost=8, password_hash_parallelism=1
        )
    )
    new = passwords.hash_password("pw")
    assert "m=8,t=1,p=1" in new
    assert "m=4096,t=3,p=2" in old
    assert passwords.verify_password("pw", new)
    assert passwords.verify_password("pw", old)
    assert not passwords.verify_password("other", new)
    assert not passwords.verify_password("pw", None)
