"""Shared helpers for the bench scripts: servers, databases, users, load and percentiles.

Not a script of its own: `bench/<name>.py` scripts import it as `_common` (running
`python bench/<name>.py` puts `bench/` first on `sys.path`).

Everything here is loopback-only and cleans up after itself: a server started with
`Server.start` runs in its own process group and `Server.stop` ends that group (TERM, then
KILL after a grace period); a database made by `create_database` is dropped by
`drop_database` with `WITH (FORCE)`.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")
PASSWORD = "bench-password-0123"
LIVE_PATH = "/api/v1/health/live"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes -------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out.extend(int(p) for p in task.read_text().split())
        except OSError:
            continue
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are alive now."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo.extend(_children(current))
    return seen


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each of these processes that is alive."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (14, 15)
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time used so far by these processes (those still alive)."""
    return sum(cpu_by_pid(pids).values())


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class Server:
    """A server subprocess in its own process group, with its output in a log file."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str],
        cwd: Path,
    ) -> Server:
        """Start `argv` (which must listen on 127.0.0.1:`port`); does not wait for it."""
        log_path = cwd / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, not it
            )
        return cls(name=name, url=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path)

    @property
    def pids(self) -> list[int]:
        """The server's process and its workers."""
        return process_tree(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self, path: str = LIVE_PATH, timeout: float = 60.0) -> None:
        """Poll `path` until it answers 200; raise if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if (await client.get(path)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """End the server's process group: SIGTERM, then SIGKILL after `grace` seconds."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.proc.wait(timeout=5)


def start_parley(
    *, database_url: str, port: int, workers: int, cwd: Path, secret_key: str
) -> Server:
    """`parley serve` in services mode (PostgreSQL + Redis), quiet, without auto-migrate."""
    env = {
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_REDIS_URL": REDIS_URL,
        "PARLEY_SECRET_KEY": secret_key,
        "PARLEY_LOG_LEVEL": "WARNING",
        "PARLEY_AUTO_MIGRATE": "false",
        # The load comes from one address and registers its users through the API.
        "PARLEY_RATE_LIMIT_ENABLED": "false",
    }
    argv = [
        sys.executable,
        "-m",
        "parley.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--graceful-timeout",
        "3",
    ]
    return Server.start("parley", argv, port=port, env=env, cwd=cwd)


def parley_migrate(database_url: str, cwd: Path) -> None:
    """`parley migrate` against `database_url`."""
    subprocess.run(
        [sys.executable, "-m", "parley.cli", "migrate"],
        cwd=cwd,
        env={**os.environ, "PARLEY_DATABASE_URL": database_url},
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )


def workdir() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory to run servers in (no stray `.env`, secret file or logs)."""
    return tempfile.TemporaryDirectory(prefix="parley-bench-")


def new_secret() -> str:
    """A 48-character signing key."""
    return (uuid.uuid4().hex + uuid.uuid4().hex)[:48]


# --- databases -------------------------------------------------------------------------


async def create_database(name: str) -> str:
    """Create an empty PostgreSQL database; returns its plain `postgresql://` DSN."""
    conn = await asyncpg.connect(f"{PG_ADMIN_DSN}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{PG_ADMIN_DSN}/{name}"


async def backend_pids(name: str) -> list[int]:
    """The PostgreSQL server processes now serving connections to database `name`."""
    conn = await asyncpg.connect(f"{PG_ADMIN_DSN}/postgres")
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


async def drop_database(name: str) -> None:
    """Drop a database made by `create_database`, ending any session still in it."""
    conn = await asyncpg.connect(f"{PG_ADMIN_DSN}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy asyncpg URL of a `postgresql://` DSN."""
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


