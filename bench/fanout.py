"""Fan-out benchmark: 1,000 sockets, 200 messages/s through the REST API, Parley vs naive.

    .venv/bin/python bench/fanout.py                    # the issue's figures (~1.5 min)
    .venv/bin/python bench/fanout.py --chats 10 --rate 50 --duration 10 --no-naive   # quick
    .venv/bin/python bench/fanout.py --compression deflate  # with the opt-in permessage-deflate

One services-mode `parley serve` process gets `--chats` group chats of `--group-size`
members, one WebSocket per member (1,000 by default), opened by `--receivers` client
processes. This process posts `--rate` messages/s for `--duration` s through
`POST /api/v1/chats/{id}/messages` on a fixed schedule (open loop: a slow answer does not
delay the next send; one unanswered after 30 s is an error), spread round-robin over the
chats and their members. Every message text carries its id and its send time (`time.time()`,
same machine), every socket records when each message reaches it. The script prints
deliveries/s, send-to-deliver latency p50/p99/max, lost and duplicated deliveries, the
server's memory per idle socket (RSS before the sockets open and after all of them answered
a ping, divided by their number) and CPU use, then checks the targets: zero lost, zero
duplicated, p99 under 100 ms, at most 16 KiB per idle socket. A timeline gives, per 5 s of the
schedule, the p99 and max latency of the messages sent then next to the server's share of a
core, the rest of the machine's CPU and the CPU pressure (/proc/pressure/cpu: how often some
task waited for a core), so that a stall of the server tells itself apart from a machine
taken by other work.

`--compression` is the server's setting: `none` (the default, as `parley serve` defaults to)
or `deflate`, which starts Parley with PARLEY_WS_COMPRESSION=true (and the naive server with
permessage-deflate on). With `deflate` the sockets offer permessage-deflate, as browsers
do, through the `websockets` client, and the report counts the sockets that negotiated it.
With `none` they are `bench/lean_ws.py`'s sockets, which offer no extension and parse
frames without a task per message: the `websockets` client cost the receivers ~90 µs of
CPU per delivery on a slow VM, half the machine that the server shares with them.

In the same run it measures the same load against `bench/naive_fanout.py` (one Redis
pub/sub connection per socket, no database) and prints the ratio Parley / naive for p99
latency, deliveries/s, memory per socket and server CPU per message. `--no-naive` skips
it, `--no-parley` measures the naive one alone.

After the load generator check (below) it runs `bench/write_floor.py` on as many sockets:
the server CPU of a bare `transport.write` of a frame on this machine, the kernel's part of
every delivery; each per-delivery figure is then also printed as a multiple of it.

First, the load generator check (`--no-generator-check` skips it): the sender's HTTP client
and wrk (`apt-get install wrk`) take turns driving the bare INSERT endpoint of
`bench/send.py` with `--http-connections` connections, closed loop; the script prints both
rates and CPU shares; the client must reach at least 90% of wrk's rate, so that what the
figures show is not its own limit. Each run's report gives the sender's and the receivers'
CPU as shares of the machine.

Needs PostgreSQL at postgres@127.0.0.1:5432 (trust; override with BENCH_PG) and Redis
(`--redis`, default BENCH_REDIS or redis://127.0.0.1:6379/12, flushed at start and at the
end). It creates a fresh database, runs `parley migrate`, starts the server without login
and registration rate limits (PARLEY_RATE_LIMIT_ENABLED=false: all the load comes from one
address), and at the end — also on Ctrl-C, an error or the `--time-limit` — stops every
process it started and drops the databases. Users are inserted straight into the database
with one shared password hash and get tokens signed with the server's key: registering
1,000 users through the API costs one Argon2 hash each, about 3 minutes on the event loop
of one process. Their ids start at 900,000,001 so that their pub/sub channels, which are
global to the Redis server, never meet those of another Parley (tests) on the same Redis.
Everything runs on this machine and on loopback: the load generator competes with the
server, PostgreSQL and Redis for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from _common import (
    PG_ADMIN_DSN,
    REDIS_URL,
    BenchUser,
    GeneratorCheck,
    Run,
    Server,
    TimeLimitExceeded,
    bare_body,
    bare_poster,
    check_generator,
    cleanup,
    cpu_seconds,
    create_database,
    create_group,
    free_port,
    kernel_cpu_seconds,
    machine_busy_seconds,
    new_secret,
    parley_migrate,
    percentile,
    report_time_limit,
    run_within,
    sqlalchemy_url,
    terminate,
    workdir,
)
from lean_ws import LeanSocket

BENCH_DIR = Path(__file__).resolve().parent
SCRIPT = str(Path(__file__).resolve())
DEFAULT_REDIS = REDIS_URL  # the benchmarks' database: BENCH_REDIS, default db 12
USER_ID_BASE = 900_000_000
TARGET_P99_MS = 100.0
TARGET_KIB_PER_SOCKET = 16.0  # issue #10
TARGET_US_PER_DELIVERY = 20.0
TARGET_SATURATION_RATIO = 3.0
OPEN_CONCURRENCY = 50
OPEN_TIMEOUT = 180.0  # seconds for a receiver to open its share; later sockets count as failed
DRAIN_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0  # a send not answered by then counts as an error (TimeoutError)
SETTLE_SECONDS = 2.0
STREAM_LIMIT = 1 << 27  # receivers report every delivery on one line
WARMUP_MESSAGES = 20
WARMUP_TIMEOUT = 60.0
IDLE_REUSE_SECONDS = 3.0  # uvicorn closes keep-alive connections idle for 5 s
SAMPLE_SECONDS = 1.0  # CPU sampling period during the load, for the timeline
SLICE_SECONDS = 5.0  # the timeline's step
OFFER_COMPRESSION = "deflate"  # what the sockets offer, as browsers do; the server decides


STARTED = time.monotonic()


def progress(text: str) -> None:
    """A progress line, stamped with the seconds since the script started."""
    print(f"  [{time.monotonic() - STARTED:5.0f}s] {text}", flush=True)


# --- the receiver processes ------------------------------------------------------------


class Receiver:
    """Holds a share of the sockets in a child process and records every delivery."""

    def __init__(self) -> None:
        self.sockets: list[ClientConnection | LeanSocket] = []
        self.readers: list[asyncio.Task[None]] = []
        # message, user, receive time, the event's `ts` (when the server published it)
        self.deliveries: list[tuple[int, int, float, float]] = []
        self.seen: set[tuple[int, int]] = set()
        self.other_frames: Counter[str] = Counter()
        self.closed_early: Counter[str] = Counter()
        self.closing = False

    def _received(self, user_id: int, pong: asyncio.Event, text: str) -> None:
        received = time.time()
        if '"message.created"' in text:
            frame = json.loads(text)
            body = frame["data"]["text"]
            if body.startswith("bench "):
                message = int(body.split(" ", 2)[1])
                published = datetime.fromisoformat(frame["ts"]).timestamp()
                self.deliveries.append((message, user_id, received, published))
                self.seen.add((message, user_id))
                return
        if text == '{"type":"pong"}':
            pong.set()
            return
        self.other_frames[json.loads(text).get("type", "?")] += 1

    def _ended(self, close_code: int | None) -> None:
        if not self.closing:
            self.closed_early[str(close_code)] += 1

    async def _read(self, user_id: int, ws: ClientConnection, pong: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._received(user_id, pong, raw if isinstance(raw, str) else raw.decode())
        self._ended(ws.close_code)

    async def open(
        self, sockets: Sequence[tuple[int, str]], within: float, *, lean: bool
    ) -> dict[str, Any]:
        """Open every socket, then wait until each has answered one ping.

        `lean`: with `lean_ws.LeanSocket` (no compression offered), else with the
        `websockets` client offering permessage-deflate. A socket not open and answered
        within `within` seconds of the start counts as failed.
        """
        limit = asyncio.Semaphore(OPEN_CONCURRENCY)
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + within

        async def one(user_id: int, url: str) -> None:
            async with limit, asyncio.timeout_at(deadline):
                pong = asyncio.Event()
                if lean:
                    socket = await LeanSocket.connect(
                        url, lambda text: self._received(user_id, pong, text), self._ended
                    )
                    self.sockets.append(socket)
                    socket.send_text('{"type":"ping"}')
                else:
                    ws = await connect(
                        url, compression=OFFER_COMPRESSION, ping_interval=None, proxy=None
                    )
                    self.sockets.append(ws)
                    self.readers.append(asyncio.create_task(self._read(user_id, ws, pong)))
                    await ws.send('{"type":"ping"}')
                await pong.wait()

        results = await asyncio.gather(*(one(u, url) for u, url in sockets), return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        return {
            "opened": len(sockets) - len(errors),
            "failed": len(errors),
            "error": errors[0] if errors else None,
            "seconds": time.perf_counter() - started,
            "deflate": sum(negotiated_deflate(ws) for ws in self.sockets),
        }

    async def close(self) -> None:
        """Close every socket."""
        self.closing = True
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """One command from the parent process, one answer."""
        match command["cmd"]:
            case "open":
                sockets = [(int(u), str(url)) for u, url in command["sockets"]]
                return await self.open(sockets, command["within"], lean=command["lean"])
            case "count":
                return {"unique": len(self.seen)}
            case "report":
                return {
                    "deliveries": self.deliveries,
                    "other": dict(self.other_frames),
                    "closed_early": dict(self.closed_early),
                }
            case "close":
                await self.close()
                return {"closed": True}
        raise ValueError(f"unknown command {command!r}")


def negotiated_deflate(ws: ClientConnection | LeanSocket) -> bool:
    """Whether the server accepted permessage-deflate on this socket."""
    if isinstance(ws, LeanSocket):
        return False  # it offers no extension
    response = ws.response
    extensions = response.headers.get("Sec-WebSocket-Extensions", "") if response else ""
    return "permessage-deflate" in extensions


async def receiver_main() -> None:
    """The child side: commands as JSON lines on stdin, answers as JSON lines on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    receiver = Receiver()
    while line := await reader.readline():
        command = json.loads(line)
        answer = await receiver.handle(command)
        sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        if command["cmd"] == "close":
            return


