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
import json
import math
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
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


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (the 3rd on); None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each of these processes that is alive."""
    out: dict[int, float] = {}
    for pid in pids:
        if (fields := _stat_fields(pid)) is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (14, 15)
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time used so far by these processes (those still alive)."""
    return sum(cpu_by_pid(pids).values())


def kernel_cpu_seconds(pids: Sequence[int]) -> float:
    """System CPU time (in the kernel, on their behalf) used so far by these processes."""
    fields = (_stat_fields(pid) for pid in pids)
    return sum(int(f[12]) for f in fields if f is not None) / CLK_TCK  # stime (15)


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
        "PARLEY_ENV": "production",
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


async def start_parley_fresh(run: Run, scratch: Path, *, name: str, workers: int) -> Server:
    """`start_parley` on a fresh, migrated database `name`, ready to serve."""
    database_url = sqlalchemy_url(await create_database(name))
    run.databases.append(name)
    await asyncio.to_thread(parley_migrate, database_url, scratch)
    server = start_parley(
        database_url=database_url,
        port=free_port(),
        workers=workers,
        cwd=scratch,
        secret_key=new_secret(),
    )
    run.servers.append(server)
    await server.wait_ready()
    return server


async def start_bare_insert(run: Run, scratch: Path, *, workers: int, name: str) -> Server:
    """The bare baseline, ready: a fresh database `name` holding `bare_insert_app`'s table,
    and uvicorn serving that app on it with `workers` processes (no access log)."""
    from bare_insert_app import SCHEMA

    dsn = await create_database(name)
    run.databases.append(name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    port = free_port()
    argv = [
        *(sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR)),
        *("bare_insert_app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers), "--log-level", "warning", "--no-access-log"),
        *("--timeout-graceful-shutdown", "3"),
    ]
    server = Server.start("bare", argv, port=port, env={"BARE_DATABASE_URL": dsn}, cwd=scratch)
    run.servers.append(server)
    await server.wait_ready()
    return server


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


# --- load: wrk ---------------------------------------------------------------------------

WRK_INSTALL = "apt-get install wrk"  # Debian's package: a C load generator with LuaJIT
WRK_MARK = "BENCH-WRK-RESULT "
# The latency percentiles wrk's done() reports for each run: coarse in the body, fine in the
# tail, so that percentiles of several runs together can be read from them (`WrkRun.merge`).
LATENCY_GRID: tuple[float, ...] = (
    *(float(p) for p in range(1, 95)),
    *(round(95 + 0.05 * i, 2) for i in range(100)),
    *(round(99.95 + 0.01 * i, 2) for i in range(1, 6)),
)

# Prepended to every bench's wrk script: it numbers the threads, counts the answers by
# status and prints one JSON line from done(). A bench's script defines init() and
# request() (and delay() if it paces), never setup(), response() or done(); it may define
# bench_response(status, headers, body), called for every answer, and use bench_now() and
# bench_thread_done().
_WRK_PROLOGUE = """\
-- generated by bench/_common.py: thread numbers, answers by status, a JSON summary
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local bench_ts = ffi.new("bench_timespec")
local bench_threads = {}
local bench_finished = false
thread_no, thread_count, status_counts = 0, 1, {}

function setup(thread)
  thread:set("thread_no", #bench_threads)
  thread:set("thread_count", ${THREAD_COUNT})
  table.insert(bench_threads, thread)
end

-- Seconds since the epoch, as Python's time.time() (CLOCK_REALTIME).
function bench_now()
  ffi.C.clock_gettime(0, bench_ts)
  return tonumber(bench_ts.tv_sec) + tonumber(bench_ts.tv_nsec) * 1e-9
end

-- For a thread that has sent all it had to: it stops, its later answers are not counted,
-- and once every thread is done, run_wrk(until_done=True) interrupts wrk, which reports.
function bench_thread_done()
  bench_finished = true
  io.write("BENCH-THREAD-DONE\\n")
  io.flush()
  wrk.thread:stop()
end

function response(status, headers, body)
  if bench_finished then return end
  status_counts[status] = (status_counts[status] or 0) + 1
  if bench_response then bench_response(status, headers, body) end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(bench_threads) do
    for code, n in pairs(thread:get("status_counts")) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  local statuses = {}
  for code, n in pairs(counts) do
    statuses[#statuses + 1] = string.format('"%d":%d', code, n)
  end
  local grid = {}
  for _, p in ipairs(${LATENCY_GRID}) do
    grid[#grid + 1] = string.format("[%g,%d]", p, latency:percentile(p))
  end
  local e = summary.errors
  io.write(${MARK} .. string.format(
    '{"duration_us":%d,"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,'
      .. '"timeout":%d},"statuses":{%s},"max_us":%d,"percentiles":[%s]}\\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.timeout,
    table.concat(statuses, ","), latency.max, table.concat(grid, ",")))
  io.flush()
end

-- the bench's script:
"""


def wrk_path() -> str:
    """Where `wrk` is; exits with how to install it when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(f"wrk is not installed: {WRK_INSTALL} (as root)")
    return path


def lua_value(value: object) -> str:
    """A Lua literal for a str, int, float, bool, None, list or dict of those."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            ch if ch.isascii() and ch.isprintable() and ch not in '\\"' else f"\\{b:03d}"
            for ch in value
            for b in ([ord(ch)] if ch.isascii() else list(ch.encode()))
        )
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_value(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_value(k)}] = {lua_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def lua_template(text: str, **values: object) -> str:
    """`text` (Lua) with every `${NAME}` replaced by the Lua literal of `values[NAME]`."""
    return string.Template(text).substitute({k: lua_value(v) for k, v in values.items()})


def wrk_script(body: str, *, threads: int) -> str:
    """The whole Lua script: the shared prologue, then a bench's `body`."""
    prologue = lua_template(
        _WRK_PROLOGUE, THREAD_COUNT=threads, LATENCY_GRID=LATENCY_GRID, MARK=WRK_MARK
    )
    return prologue + body


@dataclass
class WrkRun:
    """What wrk measured against one target, with the CPU used meanwhile.

    Merged runs (`merge`) add up; latency percentiles are read from each run's percentile
    grid, weighted by its number of requests.
    """

    name: str
    connections: int
    threads: int
    seconds: float  # wrk's own measured duration
    requests: int  # answers received (any status)
    statuses: Counter[int]
    socket_errors: Counter[str]  # connect, read, write, timeout
    latency_weights: list[tuple[float, float]]  # (latency s, requests) from the grid
    latency_max: float  # s
    ok_status: frozenset[int]
    wrk_cpu: float  # user + system s of the wrk process
    wall: float  # s from starting wrk to its exit
    server_cpu: float = math.nan
    db_cpu: float = math.nan  # PostgreSQL backends serving the target's database
    machine_busy: float = 0.0
    machine_total: float = 0.0
    connections_opened: int | None = None  # new PostgreSQL sessions to its database
    redis_cpu: float = math.nan  # the whole Redis server's (shared with any other user)
    round_rates: list[float] = field(default_factory=list)

    @classmethod
    def merge(cls, name: str, parts: Sequence[WrkRun]) -> WrkRun:
        """One result from several runs of the same load (e.g. alternating rounds)."""

        def total(values: Sequence[float]) -> float:
            return sum(values) if not any(math.isnan(v) for v in values) else math.nan

        opened = [p.connections_opened for p in parts]
        first = parts[0]
        return cls(
            name=name,
            connections=first.connections,
            threads=first.threads,
            seconds=sum(p.seconds for p in parts),
            requests=sum(p.requests for p in parts),
            statuses=sum((p.statuses for p in parts), Counter()),
            socket_errors=sum((p.socket_errors for p in parts), Counter()),
            latency_weights=[w for p in parts for w in p.latency_weights],
            latency_max=max(p.latency_max for p in parts),
            ok_status=first.ok_status,
            wrk_cpu=sum(p.wrk_cpu for p in parts),
            wall=sum(p.wall for p in parts),
            server_cpu=total([p.server_cpu for p in parts]),
            db_cpu=total([p.db_cpu for p in parts]),
            machine_busy=sum(p.machine_busy for p in parts),
            machine_total=sum(p.machine_total for p in parts),
            connections_opened=None if None in opened else sum(o or 0 for o in opened),
            redis_cpu=total([p.redis_cpu for p in parts]),
            round_rates=[p.rate for p in parts],
        )

    @property
    def ok(self) -> int:
        """Answers with an expected status."""
        return sum(n for code, n in self.statuses.items() if code in self.ok_status)

    @property
    def not_ok(self) -> int:
        """Answers with any other status (non-2xx, or a 2xx this bench does not expect)."""
        return self.requests - self.ok

    @property
    def rate(self) -> float:
        """Answers with an expected status per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def ms(self, pct: float) -> float:
        """A latency percentile (all answers) in milliseconds."""
        weights = sorted(self.latency_weights)
        goal = pct / 100 * sum(w for _, w in weights) * (1 - 1e-9)
        seen = 0.0
        for value, weight in weights:
            seen += weight
            if seen >= goal:
                return value * 1000
        return math.nan

    @property
    def wrk_share(self) -> float:
        """wrk's CPU as a share of the whole machine (all cores) while it ran."""
        return self.wrk_cpu / self.wall / (os.cpu_count() or 1) if self.wall else math.nan

    @property
    def rest_cpu(self) -> float:
        """CPU seconds the machine spent on anything but wrk, the server, its PostgreSQL
        backends and Redis: other work."""
        known = [self.wrk_cpu, self.server_cpu, self.db_cpu, self.redis_cpu]
        return self.machine_busy - sum(v for v in known if not math.isnan(v))

    @property
    def server_us(self) -> float:
        """Server CPU microseconds per expected answer."""
        return self.server_cpu / self.ok * 1e6 if self.ok else math.nan

    def report(self) -> str:
        """A few human-readable lines."""
        cores = os.cpu_count() or 1
        bad = ", ".join(
            f"HTTP {code}: {n}"
            for code, n in self.statuses.most_common()
            if code not in self.ok_status
        )
        sockets = ", ".join(f"{k} {v}" for k, v in self.socket_errors.items() if v)
        server = "n/a (not started here)"
        if not math.isnan(self.server_cpu):
            server = f"{self.server_cpu:.1f} s ({self.server_us:.0f} us/request)"
        if not math.isnan(self.db_cpu) and self.ok:
            server += f", its PostgreSQL backends {self.db_cpu:.1f} s"
            server += f" ({self.db_cpu / self.ok * 1e6:.0f} us/request)"
        rounds = ""
        if len(self.round_rates) > 1:
            rounds = "; rounds " + ", ".join(f"{r:.0f}" for r in self.round_rates)
        opened = "n/a" if self.connections_opened is None else str(self.connections_opened)
        busy = self.machine_busy / self.machine_total if self.machine_total else math.nan
        return "\n".join(
            [
                f"  {self.name}",
                f"    throughput  {self.rate:9.1f} requests/s  ({self.ok} ok in"
                f" {self.seconds:.1f} s, {self.connections} connections on {self.threads}"
                f" wrk threads{rounds})",
                f"    latency ms  p50 {self.ms(50):.1f}  p90 {self.ms(90):.1f}"
                f"  p99 {self.ms(99):.1f}  max {self.latency_max * 1000:.1f}",
                f"    not ok      {self.not_ok}"
                + (f"  ({bad})" if bad else "")
                + (f"; socket errors: {sockets}" if sockets else ""),
                f"    cpu         server {server}",
                f"                wrk {self.wrk_cpu:.1f} s = {self.wrk_share:.0%} of the"
                f" machine's {cores} cores; whole machine {busy:.0%} busy"
                f" ({self.machine_busy:.1f} of {self.machine_total:.1f} CPU-s); Redis"
                f" {self.redis_cpu:.1f} s; other work {self.rest_cpu:.1f} CPU-s",
                f"    PostgreSQL  {opened} connections opened to its database while measured",
            ]
        )


def _parse_wrk(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith(WRK_MARK):
            parsed: dict[str, Any] = json.loads(line.removeprefix(WRK_MARK))
            return parsed
    raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")


THREAD_DONE = b"BENCH-THREAD-DONE"


def _start_wrk(argv: Sequence[str], url: str, scratch: Path) -> Server:
    """wrk in its own process group, its output on a pipe (kept in `scratch`/wrk.log)."""
    proc = subprocess.Popen(
        list(argv),
        cwd=scratch,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Server("wrk", url, proc, scratch / "wrk.log")


async def _read_wrk(proc: subprocess.Popen[bytes], threads: int, until_done: bool) -> bytes:
    """wrk's output until it closes it; with `until_done`, interrupt wrk (SIGINT: it stops,
    reports and exits) once each of its `threads` has said it is done."""
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), proc.stdout
    )
    output, done = [], 0
    try:
        while line := await reader.readline():
            output.append(line)
            if until_done and line.strip() == THREAD_DONE:
                done += 1
                if done == threads:
                    proc.send_signal(signal.SIGINT)
    finally:
        transport.close()
    return b"".join(output)


async def _wait_exit_unreaped(pid: int) -> None:
    """Until process `pid` has exited; a child stays a zombie, so /proc still has its times."""
    fd = os.pidfd_open(pid)  # readable once the process has exited; it does not reap
    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def redis_cpu_seconds(url: str) -> float:
    """CPU seconds (user + system) the Redis server at `url` has used so far."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def pg_sessions(database: str) -> int:
    """Sessions ever opened to `database` (pg_stat_database.sessions, PostgreSQL 14+)."""
    conn = await asyncpg.connect(f"{PG_ADMIN_DSN}/postgres")
    try:
        value = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", database
        )
    finally:
        await conn.close()
    return int(value or 0)


async def run_wrk(
    name: str,
    url: str,
    script: str,
    *,
    run: Run,
    scratch: Path,
    connections: int,
    threads: int,
    duration: float,
    script_args: Sequence[str] = (),
    ok_status: frozenset[int] = frozenset(range(200, 300)),
    server_pids: Sequence[int] = (),
    database: str | None = None,
    redis_url: str | None = None,
    timeout: float = 30.0,
    until_done: bool = False,
) -> WrkRun:
    """Run wrk with `script` (a bench's Lua body, see `wrk_script`) against `url`.

    `connections` keep-alive connections on `threads` wrk threads send back to back for
    `duration` seconds, or, with `until_done`, until every thread has called
    bench_thread_done() (`duration` is then the longest it may take). Measured around the
    run: the CPU of wrk itself (from /proc, once it has exited), of `server_pids`, of the
    PostgreSQL backends serving `database`, of the Redis server at `redis_url` (all of it:
    Redis is shared) and of the whole machine, and the new sessions opened to `database`.
    An answer slower than `timeout` seconds counts as a socket timeout. wrk runs in its own
    process group and is listed in `run.servers` meanwhile, so an interrupted bench stops
    it; its output is kept in `scratch`/wrk.log.
    """
    if connections % threads:
        raise ValueError("wrk gives every thread connections // threads: make them divide")
    lua = scratch / f"{name.replace(' ', '_')}.lua"
    lua.write_text(wrk_script(script, threads=threads))
    argv = [wrk_path(), "-c", str(connections), "-t", str(threads), "-d", f"{duration:g}s"]
    argv += ["--timeout", f"{timeout:g}s", "-s", str(lua), url, "--", *script_args]
    db0 = cpu_by_pid(await backend_pids(database)) if database else {}
    redis0 = await redis_cpu_seconds(redis_url) if redis_url else math.nan
    sessions0 = await pg_sessions(database) if database else 0
    cpu0, (busy0, total0) = cpu_seconds(server_pids), machine_busy_seconds()
    started = time.perf_counter()
    wrk = _start_wrk(argv, url, scratch)
    proc = wrk.proc
    run.servers.append(wrk)
    try:
        output = await _read_wrk(proc, threads, until_done)
        await _wait_exit_unreaped(proc.pid)
        wall = time.perf_counter() - started
        wrk_cpu = cpu_seconds([proc.pid])
    finally:
        wrk.stop()
        run.servers.remove(wrk)
    wrk.log_path.write_bytes(output)
    busy1, total1 = machine_busy_seconds()
    redis_cpu = await redis_cpu_seconds(redis_url) - redis0 if redis_url else math.nan
    server_cpu = cpu_seconds(server_pids) - cpu0 if server_pids else math.nan
    db_cpu, opened = math.nan, None
    if database:  # backends opened during the run count from zero
        db1 = cpu_by_pid(await backend_pids(database))
        db_cpu = sum(cpu - db0.get(pid, 0.0) for pid, cpu in db1.items())
        opened = await pg_sessions(database) - sessions0
    if wrk.proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {wrk.proc.returncode}:\n{wrk.log_tail()}")
    result = _parse_wrk(wrk.log_path.read_text(errors="replace"))
    requests = int(result["requests"])
    grid = [(float(p), int(us) / 1e6) for p, us in result["percentiles"]]
    weights = [
        (value, requests * (pct - prev) / 100)
        for (prev, _), (pct, value) in zip([(0.0, 0.0), *grid], grid, strict=False)
    ]
    return WrkRun(
        name=name,
        connections=connections,
        threads=threads,
        seconds=int(result["duration_us"]) / 1e6,
        requests=requests,
        statuses=Counter({int(k): int(v) for k, v in result["statuses"].items()}),
        socket_errors=Counter({k: int(v) for k, v in result["errors"].items()}),
        latency_weights=weights,
        latency_max=int(result["max_us"]) / 1e6,
        ok_status=ok_status,
        wrk_cpu=wrk_cpu,
        wall=wall,
        server_cpu=server_cpu,
        db_cpu=db_cpu,
        machine_busy=busy1 - busy0,
        machine_total=total1 - total0,
        connections_opened=opened,
        redis_cpu=redis_cpu,
    )


# --- load: posting messages with wrk -------------------------------------------------------


@dataclass(frozen=True)
class Poster:
    """Who one wrk connection posts messages as: the path, the headers, a name for the text."""

    path: str
    headers: dict[str, str]
    name: str


# Each thread takes the posters thread_no + 1, + thread_count, ...: with as many threads as
# connections and posters, each connection posts as exactly one poster. Every clientId is
# new: the run's tag (the script argument), the thread and a counter.
_MESSAGES_LUA = """\
local posters, with_client_id = ${POSTERS}, ${CLIENT_ID}
local mine, seq, tag = {}, 0, ""

function init(args)
  tag = args[1] .. "-" .. thread_no
  for i = thread_no + 1, #posters, thread_count do
    mine[#mine + 1] = posters[i]
  end
end

function request()
  seq = seq + 1
  local p = mine[(seq - 1) % #mine + 1]
  local text = string.format(${TEXT}, seq, p.name)
  local body
  if with_client_id then
    body = string.format('{"text":"%s","clientId":"%s-%d"}', text, tag, seq)
  else
    body = string.format('{"text":"%s"}', text)
  end
  return wrk.format("POST", p.path, p.headers, body)
end
"""
MESSAGE_TEXT = "bench message %d from %s: the quick brown fox jumps over the lazy dog"


def messages_lua(posters: Sequence[Poster], *, client_id: bool = True) -> str:
    """A bench body for `run_wrk` that posts messages as `posters`; its one script argument
    is a tag unique to the run (the clientIds' prefix)."""
    table = [{"path": p.path, "headers": {**p.headers}, "name": p.name} for p in posters]
    return lua_template(_MESSAGES_LUA, POSTERS=table, CLIENT_ID=client_id, TEXT=MESSAGE_TEXT)


def wrk_threads(connections: int, most: int = 32) -> int:
    """The most wrk threads, up to `most`, that divide `connections` evenly."""
    return max(t for t in range(1, min(connections, most) + 1) if connections % t == 0)


def bare_poster(k: int) -> Poster:
    """Connection `k` of a load on the bare INSERT endpoint (no token: the author is a header)."""
    headers = {"Content-Type": "application/json", "X-Bench-Author": str(k + 1)}
    return Poster(f"/api/v1/chats/{k + 1}/messages", headers, f"bare{k + 1}")


def bare_body(k: int, seq: int, tag: str) -> dict[str, str]:
    """The body wrk's message script sends as `bare_poster(k)` (one thread per connection)."""
    return {"text": MESSAGE_TEXT % (seq, f"bare{k + 1}"), "clientId": f"{tag}-{k}-{seq}"}


# The bench's own load generator, closed loop: `connections` keep-alive connections, each
# posting as `bare_poster(k)` with `bare_body(k, seq, tag)` back to back for `seconds` to the
# bare endpoint at `url`; returns the answers with status 201.
DriveBare = Callable[[str, int, float], Awaitable[int]]

GENERATOR_FLOOR = 0.90  # of wrk's rate on the bare endpoint


@dataclass
class GeneratorCheck:
    """A bench's own load generator against wrk on the bare INSERT endpoint, alternating."""

    connections: int
    wrk: list[WrkRun] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)  # the generator's, per round
    shares: list[float] = field(default_factory=list)  # its CPU, share of the machine

    @property
    def wrk_rate(self) -> float:
        """wrk's requests/s over all rounds."""
        return WrkRun.merge("wrk", self.wrk).rate

    @property
    def rate(self) -> float:
        """The generator's requests/s over all rounds (rounds are equally long)."""
        return sum(self.rates) / len(self.rates)

    @property
    def ratio(self) -> float:
        """The generator's rate as a share of wrk's."""
        return self.rate / self.wrk_rate if self.wrk_rate else math.nan

    @property
    def passed(self) -> bool:
        """Whether the generator drove the bare endpoint to at least 90% of wrk's rate."""
        return self.ratio >= GENERATOR_FLOOR

    def report(self) -> str:
        """Two lines: the rates and CPU shares, and the verdict."""
        wrk = WrkRun.merge("wrk", self.wrk)
        return (
            f"  load generator check ({self.connections} connections, bare INSERT endpoint,"
            f" {len(self.rates)} alternating rounds): wrk {wrk.rate:.0f} requests/s"
            f" (rounds {', '.join(f'{r.rate:.0f}' for r in self.wrk)}; wrk's CPU"
            f" {wrk.wrk_share:.0%} of the machine), this script's generator"
            f" {self.rate:.0f} requests/s (rounds {', '.join(f'{r:.0f}' for r in self.rates)};"
            f" its CPU {sum(self.shares) / len(self.shares):.0%} of the machine)"
            f"\n    generator / wrk = {self.ratio:.0%}"
            f" (at least {GENERATOR_FLOOR:.0%}: {'met' if self.passed else 'MISSED'})"
        )


async def check_generator(
    drive: DriveBare,
    *,
    run: Run,
    scratch: Path,
    connections: int,
    rounds: int = 4,
    seconds: float = 3.0,
) -> GeneratorCheck:
    """Show whether `drive` (a bench's own HTTP load generator) is as good as wrk here.

    Starts the bare INSERT endpoint (one process, fresh database), warms it up, then runs
    wrk and `drive` alternately (wrk first, then `drive` first: ABBA), `rounds` times each
    for `seconds`, with the same connections and requests, so that other work on the
    machine weighs on both alike; stops the endpoint and drops its database at the end.
    """
    name = f"parley_bench_gencheck_{uuid.uuid4().hex[:8]}"
    server = await start_bare_insert(run, scratch, workers=1, name=name)
    check = GeneratorCheck(connections)
    script = messages_lua([bare_poster(k) for k in range(connections)])
    threads = wrk_threads(connections)
    cores = os.cpu_count() or 1

    async def with_wrk(duration: float) -> WrkRun:
        return await run_wrk(
            "generator check",
            server.url,
            script,
            run=run,
            scratch=scratch,
            connections=connections,
            threads=threads,
            duration=duration,
            script_args=[uuid.uuid4().hex[:8]],
            ok_status=frozenset({201}),
        )

    async def with_generator() -> None:
        cpu0, started = time.process_time(), time.perf_counter()
        ok = await drive(server.url, connections, seconds)
        elapsed = time.perf_counter() - started
        check.rates.append(ok / elapsed)
        check.shares.append((time.process_time() - cpu0) / elapsed / cores)

    try:
        await with_wrk(2.0)  # warm-up: the pool fills, the code paths get hot
        await drive(server.url, connections, 1.0)
        for round_no in range(rounds):
            if round_no % 2 == 0:
                check.wrk.append(await with_wrk(seconds))
                await with_generator()
            else:
                await with_generator()
                check.wrk.append(await with_wrk(seconds))
    finally:
        server.stop()
        run.servers.remove(server)
        await drop_database(name)
        run.databases.remove(name)
    return check


# --- load: percentiles ---------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 < pct <= 100) of already sorted values; NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


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
            asyncio.run(flush_redis(run.redis_url))
        except Exception as exc:
            print(f"could not flush {run.redis_url}: {exc!r}", file=sys.stderr)


async def flush_redis(url: str) -> None:
    """FLUSHDB on the Redis database of `url` (only ever the benchmarks' own)."""
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
