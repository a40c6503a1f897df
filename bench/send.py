"""Send-path benchmark: Parley's `POST /chats/{id}/messages` against a bare FastAPI INSERT.

    .venv/bin/python bench/send.py                      # start everything itself (default)
    .venv/bin/python bench/send.py --concurrency 32 --duration 15 --workers 2
    .venv/bin/python bench/send.py --url http://127.0.0.1:8000   # a running services-mode server

N senders, each on its own keep-alive httpx connection, post messages back to back for a
fixed time; the script prints messages/s, p50/p90/p99/max latency, errors and CPU use for:

1. Parley, one group chat per pair of senders (N/2 chats of 2 members);
2. `bench/bare_insert_app.py`: FastAPI + an asyncpg pool doing one INSERT ... RETURNING
   into a table shaped like `messages`, served by uvicorn with the same process count;
3. Parley, one hot group chat with all N senders as members (every send updates the same
   chat row, and every message fans out to N users);

then the ratio Parley (1) / bare (2) and whether the targets hold: at least 40% of the
bare throughput and p99 under 50 ms. (1) and (2) are measured in alternating rounds
(`--rounds`, `--duration` seconds each in total), so that whatever else the machine is doing
weighs on both alike.

With `--start-server` (the default without `--url`) it needs PostgreSQL at
postgres@127.0.0.1:5432 (trust auth; override with BENCH_PG) and Redis at
127.0.0.1:6379/12 (BENCH_REDIS). It creates a fresh database, runs `parley migrate`, starts
one `parley serve` on a free loopback port, and at the end (also on Ctrl-C or an error)
stops every server it started and drops the databases. The bare baseline always runs on a
fresh local database (skip it with `--no-bare`). Everything runs on this machine: the load
generator competes with the servers, PostgreSQL and Redis for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from _common import (
    BenchUser,
    LoadResult,
    Run,
    SendOne,
    Server,
    cleanup,
    create_database,
    create_group,
    create_users,
    free_port,
    new_secret,
    parley_migrate,
    run_load,
    sqlalchemy_url,
    start_parley,
    workdir,
)
from bare_insert_app import SCHEMA

BENCH_DIR = Path(__file__).resolve().parent
CREATED = frozenset({201})  # a 200 would be an idempotent replay, not a new message
TARGET_RATIO = 0.40
TARGET_P99_MS = 50.0
TEXT = "bench message {seq} from {user}: the quick brown fox jumps over the lazy dog"


@dataclass
class Target:
    """A server under load and the senders that load it."""

    name: str
    url: str
    senders: list[SendOne]
    server: Server | None
    database: str | None = None

    async def load(self, duration: float, *, measured: bool = True) -> LoadResult:
        pids = self.server.pids if self.server is not None and measured else []
        result = await run_load(
            self.name,
            self.url,
            self.senders,
            duration=duration,
            server_pids=pids,
            database=self.database if measured else None,
            ok_status=CREATED,
        )
        if self.server is None:
            result.server_cpu = math.nan
        return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--url", help="a running services-mode Parley (default: start one)")
    parser.add_argument(
        "--start-server",
        action="store_true",
        help="start Parley on a fresh database (the default when --url is not given)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent senders")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of Parley and bare")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up, unmeasured")
    parser.add_argument("--workers", type=int, default=1, help="server processes (both servers)")
    parser.add_argument(
        "--no-client-id", action="store_true", help="send messages without a clientId"
    )
    parser.add_argument("--no-hot", action="store_true", help="skip the single-hot-chat variant")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare baseline")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target is missed (for CI)"
    )
    args = parser.parse_args(argv)
    if args.url and args.start_server:
        parser.error("--url and --start-server exclude each other")
    if args.concurrency < 1 or args.duration <= 0 or args.workers < 1 or args.rounds < 1:
        parser.error("--concurrency, --duration, --rounds and --workers must be positive")
    args.start_server = args.url is None
    return args


def sender(
    user: BenchUser, chat_id: int, *, tag: str, client_id: bool, bare: bool = False
) -> SendOne:
    """One sender posting to one chat; the bare app gets the author in a header instead."""
    path = f"/api/v1/chats/{chat_id}/messages"
    headers = {"X-Bench-Author": str(user.id)} if bare else user.headers
    counter = itertools.count()

    async def send(client: httpx.AsyncClient) -> int:
        seq = next(counter)  # never repeats, warm-up included: every clientId is new
        body: dict[str, str] = {"text": TEXT.format(seq=seq, user=user.username)}
        if client_id:
            body["clientId"] = f"{tag}-{user.id}-{seq}"
        reply = await client.post(path, json=body, headers=headers)
        return reply.status_code

    return send


async def start_and_wait(run: Run, server: Server) -> Server:
    run.servers.append(server)
    print(f"  started {server.name} (pid {server.proc.pid}) at {server.url}", flush=True)
    await server.wait_ready()
    return server


def stop(run: Run, server: Server) -> None:
    server.stop()
    if server in run.servers:
        run.servers.remove(server)


async def start_parley_server(
    run: Run, args: argparse.Namespace, scratch: Path, tag: str
) -> tuple[Server, str]:
    """A fresh, migrated database and one `parley serve` on it."""
    name = f"parley_bench_send_{tag}"
    dsn = await create_database(name)
    run.databases.append(name)
    database_url = sqlalchemy_url(dsn)
    await asyncio.to_thread(parley_migrate, database_url, scratch)
    server = start_parley(
        database_url=database_url,
        port=free_port(),
        workers=args.workers,
        cwd=scratch,
        secret_key=new_secret(),
    )
    return await start_and_wait(run, server), name


async def start_bare_server(
    run: Run, args: argparse.Namespace, scratch: Path, tag: str
) -> tuple[Server, str]:
    """A fresh database with the bare table, and uvicorn serving `bare_insert_app` on it."""
    name = f"parley_bench_bare_{tag}"
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
        *("--workers", str(args.workers), "--log-level", "warning", "--no-access-log"),
        *("--timeout-graceful-shutdown", "3"),
    ]
    server = Server.start("bare", argv, port=port, env={"BARE_DATABASE_URL": dsn}, cwd=scratch)
    return await start_and_wait(run, server), name


async def main_async(args: argparse.Namespace, run: Run, scratch: Path) -> int:
    tag = uuid.uuid4().hex[:6]
    n = args.concurrency
    client_id = not args.no_client_id
    print(
        f"send-path bench: {n} senders, {args.duration:g}s per scenario"
        f" (+{args.warmup:g}s warm-up), {args.workers} server process(es) each,"
        f" clientId {'on' if client_id else 'off'}",
        flush=True,
    )
    print(
        f"machine: {os.cpu_count()} CPU cores, shared by the load generator (this process),"
        " the server under test, PostgreSQL, Redis and anything else running; loopback only",
        flush=True,
    )

    server, database = None, None
    if args.start_server:
        server, database = await start_parley_server(run, args, scratch, tag)
    url = server.url if server is not None else str(args.url).rstrip("/")
    if server is None:
        print(f"  Parley at {url} (not started here: no server CPU figures)", flush=True)
    started = time.perf_counter()
    users = await create_users(url, n, prefix=f"b{tag}")
    pair_chats = [await create_group(url, users[i], users[i + 1 : i + 2]) for i in range(0, n, 2)]
    elapsed = time.perf_counter() - started
    print(f"  set up {n} users and {len(pair_chats)} chats in {elapsed:.1f}s", flush=True)
    pairs = Target(
        f"Parley, {len(pair_chats)} group chats of 2 senders each",
        url,
        [
            sender(u, pair_chats[i // 2], tag=f"{tag}p", client_id=client_id)
            for i, u in enumerate(users)
        ],
        server,
        database,
    )
    targets = [pairs]
    bare: Target | None = None
    if not args.no_bare:
        bare_server, bare_database = await start_bare_server(run, args, scratch, tag)
        bare = Target(
            "bare FastAPI + asyncpg, one INSERT per message",
            bare_server.url,
            [
                sender(u, 1 + i // 2, tag=f"{tag}b", client_id=client_id, bare=True)
                for i, u in enumerate(users)
            ],
            bare_server,
            bare_database,
        )
        targets.append(bare)

    for target in targets:
        await target.load(args.warmup, measured=False)
    parts: dict[str, list[LoadResult]] = {t.name: [] for t in targets}
    for round_no in range(args.rounds):
        order = targets if round_no % 2 == 0 else targets[::-1]
        for target in order:
            parts[target.name].append(await target.load(args.duration / args.rounds))
    results = {name: LoadResult.merge(name, p) for name, p in parts.items()}
    print()
    for result in results.values():
        print(result.report(), flush=True)

    if not args.no_hot:
        hot_id = await create_group(url, users[0], users[1:])
        hot = Target(
            f"Parley, 1 hot group chat of {n} senders (fan-out {n} per message)",
            url,
            [sender(u, hot_id, tag=f"{tag}h", client_id=client_id) for u in users],
            server,
            database,
        )
        await hot.load(min(args.warmup, 2.0), measured=False)
        print((await hot.load(args.duration)).report(), flush=True)

    for s in list(run.servers):
        stop(run, s)
    if bare is None:
        return 0
    return summarize(results[pairs.name], results[bare.name], args)


async def cancel_on_sigterm(work: Coroutine[Any, Any, int]) -> int:
    """Run `work`, cancelling it on SIGTERM as asyncio.run does on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