@dataclass
class ReceiverProcess:
    """The parent's handle on one receiver child."""

    proc: asyncio.subprocess.Process

    @classmethod
    async def start(cls) -> ReceiverProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--receiver",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=STREAM_LIMIT,
            start_new_session=True,
        )
        return cls(proc)

    async def request(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"receiver {self.proc.pid} exited with {self.proc.returncode}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """End the child (its sockets were closed by then, or die with it) and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 10)


# --- a lean HTTP client for the senders ----------------------------------------------


class RawHttp:
    """POSTs JSON over a pool of keep-alive HTTP/1.1 connections, and reads the status.

    httpx spends about 2.5 ms of CPU per request on this machine: at 200 requests/s that
    is half a core taken from the server under test. This spends a few tens of us.
    """

    def __init__(self, url: str, size: int) -> None:
        address = url.removeprefix("http://").rstrip("/")
        host, _, port = address.rpartition(":")
        self._host, self._port = host, int(port)
        self._prefix = f"Host: {address}\r\nContent-Type: application/json\r\n"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._open: set[asyncio.StreamWriter] = set()
        self._limit = asyncio.Semaphore(size)

    async def post(self, path: str, body: object, headers: dict[str, str] | None = None) -> int:
        """The status code of `POST path` with `body` as JSON; the answer body is discarded."""
        data = json.dumps(body, separators=(",", ":")).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = f"POST {path} HTTP/1.1\r\n{self._prefix}{extra}Content-Length: {len(data)}\r\n\r\n"
        async with self._limit:
            for attempt in (1, 2):
                reused = bool(self._idle)
                reader, writer = await self._connection()
                try:
                    status, keep = await self._exchange(reader, writer, head.encode() + data)
                except (OSError, asyncio.IncompleteReadError, IndexError) as exc:
                    self._drop(writer)
                    # The server closed a kept-alive connection before reading: send again.
                    if reused and attempt == 1 and isinstance(exc, IndexError):
                        continue
                    raise
                except BaseException:
                    self._drop(writer)
                    raise
                if keep:
                    self._idle.append((reader, writer, time.monotonic()))
                else:
                    self._drop(writer)
                return status
        raise AssertionError("unreachable")

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < IDLE_REUSE_SECONDS:
                return reader, writer
            self._drop(writer)
        reader, writer = await asyncio.open_connection(self._host, self._port)
        self._open.add(writer)
        return reader, writer

    @staticmethod
    async def _exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, bool]:
        writer.write(request)
        status = int((await reader.readline()).split()[1])  # IndexError: closed
        length, keep = 0, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                keep = value.strip().lower() != b"close"
            elif name == b"transfer-encoding":
                raise ValueError("chunked answers are not supported")
        await reader.readexactly(length)
        return status, keep

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._open.discard(writer)
        writer.close()

    async def aclose(self) -> None:
        """Close every connection."""
        for writer in list(self._open):
            self._drop(writer)
        self._idle.clear()