# --- Parley API ------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchUser:
    """A registered user with a bearer token."""

    id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of this user."""
        return {"Authorization": f"Bearer {self.token}"}


async def create_users(base_url: str, count: int, *, prefix: str) -> list[BenchUser]:
    """Register `count` users (`<prefix>_<i>`) and log each in; at most 4 at a time."""
    limit = asyncio.Semaphore(4)  # password hashing is deliberately slow

    async def one(client: httpx.AsyncClient, i: int) -> BenchUser:
        username = f"{prefix}_{i}"
        async with limit:
            reply = await client.post(
                "/api/v1/auth/register", json={"username": username, "password": PASSWORD}
            )
            reply.raise_for_status()
            user_id = int(reply.json()["id"])
            reply = await client.post(
                "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
            )
            reply.raise_for_status()
        return BenchUser(user_id, username, str(reply.json()["access_token"]))

    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        return list(await asyncio.gather(*(one(client, i) for i in range(count))))


async def create_group(base_url: str, owner: BenchUser, members: Sequence[BenchUser]) -> int:
    """A group chat owned by `owner` with `members`; returns its id."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        reply = await client.post(
            "/api/v1/chats",
            headers=owner.headers,
            json={"type": "group", "title": "bench", "memberIds": [m.id for m in members]},
        )
        reply.raise_for_status()
        return int(reply.json()["id"])


# --- load ------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 < pct <= 100) of already sorted values; NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    """What a fixed-time load run measured."""

    name: str
    concurrency: int
    elapsed: float
    latencies: list[float]  # seconds, successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float = 0.0
    db_cpu: float = math.nan  # PostgreSQL backends serving the server's database
    client_cpu: float = 0.0
    machine_busy: float = 0.0
    machine_total: float = 0.0
    round_rates: list[float] = field(default_factory=list)

    @classmethod
    def merge(cls, name: str, parts: Sequence[LoadResult]) -> LoadResult:
        """One result from several runs of the same load (e.g. interleaved rounds)."""
        merged = cls(name=name, concurrency=parts[0].concurrency, elapsed=0.0, latencies=[])
        for part in parts:
            merged.elapsed += part.elapsed
            merged.latencies.extend(part.latencies)
            merged.errors.update(part.errors)
            merged.server_cpu += part.server_cpu
            merged.db_cpu = (
                part.db_cpu if math.isnan(merged.db_cpu) else merged.db_cpu + part.db_cpu
            )
            merged.client_cpu += part.client_cpu
            merged.machine_busy += part.machine_busy
            merged.machine_total += part.machine_total
            merged.round_rates.append(part.rate)
        return merged

    @property
    def ok(self) -> int:
        """Successful requests."""
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def ms(self, pct: float) -> float:
        """A latency percentile in milliseconds."""
        return percentile(sorted(self.latencies), pct) * 1000

    def report(self) -> str:
        """A few human-readable lines."""
        lat = sorted(self.latencies)
        errors = sum(self.errors.values())
        detail = ", ".join(f"{k}: {v}" for k, v in self.errors.most_common(5))
        cores = self.machine_total / self.elapsed if self.elapsed else 0.0
        per_req = self.server_cpu / self.ok * 1e6 if self.ok else math.nan
        server = "n/a (not started here)"
        if not math.isnan(self.server_cpu):
            server = f"{self.server_cpu:.1f}s ({per_req:.0f} us/msg)"
        if not math.isnan(self.db_cpu) and self.ok:
            server += f", its PostgreSQL backends {self.db_cpu:.1f}s"
            server += f" ({self.db_cpu / self.ok * 1e6:.0f} us/msg)"
        capped = ""
        if self.elapsed and self.client_cpu / self.elapsed > 0.8:
            capped = "\n    note        the load generator used over 80% of a core: it caps this"
        rounds = ""
        if len(self.round_rates) > 1:
            rounds = "; rounds " + ", ".join(f"{r:.0f}" for r in self.round_rates)
        return "\n".join(
            [
                f"  {self.name}",
                f"    throughput  {self.rate:9.1f} msg/s  ({self.ok} ok in {self.elapsed:.1f}s,"
                f" {self.concurrency} senders{rounds})",
                f"    latency ms  p50 {percentile(lat, 50) * 1000:.1f}"
                f"  p90 {percentile(lat, 90) * 1000:.1f}"
                f"  p99 {percentile(lat, 99) * 1000:.1f}"
                f"  max {(lat[-1] if lat else math.nan) * 1000:.1f}",
                f"    errors      {errors}" + (f"  ({detail})" if detail else ""),
                f"    cpu         server {server}, load generator {self.client_cpu:.1f}s,"
                f" whole machine {self.machine_busy:.1f}s busy of {self.machine_total:.1f}s"
                f" ({cores:.0f} cores){capped}",
            ]
        )


