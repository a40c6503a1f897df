"""Settings: one pydantic-settings class read from the environment or a `.env` file."""

from __future__ import annotations

import ipaddress
import secrets
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = Path(".parley-secret")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./parley.db"


class UnsafeSettingsError(RuntimeError):
    """Raised when settings would be unsafe, or impossible, to run with."""


class Settings(BaseSettings):
    """Every knob Parley reads, each from `PARLEY_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production", "test"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    broker_url: str | None = None
    # `PARLEY_REDIS_URL` names any node of a Redis Cluster. Each user's keys live in one of
    # `redis_cluster_partitions` partitions (hash tags), which spread over the masters;
    # changing the number moves users to other partitions (their clients resync once).
    redis_cluster: bool = False
    redis_cluster_partitions: int = Field(default=16, ge=1, le=1024)
    secret_key: str | None = Field(default=None, repr=False)
    auto_migrate: bool = True
    fetch_allow_private: bool = False
    root_path: str = ""
    debug: bool = False
    cors_origins: str = ""
    # Peers whose X-Forwarded-For/-Proto are believed (addresses or CIDRs, comma-separated);
    # the client is the rightmost forwarded address not in this list. Empty: believe none.
    trusted_proxies: str = "127.0.0.1,::1"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024

    # Argon2id costs for password hashes (argon2-cffi's defaults): iterations, memory in
    # KiB (at least 8 per lane) and lanes. Hashes made with other costs still verify.
    password_hash_time_cost: int = Field(default=3, ge=1, le=100)
    password_hash_memory_cost: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    password_hash_parallelism: int = Field(default=4, ge=1, le=64)

    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    session_ttl_seconds: int = 14 * 24 * 3600
    jwt_issuer: str = "parley"
    session_cookie_name: str = "parley_session"
    # A refresh token presented again this soon after its rotation (two tabs refreshing at
    # once) gets the same successor instead of revoking its family.
    refresh_reuse_interval_seconds: float = Field(default=10.0, ge=0)
    cookie_secure: bool | None = None

    event_log_max_events: int = 1000
    event_log_max_age_seconds: int = 3600
    # The outbox (parley.outbox): how long a request waits for its events to be published,
    # how often the relay looks for what the fast path left over (and after how long a row
    # counts as left over), and how long published rows are kept (to republish after Redis
    # lost its last writes).
    outbox_publish_wait_seconds: float = Field(default=3.0, gt=0)
    outbox_relay_interval_seconds: float = Field(default=0.5, gt=0)
    outbox_grace_seconds: float = Field(default=2.0, gt=0)
    outbox_keep_published_seconds: float = Field(default=60.0, gt=0)
    ws_send_queue_size: int = 256
    # Presence goes to people who share a direct chat or a group of at most this many
    # members: in larger groups it would cost members² frames whenever the group comes online.
    presence_group_limit: int = Field(default=100, ge=2)
    ws_heartbeat_seconds: float = 20.0
    # permessage-deflate keeps a zlib compressor and decompressor per socket (~45 KiB) and
    # compresses every event once per recipient; chat events are small, so it is off.
    ws_compression: bool = False

    # Connections each process keeps open, and how many more it may open under a burst
    # (closed again as they come back). Size them so that every api and worker process
    # together stay below PostgreSQL's max_connections.
    # Connections a process keeps open and reuses. Overflow connections are opened for a
    # burst and closed after each use: under steady load that is a new PostgreSQL backend
    # every few requests, so by default there are none and a request beyond the pool waits.
    database_pool_size: int = Field(default=40, ge=1)
    database_max_overflow: int = Field(default=0, ge=0)
    # Freeze startup objects out of the garbage collector and collect less often (see
    # parley.ops.gc_tuning): full collections otherwise stall the event loop.
    gc_tuning: bool = True
    worker_concurrency: int = 4

    # Background jobs (parley.jobs). Queue names get the prefix, so that several
    # installations (or test runs) can share one broker.
    job_queue_prefix: str = ""
    job_time_limit_seconds: int = Field(default=60, ge=20)
    job_max_attempts: int = Field(default=5, ge=1)
    job_retry_backoff_seconds: float = Field(default=2.0, gt=0)
    job_retry_backoff_max_seconds: float = Field(default=300.0, gt=0)
    # A running job renews a heartbeat this often; one silent for 4 beats lost its worker
    # and runs again (a killed worker's jobs resume within about 5 beats, not after the
    # broker's visibility timeout).
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    # A running job's progress is written (with its event) at most this often: a step that
    # is over sooner is reported with the next one, or not at all if the job ends first.
    job_progress_interval_seconds: float = Field(default=0.5, ge=0)
    page_cache_seconds: int = Field(default=3600, ge=0)
    broker_visibility_timeout_seconds: int = Field(default=300, ge=30)

    # Rate limits (parley.ratelimit), in Redis in services mode: `N` requests at once, then
    # one every `seconds / N`; a count of 0 turns that limit off, `enabled=false` all of them.
    rate_limit_enabled: bool = True
    rate_limit_login_username: int = Field(default=10, ge=0)
    rate_limit_login_username_seconds: float = Field(default=900.0, gt=0)
    rate_limit_login_ip: int = Field(default=30, ge=0)
    rate_limit_login_ip_seconds: float = Field(default=60.0, gt=0)
    rate_limit_register_ip: int = Field(default=20, ge=0)
    rate_limit_register_ip_seconds: float = Field(default=3600.0, gt=0)
    rate_limit_refresh_ip: int = Field(default=60, ge=0)
    rate_limit_refresh_ip_seconds: float = Field(default=60.0, gt=0)
    # Wrong one-time codes per user (login's `otp`, /auth/otp/enable and /disable).
    rate_limit_otp_user: int = Field(default=5, ge=0)
    rate_limit_otp_user_seconds: float = Field(default=300.0, gt=0)

    # Billing (parley.billing): on while the Stripe secret key is set, which then needs the
    # webhook secret and the price of the `plus` plan. The publishable key and Stripe.js's
    # address go to the web page; the API base points the client at a fake Stripe in tests.
    stripe_secret_key: str | None = Field(default=None, repr=False)
    stripe_webhook_secret: str | None = Field(default=None, repr=False)
    stripe_price_id: str | None = None
    stripe_publishable_key: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_js_url: str = "https://js.stripe.com/v3/"
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        """Each entry an address or a network, written canonically ("10.0.0.0/8")."""
        entries = [e.strip() for e in value.split(",") if e.strip()]
        try:
            return ",".join(str(ipaddress.ip_network(e, strict=False)) for e in entries)
        except ValueError as exc:
            raise ValueError(f"PARLEY_TRUSTED_PROXIES: {exc}") from exc

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "production":
            if not self.secret_key:
                raise UnsafeSettingsError(
                    "PARLEY_SECRET_KEY must be set when PARLEY_ENV=production"
                )
            if len(self.secret_key) < 32:
                raise UnsafeSettingsError(
                    "PARLEY_SECRET_KEY must be at least 32 characters in production"
                )
            if self.debug:
                raise UnsafeSettingsError("PARLEY_DEBUG must be false in production")
        missing = [
            f"PARLEY_{name.upper()}"
            for name in ("stripe_webhook_secret", "stripe_price_id")
            if self.billing_enabled and not getattr(self, name)
        ]
        if missing:
            raise UnsafeSettingsError(
                f"PARLEY_STRIPE_SECRET_KEY needs {' and '.join(missing)} "
                "(or leave it unset to turn billing off)"
            )
        return self

    @model_validator(mode="after")
    def _argon2_memory_per_lane(self) -> Settings:
        if self.password_hash_memory_cost < 8 * self.password_hash_parallelism:
            raise ValueError(
                "PARLEY_PASSWORD_HASH_MEMORY_COST must be at least 8 KiB per lane "
                "(8 x PARLEY_PASSWORD_HASH_PARALLELISM)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_a_cluster_as_broker(self) -> Settings:
        if not self.redis_cluster:
            return self
        if not self.redis_url:
            raise UnsafeSettingsError(
                "PARLEY_REDIS_CLUSTER=true needs PARLEY_REDIS_URL: any node of the cluster"
            )
        if _database_number(self.redis_url) not in ("", "0"):
            raise UnsafeSettingsError(
                "PARLEY_REDIS_URL names database "
                f"{_database_number(self.redis_url)}, but a Redis Cluster has only database 0"
            )
        if not self.broker_url or _same_server(self.broker_url, self.redis_url):
            raise UnsafeSettingsError(
                "PARLEY_REDIS_CLUSTER=true needs PARLEY_BROKER_URL: a Redis Cluster cannot be "
                "Celery's broker, use RabbitMQ (amqp://) or a plain Redis"
            )
        return self

    @property
    def services_mode(self) -> bool:
        """True when Redis is configured: pub/sub, event log and broker are external."""
        return self.redis_url is not None

    @property
    def billing_enabled(self) -> bool:
        """True when a Stripe secret key is set: plans, limits and the billing routes."""
        return bool(self.stripe_secret_key)

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker: explicit, else Redis, else the in-process memory broker."""
        return self.broker_url or self.redis_url or "memory://"

    @property
    def secure_cookies(self) -> bool:
        """Whether the session cookie carries the Secure flag."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.env == "production"

    @property
    def cors_origin_list(self) -> list[str]:
        """Allowed CORS origins, from the comma-separated setting."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The trusted proxies' networks ("127.0.0.1/32", ...); empty trusts none."""
        return [e for e in self.trusted_proxies.split(",") if e]

    def signing_key(self) -> str:
        """The token-signing secret; generated once into a local file in development."""
        if self.secret_key:
            return self.secret_key
        self.secret_key = _local_secret()
        return self.secret_key


def _database_number(url: str) -> str:
    return urlsplit(url).path.strip("/")


def _same_server(url: str, other: str) -> bool:
    """Whether two URLs name the same host and port (credentials and path aside)."""
    a, b = urlsplit(url), urlsplit(other)
    return a.scheme.startswith("redis") and (a.hostname, a.port or 6379) == (
        b.hostname,
        b.port or 6379,
    )


def _local_secret() -> str:
    if SECRET_KEY_FILE.exists():
        return SECRET_KEY_FILE.read_text().strip()
    key = secrets.token_urlsafe(48)
    SECRET_KEY_FILE.write_text(key + "\n")
    SECRET_KEY_FILE.chmod(0o600)
    warnings.warn(
        f"PARLEY_SECRET_KEY is not set; generated one in {SECRET_KEY_FILE.resolve()}",
        stacklevel=2,
    )
    return key


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