async def drive_bare(url: str, connections: int, seconds: float) -> int:
    """The sender's client on the bare INSERT endpoint, for `_common.check_generator`: one
    `RawHttp` pool of `connections`, as many posting loops, for `seconds`; the 201 answers."""
    tag = uuid.uuid4().hex[:8]
    deadline = time.perf_counter() + seconds
    http = RawHttp(url, connections)

    async def one(k: int) -> int:
        poster = bare_poster(k)
        headers = {h: v for h, v in poster.headers.items() if h != "Content-Type"}
        ok = seq = 0
        while time.perf_counter() < deadline:
            seq += 1
            status = await http.post(poster.path, bare_body(k, seq, tag), headers)
            ok += status == 201
        return ok

    try:
        return sum(await asyncio.gather(*(one(k) for k in range(connections))))
    finally:
        await http.aclose()


# --- the two systems under test --------------------------------------------------------


# Given the HTTP client, a chat index, the author's user id and the text: the status code.
PostFn = Callable[[RawHttp, int, int, str], Awaitable[int]]


@dataclass
class Target:
    """One system under test: where its sockets connect and how a message is posted."""

    name: str
    server: Server
    members: list[list[int]]  # per chat index, the member user ids
    ws_url: Callable[[int], str]
    post: PostFn
    database: str | None = None  # its PostgreSQL database, for the backends' CPU


@dataclass
class Measurement:
    """What one run against one target measured."""

    name: str
    sockets: int = 0
    open_failed: int = 0
    open_error: str | None = None
    open_seconds: float = 0.0
    deflate: int = 0  # sockets that negotiated permessage-deflate
    rss_before: int = 0  # KiB
    rss_idle: int = 0
    rss_after: int = 0
    idle_cpu: float = 0.0  # share of a core the server used with its sockets idle
    sent: dict[int, float] = field(default_factory=dict)  # message -> send time
    chat_of: dict[int, int] = field(default_factory=dict)
    accepted: set[int] = field(default_factory=set)  # messages answered 200/201
    post_latency: list[float] = field(default_factory=list)
    send_errors: Counter[str] = field(default_factory=Counter)
    schedule_lag_max: float = 0.0
    send_seconds: float = 0.0
    window: float = 0.0
    expected: int = 0
    unique: int = 0
    delivered: set[int] = field(default_factory=set)  # messages delivered at least once
    duplicates: int = 0
    lost: int = 0
    latency: list[float] = field(default_factory=list)  # seconds, sorted
    fanout: list[float] = field(default_factory=list)  # event `ts` -> receive, sorted
    deliveries_per_s: float = 0.0
    other_frames: Counter[str] = field(default_factory=Counter)
    closed_early: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)
    # (time.time(), server CPU s, machine busy s, CPU pressure s) every SAMPLE_SECONDS
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_idle - self.rss_before) / self.sockets if self.sockets else math.nan

    @property
    def messages(self) -> int:
        """Messages the server handled: accepted, or delivered though the send timed out."""
        return max(len(self.accepted | self.delivered), 1)

    @property
    def server_ms_per_message(self) -> float:
        return self.cpu.get("server", math.nan) / self.messages * 1000

    @property
    def server_us_per_delivery(self) -> float:
        """Server CPU per delivery, the send path included (it is small against a group's
        fan-out)."""
        return self.cpu.get("server", math.nan) / max(self.unique, 1) * 1e6

    @property
    def server_kernel_share(self) -> float:
        """The share of the server's CPU spent in the kernel (system time): the writes,
        reads and wakeups; the rest is Python and the C extensions it calls."""
        return self.cpu.get("server_kernel", math.nan) / (self.cpu.get("server") or math.nan)

    @property
    def generator_share(self) -> float:
        """The sender's and receivers' CPU as a share of the machine's."""
        load = self.cpu.get("sender", 0.0) + self.cpu.get("receivers", 0.0)
        return load / self.cpu["total"] if self.cpu.get("total") else math.nan

    @property
    def clean(self) -> bool:
        """Every message accepted and delivered once, p99 under the target."""
        return (
            self.lost == 0
            and self.duplicates == 0
            and not self.send_errors
            and self.open_failed == 0
            and self.ms(99) < TARGET_P99_MS
        )

    def ms(self, pct: float) -> float:
        return percentile(self.latency, pct) * 1000

    def report(self) -> str:
        post = sorted(self.post_latency)
        errors = sum(self.send_errors.values())
        detail = ", ".join(f"{k}: {v}" for k, v in self.send_errors.most_common(3))
        cpu = self.cpu
        server, redis_s = cpu.get("server", 0.0), cpu.get("redis", 0.0)
        postgres = cpu.get("postgres", 0.0)
        messages = self.messages
        sender, receivers = cpu.get("sender", 0.0), cpu.get("receivers", 0.0)
        busy = cpu.get("busy", 0.0)
        others = busy - server - redis_s - postgres - sender - receivers
        window = self.window or math.nan
        cores = os.cpu_count() or 1
        closed = ", ".join(f"code {k}: {v}" for k, v in self.closed_early.items()) or "none"
        other = ", ".join(f"{k} {v}" for k, v in self.other_frames.most_common()) or "none"
        opening_error = f": {self.open_error}" if self.open_error else ""
        return "\n".join(
            [
                f"  {self.name}",
                f"    sockets      {self.sockets} open in {self.open_seconds:.1f}s"
                f" ({self.open_failed} failed{opening_error});"
                f" {self.deflate} with permessage-deflate",
                f"    memory       server RSS {self.rss_before / 1024:.1f} MiB before sockets,"
                f" {self.rss_idle / 1024:.1f} MiB with them idle"
                f" -> {self.kib_per_socket:.1f} KiB per idle socket;"
                f" {self.rss_after / 1024:.1f} MiB after the load",
                f"    sent         {len(self.accepted)} of {len(self.sent)} accepted in"
                f" {self.send_seconds:.1f}s ({errors} errors{': ' + detail if detail else ''});"
                f" schedule lag max {self.schedule_lag_max * 1000:.1f} ms",
                f"    POST ms      p50 {percentile(post, 50) * 1000:.1f}"
                f"  p99 {percentile(post, 99) * 1000:.1f}"
                f"  max {(post[-1] if post else math.nan) * 1000:.1f}",
                f"    deliveries   {self.unique} of {self.expected} expected,"
                f" {self.deliveries_per_s:.0f}/s; lost {self.lost}, duplicated {self.duplicates};"
                f" {len(self.delivered - self.accepted)} messages delivered"
                " though their send timed out",
                f"    latency ms   send->deliver p50 {self.ms(50):.1f}  p90 {self.ms(90):.1f}"
                f"  p99 {self.ms(99):.1f}  p99.9 {self.ms(99.9):.1f}"
                f"  max {(self.latency[-1] if self.latency else math.nan) * 1000:.1f}",
                f"    fan-out ms   event ts->deliver p50 {percentile(self.fanout, 50) * 1000:.1f}"
                f"  p99 {percentile(self.fanout, 99) * 1000:.1f}"
                f"  max {(self.fanout[-1] if self.fanout else math.nan) * 1000:.1f}"
                "  (from the server's publish to the socket: the send path left out)",
                f"    cpu s        over {window:.1f}s: server {server:.1f}"
                f" ({server / window:.0%} of a core;"
                f" {server / messages * 1e3:.2f} ms per message,"
                f" {self.server_us_per_delivery:.1f} us per delivery,"
                f" {self.idle_cpu:.0%} of a core while idle,"
                f" {self.server_kernel_share:.0%} of it in the kernel), redis {redis_s:.1f},"
                f" postgres backends {postgres:.1f} ({postgres / messages * 1e3:.2f} ms/message),"
                f" load generator {sender + receivers:.1f}"
                f" (sender {sender:.1f} = {sender / window / cores:.0%} of the machine,"
                f" receivers {receivers:.1f} = {receivers / window / cores:.0%}),"
                f" everything else (other users of the machine) {others:.1f};"
                f" machine {busy:.1f} busy of {cpu.get('total', 0):.1f};"
                f" some task waiting for a core {cpu.get('pressure', math.nan) / window:.0%}"
                " of the time (/proc/pressure/cpu)",
                f"    other        frames besides the bench's: {other}; sockets closed: {closed}",
                f"    timeline     per {SLICE_SECONDS:g} s of sending: send->deliver p99 and max of"
                " the messages sent then; the server's share of a core, the rest of the"
                " machine in cores, and how often some task waited for a core",
                *(f"                 {line}" for line in self.timeline),
            ]
        )