def summarize(parley: LoadResult, bare: LoadResult, args: argparse.Namespace) -> int:
    """Print the ratio and the verdict; the exit status under --check."""
    ratio = parley.rate / bare.rate if bare.rate else math.nan
    p99 = parley.ms(99)
    ratio_ok = ratio >= TARGET_RATIO
    p99_ok = p99 < TARGET_P99_MS
    print()
    print(
        f"Parley / bare throughput: {parley.rate:.1f} / {bare.rate:.1f} msg/s = {ratio:.0%}"
        f"  (target >= {TARGET_RATIO:.0%}: {'met' if ratio_ok else 'MISSED'})"
    )
    print(
        f"Parley p99 at {args.concurrency} senders: {p99:.1f} ms"
        f"  (target < {TARGET_P99_MS:.0f} ms: {'met' if p99_ok else 'MISSED'})"
    )
    print(
        f"  (closed loop: mean latency = senders / throughput, so a p99 under"
        f" {TARGET_P99_MS:.0f} ms at {args.concurrency} senders needs well over"
        f" {args.concurrency / TARGET_P99_MS * 1000:.0f} msg/s; the bare endpoint's p99 here:"
        f" {bare.ms(99):.1f} ms)"
    )
    if parley.ok and bare.ok and not math.isnan(parley.server_cpu):
        per_parley = parley.server_cpu / parley.ok * 1e6
        per_bare = bare.server_cpu / bare.ok * 1e6
        print(
            f"server CPU per message: Parley {per_parley:.0f} us, bare {per_bare:.0f} us"
            f" ({per_parley / per_bare:.1f}x)"
        )
        if not (math.isnan(parley.db_cpu) or math.isnan(bare.db_cpu)):
            db_parley = parley.db_cpu / parley.ok * 1e6
            db_bare = bare.db_cpu / bare.ok * 1e6
            print(
                f"PostgreSQL CPU per message: Parley {db_parley:.0f} us, bare {db_bare:.0f} us"
                f" ({db_parley / db_bare:.1f}x)"
            )
    return 0 if (ratio_ok and p99_ok) or not args.check else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM cancel the run; the servers and databases go in `finally`.
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    run = Run()
    with workdir() as scratch:
        try:
            return asyncio.run(cancel_on_sigterm(main_async(args, run, Path(scratch))))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted: stopping the servers and dropping the databases", file=sys.stderr)
            return 130
        finally:
            cleanup(run)


if __name__ == "__main__":
    sys.exit(main())