# One sender's request: send one on this client and return the HTTP status.
SendOne = Callable[[httpx.AsyncClient], Awaitable[int]]


async def run_load(
    name: str,
    base_url: str,
    senders: Sequence[SendOne],
    *,
    duration: float,
    ok_status: frozenset[int] = frozenset({200, 201}),
    server_pids: Sequence[int] = (),
    database: str | None = None,
) -> LoadResult:
    """Each sender, on its own keep-alive connection, sends back to back for `duration`.

    A request counts if it started before the deadline; latency is measured around the
    whole call (request written, response read). CPU is counted for `server_pids` and, when
    `database` is named, for the PostgreSQL backends connected to it.
    """
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for _ in senders
    ]

    async def loop(client: httpx.AsyncClient, send: SendOne, deadline: float) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status = await send(client)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)
                continue
            if status in ok_status:
                latencies.append(time.perf_counter() - started)
            else:
                errors[f"HTTP {status}"] += 1

    try:
        db0 = cpu_by_pid(await backend_pids(database)) if database else {}
        cpu0, client0, (busy0, total0) = (
            cpu_seconds(server_pids),
            time.process_time(),
            machine_busy_seconds(),
        )
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(loop(c, s, deadline) for c, s in zip(clients, senders, strict=True)))
        elapsed = time.perf_counter() - started
        busy1, total1 = machine_busy_seconds()
        server_cpu = cpu_seconds(server_pids) - cpu0
        client_cpu = time.process_time() - client0
        db_cpu = math.nan
        if database:  # backends opened during the run count from zero
            db1 = cpu_by_pid(await backend_pids(database))
            db_cpu = sum(cpu - db0.get(pid, 0.0) for pid, cpu in db1.items())
        return LoadResult(
            name=name,
            concurrency=len(senders),
            elapsed=elapsed,
            latencies=latencies,
            errors=errors,
            server_cpu=server_cpu,
            client_cpu=client_cpu,
            db_cpu=db_cpu,
            machine_busy=busy1 - busy0,
            machine_total=total1 - total0,
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


@dataclass
class Run:
    """What a bench run started and must clean up, whatever happens."""

    servers: list[Server] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    redis_url: str | None = None  # flushed at the end when set


def cleanup(run: Run) -> None:
    """Stop every process, drop the databases, flush Redis; each step even if one fails."""
    for server in reversed(run.servers):
        try:
            server.stop()
        except Exception as exc:  # go on with the rest
            print(f"could not stop {server.name} (pid {server.proc.pid}): {exc!r}", file=sys.stderr)
    for name in run.databases:
        try:
            asyncio.run(drop_database(name))
        except Exception as exc:
            print(f"could not drop database {name}: {exc!r}", file=sys.stderr)
    if run.redis_url is not None:
        try:
            asyncio.run(_flush_redis(run.redis_url))
        except Exception as exc:
            print(f"could not flush {run.redis_url}: {exc!r}", file=sys.stderr)


async def _flush_redis(url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


class TimeLimitExceeded(Exception):
    """The whole run took longer than `--time-limit`."""


def terminate(signum: int, _frame: object) -> None:
    """A SIGTERM handler: leave through SystemExit, so that `finally` blocks clean up."""
    raise SystemExit(128 + signum)


def run_within(
    main_async: Callable[[Run, Path], Awaitable[int]], run: Run, scratch: Path, time_limit: float
) -> int:
    """`asyncio.run(main_async(run, scratch))`, stopped with TimeLimitExceeded after
    `time_limit` seconds (a TimeoutError of its own still propagates as it is)."""

    async def bounded() -> int:
        try:
            async with asyncio.timeout(time_limit) as limit:
                return await main_async(run, scratch)
        except TimeoutError as exc:
            if limit.expired():
                raise TimeLimitExceeded from exc
            raise

    return asyncio.run(bounded())


def report_time_limit(run: Run, time_limit: float) -> int:
    """Say that the run gave up, with the end of each server's log; the exit status 2."""
    print(f"gave up after --time-limit {time_limit:g}s", file=sys.stderr)
    for server in run.servers:
        print(f"--- end of {server.name}'s log:\n{server.log_tail()}", file=sys.stderr)
    return 2