def rss_kib(pids: Sequence[int]) -> int:
    """Resident memory of these processes, in KiB (VmRSS from /proc)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_pressure_seconds() -> float:
    """Seconds during which some runnable task of the machine waited for a core (PSI)."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


async def pg_backends(database: str | None) -> list[int]:
    """The PostgreSQL backend processes serving `database` now (same machine)."""
    if database is None:
        return []
    conn = await asyncpg.connect(f"{PG_ADMIN_DSN}/postgres")
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows]


async def redis_cpu(client: redis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def warm_up(target: Target, http: RawHttp) -> None:
    """One chat's sockets and a few messages, so first-use costs are not counted per socket."""
    members = target.members[0]
    sockets: list[ClientConnection] = []
    step = "opening the warm-up sockets"
    try:
        async with asyncio.timeout(WARMUP_TIMEOUT):
            for u in members:
                ws = await connect(
                    target.ws_url(u), compression=OFFER_COMPRESSION, ping_interval=None, proxy=None
                )
                sockets.append(ws)
                # The pong comes once the server listens for this user (the naive server
                # accepts the socket before it subscribes): nothing posted later is missed.
                await ws.send('{"type":"ping"}')
                while await ws.recv() != '{"type":"pong"}':
                    pass
            for i in range(WARMUP_MESSAGES):
                step = f"posting warm-up message {i}"
                status = await target.post(http, 0, members[i % len(members)], f"warm-up {i}")
                if status not in (200, 201):
                    raise RuntimeError(f"{target.name}: warm-up message answered {status}")

            async def drain(ws: ClientConnection) -> None:
                got = 0
                while got < WARMUP_MESSAGES:
                    if '"message.created"' in str(await ws.recv()):
                        got += 1

            step = "receiving the warm-up messages"
            await asyncio.gather(*(drain(ws) for ws in sockets))
    except TimeoutError as exc:
        raise RuntimeError(f"{target.name}: warm-up stuck {step}") from exc
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def send_all(target: Target, http: RawHttp, args: argparse.Namespace, m: Measurement) -> None:
    """Post `rate` messages per second for `duration` seconds on a fixed schedule."""
    total = round(args.rate * args.duration)
    chats = len(target.members)

    async def one(i: int) -> None:
        chat = i % chats
        members = target.members[chat]
        author = members[(i // chats) % len(members)]
        sent = time.time()
        m.sent[i] = sent
        m.chat_of[i] = chat
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status = await target.post(http, chat, author, f"bench {i} {sent:.6f}")
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            m.send_errors[type(exc).__name__] += 1
            return
        if status in (200, 201):
            m.accepted.add(i)
            m.post_latency.append(time.time() - sent)
        else:
            m.send_errors[f"HTTP {status}"] += 1

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    start = loop.time()
    for i in range(total):
        delay = start + i / args.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            m.schedule_lag_max = max(m.schedule_lag_max, -delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    m.send_seconds = loop.time() - start


async def measure(
    target: Target, args: argparse.Namespace, redis_client: redis.Redis
) -> Measurement:
    """Open the sockets, measure idle memory, run the load, collect the deliveries."""
    m = Measurement(target.name)
    users = [u for chat in target.members for u in chat]
    receivers: list[ReceiverProcess] = []
    reports: list[dict[str, Any]] = []
    http = RawHttp(target.server.url, args.http_connections)
    try:
        receivers = [await ReceiverProcess.start() for _ in range(args.receivers)]
        await warm_up(target, http)
        progress(f"warmed up; opening {len(users)} sockets")
        await asyncio.sleep(SETTLE_SECONDS)
        m.rss_before = rss_kib(target.server.pids)

        shares = [users[i :: len(receivers)] for i in range(len(receivers))]
        opened = await asyncio.gather(
            *(
                r.request(
                    {
                        "cmd": "open",
                        "sockets": [(u, target.ws_url(u)) for u in share],
                        "within": OPEN_TIMEOUT,
                        "lean": args.compression == "none",
                    },
                    timeout=OPEN_TIMEOUT + 30,
                )
                for r, share in zip(receivers, shares, strict=True)
            )
        )
        m.sockets = sum(int(o["opened"]) for o in opened)
        m.open_failed = sum(int(o["failed"]) for o in opened)
        m.open_error = next((o["error"] for o in opened if o["error"]), None)
        m.open_seconds = max(float(o["seconds"]) for o in opened)
        m.deflate = sum(int(o["deflate"]) for o in opened)
        idle_cpu = cpu_seconds(target.server.pids)
        await asyncio.sleep(SETTLE_SECONDS)
        m.idle_cpu = (cpu_seconds(target.server.pids) - idle_cpu) / SETTLE_SECONDS
        m.rss_idle = rss_kib(target.server.pids)

        server_pids = target.server.pids
        receiver_pids = [r.proc.pid for r in receivers]
        pg0 = {pid: cpu_seconds([pid]) for pid in await pg_backends(target.database)}
        kernel0 = kernel_cpu_seconds(server_pids)
        cpu0 = (
            cpu_seconds(server_pids),
            cpu_seconds(receiver_pids),
            time.process_time(),
            await redis_cpu(redis_client),
            machine_busy_seconds(),
            cpu_pressure_seconds(),
        )
        progress(
            f"{m.sockets} sockets open in {m.open_seconds:.1f}s,"
            f" server pid {target.server.proc.pid}; sending for {args.duration:g}s"
        )
        started = time.perf_counter()
        sampler = asyncio.create_task(sample_cpu(server_pids, m.samples))
        await send_all(target, http, args, m)
        m.expected = sum(len(target.members[m.chat_of[i]]) for i in m.accepted)
        deadline = time.perf_counter() + DRAIN_TIMEOUT
        while time.perf_counter() < deadline:
            counts = await asyncio.gather(*(r.request({"cmd": "count"}) for r in receivers))
            if sum(int(c["unique"]) for c in counts) >= m.expected:
                break
            await asyncio.sleep(0.2)
        m.window = time.perf_counter() - started
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        progress(f"sent and drained in {m.window:.1f}s; collecting")
        busy1, total1 = machine_busy_seconds()
        m.cpu = {
            "server": cpu_seconds(server_pids) - cpu0[0],
            "server_kernel": kernel_cpu_seconds(server_pids) - kernel0,
            "receivers": cpu_seconds(receiver_pids) - cpu0[1],
            "sender": time.process_time() - cpu0[2],
            "redis": await redis_cpu(redis_client) - cpu0[3],
            "postgres": sum(
                cpu_seconds([pid]) - pg0.get(pid, 0.0) for pid in await pg_backends(target.database)
            ),
            "busy": busy1 - cpu0[4][0],
            "total": total1 - cpu0[4][1],
            "pressure": cpu_pressure_seconds() - cpu0[5],
        }
        m.rss_after = rss_kib(target.server.pids)
        reports = list(await asyncio.gather(*(r.request({"cmd": "report"}) for r in receivers)))
        await asyncio.gather(*(r.request({"cmd": "close"}) for r in receivers))
    finally:
        await asyncio.gather(*(r.stop() for r in receivers), return_exceptions=True)
        await http.aclose()
    tally(m, target, reports)
    return m


async def sample_cpu(
    server_pids: Sequence[int], into: list[tuple[float, float, float, float]]
) -> None:
    """Record the server's CPU, the machine's and the CPU pressure until cancelled."""
    while True:
        into.append(
            (
                time.time(),
                cpu_seconds(server_pids),
                machine_busy_seconds()[0],
                cpu_pressure_seconds(),
            )
        )
        await asyncio.sleep(SAMPLE_SECONDS)


def timeline(m: Measurement, first: dict[tuple[int, int], float]) -> list[str]:
    """One line per SLICE_SECONDS of the send schedule: latency and CPU then."""
    if not m.sent or len(m.samples) < 2:
        return []
    start = min(m.sent.values())
    latencies: dict[int, list[float]] = {}
    for (i, _), received in first.items():
        if i in m.sent:
            k = int((m.sent[i] - start) // SLICE_SECONDS)
            latencies.setdefault(k, []).append(received - m.sent[i])

    def sample_at(t: float) -> tuple[float, float, float, float]:
        return min(m.samples, key=lambda s: abs(s[0] - t))

    lines = []
    for k in sorted(latencies):
        lat = sorted(latencies[k])
        a, b = sample_at(start + k * SLICE_SECONDS), sample_at(start + (k + 1) * SLICE_SECONDS)
        span = b[0] - a[0]
        cpu = ""
        if span > 0:
            server, busy, pressure = b[1] - a[1], b[2] - a[2], b[3] - a[3]
            cpu = (
                f"  server {server / span:4.0%}  rest {(busy - server) / span:4.2f} cores"
                f"  waiting {pressure / span:4.0%}"
            )
        lines.append(
            f"{f'{k * SLICE_SECONDS:g}-{(k + 1) * SLICE_SECONDS:g} s':<9}"
            f" p99 {percentile(lat, 99) * 1000:7.1f}  max {lat[-1] * 1000:7.1f} ms{cpu}"
        )
    return lines


def tally(m: Measurement, target: Target, reports: Sequence[dict[str, Any]]) -> None:
    """Lost, duplicated, latency and rate from what the receivers recorded."""
    first: dict[tuple[int, int], float] = {}
    fanout: list[float] = []
    duplicates = 0
    for report in reports:
        m.other_frames.update(report["other"])
        m.closed_early.update(report["closed_early"])
        for message, user, received, published in report["deliveries"]:
            key = (int(message), int(user))
            if key in first:
                duplicates += 1
            else:
                first[key] = float(received)
                fanout.append(float(received) - float(published))
    expected = {(i, u) for i in m.accepted for u in target.members[m.chat_of[i]]}
    m.unique = len(first.keys() & expected)
    m.lost = len(expected - first.keys())
    m.duplicates = duplicates
    m.latency = sorted(t - m.sent[i] for (i, _), t in first.items() if i in m.sent)
    m.fanout = sorted(fanout)
    m.timeline = timeline(m, first)
    m.delivered = {i for i, _ in first}
    if first and m.sent:
        span = max(first.values()) - min(m.sent.values())
        m.deliveries_per_s = m.unique / span if span > 0 else math.nan


# --- setting the two systems up ---------------------------------------------------------


def layout(args: argparse.Namespace) -> list[list[int]]:
    """The member user ids of each chat: consecutive blocks of `group_size` users."""
    size = args.group_size
    return [[USER_ID_BASE + 1 + c * size + k for k in range(size)] for c in range(args.chats)]


async def insert_users(database_url: str, user_ids: Sequence[int]) -> None:
    """Insert the users straight into the database, all with one password hash."""
    from sqlalchemy import insert

    import parley.models  # noqa: F401  (every mapper, so that User's relationships resolve)
    from parley.auth.models import User
    from parley.auth.passwords import hash_password
    from parley.db.engine import Database

    password_hash = hash_password("bench-password-0123")
    db = Database(database_url)
    try:
        async with db.session() as session:
            await session.execute(
                insert(User),
                [
                    {
                        "id": uid,
                        "username": f"fan{uid - USER_ID_BASE}",
                        "display_name": f"Fan {uid - USER_ID_BASE}",
                        "password_hash": password_hash,
                    }
                    for uid in user_ids
                ],
            )
            await session.commit()
    finally:
        await db.dispose()


def access_token(user_id: int, secret: str) -> str:
    """A bearer token as `POST /auth/token` would issue it."""
    from parley.auth.tokens import issue_access_token
    from parley.settings import Settings

    issuer = str(Settings.model_fields["jwt_issuer"].default)
    return issue_access_token(user_id, key=secret, issuer=issuer, ttl_seconds=3600).token


async def setup_parley(
    run: Run, args: argparse.Namespace, scratch: Path, members: list[list[int]]
) -> Target:
    """A fresh database with the users, one `parley serve`, and the group chats."""
    name = f"parley_bench_fanout_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(name)
    run.databases.append(name)
    database_url = sqlalchemy_url(dsn)
    await asyncio.to_thread(parley_migrate, database_url, scratch)
    started = time.perf_counter()
    await insert_users(database_url, [u for chat in members for u in chat])
    secret = new_secret()
    port = free_port()
    env = {
        "PARLEY_ENV": "production",
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_REDIS_URL": args.redis,
        "PARLEY_SECRET_KEY": secret,
        "PARLEY_LOG_LEVEL": "WARNING",
        "PARLEY_AUTO_MIGRATE": "false",
        # The load comes from one address (the bench signs its own tokens, but a login or
        # registration must never be what stops it).
        "PARLEY_RATE_LIMIT_ENABLED": "false",
        "PARLEY_WS_COMPRESSION": "true" if args.compression == "deflate" else "false",
    }
    argv = [sys.executable, "-m", "parley.cli", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--graceful-timeout", "3"]
    server = Server.start("parley", argv, port=port, env=env, cwd=scratch)
    run.servers.append(server)
    await server.wait_ready()
    tokens = {u: access_token(u, secret) for chat in members for u in chat}
    users = {u: BenchUser(u, f"fan{u - USER_ID_BASE}", t) for u, t in tokens.items()}
    limit = asyncio.Semaphore(8)

    async def group(chat: list[int]) -> int:
        async with limit:
            return await create_group(server.url, users[chat[0]], [users[u] for u in chat[1:]])

    chat_ids = await asyncio.gather(*(group(chat) for chat in members))
    progress(
        f"Parley: database {name}, {len(tokens)} users and {len(chat_ids)} chats ready"
        f" in {time.perf_counter() - started:.1f}s; server pid {server.proc.pid} at {server.url}"
    )
    ws_base = server.url.replace("http://", "ws://") + "/api/v1/ws?token="

    async def post(http: RawHttp, chat: int, author: int, text: str) -> int:
        path = f"/api/v1/chats/{chat_ids[chat]}/messages"
        return await http.post(path, {"text": text}, users[author].headers)

    return Target(
        f"Parley (services mode, 1 process, server compression {args.compression})",
        server,
        members,
        lambda u: ws_base + tokens[u],
        post,
        database=name,
    )


async def setup_naive(
    run: Run, args: argparse.Namespace, scratch: Path, members: list[list[int]]
) -> Target:
    """`bench/naive_fanout.py` with the same chats (indices as ids)."""
    chats_file = scratch / "naive-chats.json"
    chats_file.write_text(json.dumps({str(c + 1): m for c, m in enumerate(members)}))
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "naive_fanout.py"), "--port", str(port)]
    argv += ["--redis", args.redis, "--chats", str(chats_file), "--compression", args.compression]
    server = Server.start("naive", argv, port=port, env={}, cwd=scratch)
    run.servers.append(server)
    await server.wait_ready("/health")
    progress(f"naive: server pid {server.proc.pid} at {server.url}")
    ws_base = server.url.replace("http://", "ws://") + "/ws?user="

    async def post(http: RawHttp, chat: int, author: int, text: str) -> int:
        return await http.post(f"/chats/{chat + 1}/messages", {"authorId": author, "text": text})

    return Target(
        "naive (one Redis connection per socket, 1 process,"
        f" server compression {args.compression})",
        server,
        members,
        lambda u: ws_base + str(u),
        post,
    )


# --- the run -----------------------------------------------------------------------------


def check_fd_limit(sockets: int) -> None:
    """Raise the soft open-files limit (inherited by every child) or fail clearly."""
    wanted = 2 * sockets + 1024  # naive server: a socket and a Redis connection per client
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(
            f"need {wanted} open files, the hard limit is {hard}: raise it (ulimit -Hn)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@dataclass
class Saturation:
    """A target's steps of a rising rate, and the best clean one."""

    name: str
    steps: list[tuple[float, Measurement]] = field(default_factory=list)

    @property
    def best(self) -> Measurement | None:
        """The clean step with the most deliveries per second."""
        clean = [m for _, m in self.steps if m.clean]
        return max(clean, key=lambda m: m.deliveries_per_s) if clean else None

    @property
    def deliveries_per_s(self) -> float:
        best = self.best
        return best.deliveries_per_s if best is not None else 0.0


async def saturate(
    target: Target, args: argparse.Namespace, redis_client: redis.Redis
) -> Saturation:
    """Run the load at each of `--rates` in turn, `--step-duration` s each, on fresh sockets,
    until a step is not clean (a loss, a duplicate, an error, or p99 >= the target)."""
    found = Saturation(target.name)
    for rate in args.rates:
        step_args = argparse.Namespace(**{**vars(args), "rate": rate, "duration": args.step})
        progress(f"{target.name}: {rate:g} messages/s for {args.step:g}s")
        m = await measure(target, step_args, redis_client)
        found.steps.append((rate, m))
        print(
            f"  {target.name:<7} {rate:>6g} msg/s: {m.deliveries_per_s:>7.0f} deliveries/s,"
            f" p99 {m.ms(99):7.1f} ms, lost {m.lost}, dup. {m.duplicates},"
            f" errors {sum(m.send_errors.values())};"
            f" server {m.server_us_per_delivery:.1f} us per delivery"
            f" ({m.cpu.get('server', 0.0) / (m.window or math.nan):.0%} of a core,"
            f" {m.server_kernel_share:.0%} of it in the kernel);"
            f" load generator {m.generator_share:.0%} of the machine;"
            f" machine {m.cpu.get('busy', 0.0):.0f} of {m.cpu.get('total', 0.0):.0f} CPU-s busy"
            f" -> {'clean' if m.clean else 'SATURATED'}",
            flush=True,
        )
        if not m.clean:
            break
    return found


def summarize_saturation(parley: Saturation, naive: Saturation | None) -> int:
    """Print each target's saturation rate and the ratio; 0 when the targets are met."""
    print()
    checks: list[tuple[str, bool, str]] = []
    best = parley.best
    print(
        f"Parley at saturation: {parley.deliveries_per_s:.0f} deliveries/s"
        + (f" ({best.server_us_per_delivery:.1f} us of server CPU per delivery)" if best else "")
    )
    if best is not None:
        checks.append(
            (
                f"<= {TARGET_US_PER_DELIVERY:.0f} us of server CPU per delivery",
                best.server_us_per_delivery <= TARGET_US_PER_DELIVERY,
                f"{best.server_us_per_delivery:.1f} us",
            )
        )
    if naive is not None:
        print(f"naive at saturation: {naive.deliveries_per_s:.0f} deliveries/s")
        got = parley.deliveries_per_s / naive.deliveries_per_s if naive.deliveries_per_s else 0
        last_naive = naive.steps[-1][1] if naive.steps else None
        if naive.best is None and last_naive is not None:
            print("  (the naive relay was not clean even at the lowest rate)")
        checks.append(
            (
                f">= {TARGET_SATURATION_RATIO:g}x the naive relay's deliveries/s at saturation",
                got >= TARGET_SATURATION_RATIO,
                f"{got:.2f}x" if naive.deliveries_per_s else "naive never clean",
            )
        )
    if parley.steps and parley.best is parley.steps[-1][1]:
        print("  (Parley was clean at the highest rate tried: raise --rates to find its limit)")
    for label, ok, value in checks:
        print(f"target {label}: {'met' if ok else 'MISSED'} ({value})")
    return 0 if checks and all(ok for _, ok, _ in checks) else 1


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(b) else "n/a"


def summarize(parley: Measurement, naive: Measurement | None, check: GeneratorCheck | None) -> int:
    """Print the ratios and the verdict; 0 when every target is met (and the load
    generator check, when it ran, passed)."""
    checks = [
        ("zero lost deliveries", parley.lost == 0, f"{parley.lost} lost"),
        ("zero duplicated deliveries", parley.duplicates == 0, f"{parley.duplicates} dup."),
        (f"p99 < {TARGET_P99_MS:.0f} ms", parley.ms(99) < TARGET_P99_MS, f"{parley.ms(99):.1f}"),
        (
            f"<= {TARGET_KIB_PER_SOCKET:.0f} KiB per idle socket",
            parley.kib_per_socket <= TARGET_KIB_PER_SOCKET,
            f"{parley.kib_per_socket:.1f} KiB",
        ),
        ("every socket opened", parley.open_failed == 0, f"{parley.open_failed} failed"),
    ]
    if check is not None:
        checks.append(
            (
                "load generator >= 90% of wrk on the bare INSERT endpoint",
                check.passed,
                f"{check.ratio:.0%}",
            )
        )
    print()
    if naive is not None:
        print(
            f"Parley / naive: p99 latency {parley.ms(99):.1f} / {naive.ms(99):.1f} ms ="
            f" {ratio(parley.ms(99), naive.ms(99))};"
            f" deliveries/s {parley.deliveries_per_s:.0f} / {naive.deliveries_per_s:.0f} ="
            f" {ratio(parley.deliveries_per_s, naive.deliveries_per_s)};"
            f" memory per idle socket {parley.kib_per_socket:.1f} / {naive.kib_per_socket:.1f}"
            f" KiB = {ratio(parley.kib_per_socket, naive.kib_per_socket)};"
            f" server CPU per message {parley.server_ms_per_message:.2f} /"
            f" {naive.server_ms_per_message:.2f} ms ="
            f" {ratio(parley.server_ms_per_message, naive.server_ms_per_message)}"
        )
    for label, ok, value in checks:
        print(f"target {label}: {'met' if ok else 'MISSED'} ({value})")
    return 0 if all(ok for _, ok, _ in checks) else 1


async def main_async(args: argparse.Namespace, run: Run, scratch: Path) -> int:
    members = layout(args)
    sockets = sum(len(c) for c in members)
    print(
        f"fan-out bench: {sockets} sockets ({args.chats} group chats of {args.group_size}),"
        f" {args.rate:g} messages/s for {args.duration:g}s through the REST API,"
        f" {args.receivers} receiver process(es), server websocket compression"
        f" {args.compression} ("
        + (
            "lean client sockets, no extension offered)"
            if args.compression == "none"
            else "the sockets offer permessage-deflate)"
        ),
        flush=True,
    )
    print(
        f"machine: {os.cpu_count()} CPU cores shared by the server, PostgreSQL, Redis and the"
        f" load generator; load average {os.getloadavg()[0]:.2f} at start; other work (tests)"
        " may run at the same time; loopback only",
        flush=True,
    )
    check: GeneratorCheck | None = None
    if not args.no_generator_check:
        check = await check_generator(
            drive_bare, run=run, scratch=scratch, connections=args.http_connections
        )
        print(check.report(), flush=True)
    floor_us = await write_floor(sockets)
    redis_client = redis.Redis.from_url(args.redis)
    if args.rates:
        try:
            return await saturation_run(args, run, scratch, members, redis_client, floor_us)
        finally:
            await redis_client.aclose()
    try:
        await redis_client.flushdb()
        parley = None
        if not args.no_parley:
            parley_target = await setup_parley(run, args, scratch, members)
            parley = await measure(parley_target, args, redis_client)
            print(parley.report(), flush=True)
            progress("stopping Parley")
            parley_target.server.stop()
            run.servers.remove(parley_target.server)
        naive = None
        if not args.no_naive:
            await redis_client.flushdb()
            naive_target = await setup_naive(run, args, scratch, members)
            try:
                naive = await measure(naive_target, args, redis_client)
            except (RuntimeError, OSError) as exc:  # keep Parley's figures: report, go on
                print(f"  naive baseline failed: {exc!r}", flush=True)
                print(f"  --- end of its log:\n{naive_target.server.log_tail()}", flush=True)
            else:
                print(naive.report(), flush=True)
            naive_target.server.stop()
            run.servers.remove(naive_target.server)
        await redis_client.flushdb()
        if parley is None:
            return 0
        code = summarize(parley, naive, check)
        print_floor_ratio(parley.server_us_per_delivery, floor_us)
        return code if args.check else 0
    finally:
        await redis_client.aclose()


async def saturation_run(
    args: argparse.Namespace,
    run: Run,
    scratch: Path,
    members: list[list[int]],
    redis_client: redis.Redis,
    floor_us: float,
) -> int:
    """`--rates`: each target's deliveries/s at saturation, and their ratio."""
    await redis_client.flushdb()
    parley = naive = None
    if not args.no_parley:
        target = await setup_parley(run, args, scratch, members)
        parley = await saturate(target, args, redis_client)
        target.server.stop()
        run.servers.remove(target.server)
    if not args.no_naive:
        await redis_client.flushdb()
        target = await setup_naive(run, args, scratch, members)
        naive = await saturate(target, args, redis_client)
        target.server.stop()
        run.servers.remove(target.server)
    await redis_client.flushdb()
    if parley is None:
        return 0
    code = summarize_saturation(parley, naive)
    if parley.best is not None:
        print_floor_ratio(parley.best.server_us_per_delivery, floor_us)
    return code if args.check else 0


async def write_floor(sockets: int) -> float:
    """`bench/write_floor.py` on as many sockets: server CPU per bare `transport.write`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("write_floor.py")),
        "--sockets",
        str(sockets),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    line = out.decode().strip()
    print(f"  floor: {line}", flush=True)
    return float(line.split(":")[1].split()[0])


def print_floor_ratio(us_per_delivery: float, floor_us: float) -> None:
    """Parley's CPU per delivery against the machine's floor, both from this run."""
    print(
        f"server CPU per delivery {us_per_delivery:.1f} us = {us_per_delivery / floor_us:.1f}x"
        f" a bare transport.write on this machine ({floor_us:.1f} us, measured in this run)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chats", type=int, default=100, help="group chats")
    parser.add_argument("--group-size", type=int, default=10, help="members per chat")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    parser.add_argument("--receivers", type=int, default=2, help="socket client processes")
    parser.add_argument("--http-connections", type=int, default=64, help="sender pool size")
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="none",
        help="the servers' permessage-deflate: none (Parley's default) or deflate"
        " (PARLEY_WS_COMPRESSION=true); the sockets always offer it, as browsers do",
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        help="saturation search: these messages/s in turn (comma-separated, rising), each"
        " for --step seconds on fresh sockets, until a step loses, duplicates, errs or has"
        " a p99 over 100 ms; prints each target's deliveries/s at saturation and the ratio",
    )
    parser.add_argument("--step", type=float, default=10.0, help="seconds per --rates step")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="Redis URL (flushed!)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument("--no-parley", action="store_true", help="measure the naive one only")
    parser.add_argument(
        "--no-generator-check",
        action="store_true",
        help="skip comparing the sender's HTTP client with wrk on the bare INSERT endpoint",
    )
    parser.add_argument("--time-limit", type=float, default=420.0, help="seconds for it all")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.chats, args.group_size, args.receivers) < 1 or args.rate <= 0:
        parser.error("--chats, --group-size, --receivers and --rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.receiver:
        asyncio.run(receiver_main())
        return 0
    check_fd_limit(args.chats * args.group_size)
    signal.signal(signal.SIGTERM, terminate)
    run = Run()
    with workdir() as scratch:
        try:
            return run_within(
                lambda run, scratch: main_async(args, run, scratch),
                run,
                Path(scratch),
                args.time_limit,
            )
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except TimeLimitExceeded:
            return report_time_limit(run, args.time_limit)
        finally:
            cleanup(run)


if __name__ == "__main__":
    sys.exit(main())
