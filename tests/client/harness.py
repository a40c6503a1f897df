"""A real `parley serve` (in the suite's mode), the real `parley client` as a subprocess, and
a TCP relay that can cut connections (to make `watch` and `chat` reconnect)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import MODE, PG_ADMIN_URL, REDIS_URL
from tests.fixtures.servers import ServerProcess, free_port, server_env, start_server
from tests.fixtures.users import PASSWORD
from tests.fixtures.workers import WorkerProcess, start_worker

CLIENT_TIMEOUT = 60


async def _admin(statement: str) -> None:
    engine = create_async_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


class Deployment:
    """`parley serve` in the suite's mode, which a test may kill and start again.

    Embedded: one process on a SQLite file (its job worker inside). Services: the server on
    a fresh PostgreSQL database and the suite's Redis, and a `parley worker` for its jobs
    (on queues no other run shares). `joining` another deployment in services mode makes
    this one a second server process of it (its database, Redis and worker), which is the
    only safe way to share one Redis database: two databases would number their users and
    outbox rows alike, and Redis keys are named after those numbers.
    """

    def __init__(
        self, workdir: Path, *, joining: Deployment | None = None, **extra_env: str
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.database = f"parley_client_{uuid.uuid4().hex[:12]}"
        self.owns_database = joining is None or MODE != "services"
        sqlite = f"sqlite+aiosqlite:///{workdir / 'parley.db'}"
        if joining is not None:
            env = dict(joining.env)
            if MODE != "services":
                env["PARLEY_DATABASE_URL"] = sqlite
        elif MODE == "services":
            env = server_env(f"{PG_ADMIN_URL}/{self.database}", REDIS_URL)
        else:
            env = server_env(sqlite, None)
        # The server migrates its fresh database; jobs go to queues no other run shares.
        env.setdefault("PARLEY_JOB_QUEUE_PREFIX", f"c{uuid.uuid4().hex[:10]}.")
        env["PARLEY_AUTO_MIGRATE"] = "true"
        env.update(extra_env)
        self.env = env
        self.server: ServerProcess | None = None
        self.worker: WorkerProcess | None = None

    @property
    def http(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Create the database (services), start the server, then the worker."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        services = MODE == "services" and self.owns_database
        if services:
            # Whatever an earlier run left in the suite's Redis database names rows of
            # another database: a fresh one starts from an empty Redis database too.
            with redis.Redis.from_url(REDIS_URL) as client:
                client.flushdb()
            asyncio.run(_admin(f'CREATE DATABASE "{self.database}"'))
        self.start_server()  # it migrates the database before the worker connects to it
        if services:
            self.worker = start_worker(
                self.env,
                self.workdir,
                concurrency=1,
                log_name="worker.log",
                PARLEY_LOG_LEVEL="WARNING",
            )

    def start_server(self) -> None:
        """Start `parley serve` on this deployment's port and wait until it is live."""
        self.server = start_server(self.env, self.workdir, port=self.port)

    def kill_server(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.server is not None:
            self.server.stop(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the worker and the server, and drop the database (services)."""
        if self.worker is not None:
            self.worker.stop()
        if self.server is not None:
            self.server.stop()
        if MODE == "services" and self.owns_database:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))


@contextlib.contextmanager
def deployment(
    workdir: Path, *, joining: Deployment | None = None, **extra_env: str
) -> Iterator[Deployment]:
    """A started Deployment, stopped (and its database dropped) afterwards."""
    running = Deployment(workdir, joining=joining, **extra_env)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def unique(prefix: str) -> str:
    """A username nobody else on the shared server has."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def client_env(config: Path, server: str) -> dict[str, str]:
    """The environment of a client process: its own config file and server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_CLIENT_CONFIG=str(config), PARLEY_SERVER=server, PYTHONUNBUFFERED="1")
    return env


def client_command(*args: str) -> list[str]:
    """The argv that runs `parley client ARGS`."""
    return [sys.executable, "-m", "parley.cli", "client", *args]


@dataclass
class ClientUser:
    """Somebody using the terminal client, with their own config file."""

    username: str
    config: Path
    server: str

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `parley client ARGS` to completion; with `check`, insist it succeeded."""
        result = subprocess.run(
            client_command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=client_env(self.config, self.server),
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
        if check:
            assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, result.stderr
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `parley client ARGS` in the background (for `watch`)."""
        return subprocess.Popen(
            client_command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=client_env(self.config, self.server),
        )

    def sign_up(self) -> None:
        """Register through the client (which logs in too)."""
        self.run("register", self.username, "--password-stdin", stdin=PASSWORD + "\n")


class Lines:
    """The lines a background process writes to one stream, readable with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        """The first new line that satisfies `predicate`; AssertionError on timeout or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line within {timeout}s; saw {self.seen}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stream ended without a matching line; saw {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return line


@contextlib.contextmanager
def background(process: subprocess.Popen[str]) -> Iterator[tuple[Lines, Lines]]:
    """Readers of a background client's stdout and stderr; it is stopped on exit."""
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        yield Lines(process.stdout), Lines(process.stderr)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def rest_login(server: str, username: str) -> dict[str, str]:
    """Bearer headers for `username`, logged in over plain REST."""
    resp = httpx.post(
        f"{server}/api/v1/auth/token",
        data={"username": username, "password": PASSWORD},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def rest_register(server: str, username: str, **extra: Any) -> dict[str, Any]:
    """Register `username` over plain REST; the User."""
    resp = httpx.post(
        f"{server}/api/v1/auth/register",
        json={"username": username, "password": PASSWORD, **extra},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    user: dict[str, Any] = resp.json()
    return user


class _SiteHandler(BaseHTTPRequestHandler):
    pages: dict[str, bytes] = {}
    opened: threading.Event | None = None

    def do_GET(self) -> None:
        if self.opened is not None:
            self.opened.wait()
        body = self.pages.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        body = body if body is not None else b"<html><title>missing</title></html>"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def web_site(pages: dict[str, str], *, opened: threading.Event | None = None) -> Iterator[str]:
    """A loopback HTTP site serving `pages` (path -> HTML), 404 elsewhere; its base URL.

    With `opened`, every answer waits until that event is set (it is set on the way out).
    """
    attrs = {"pages": {k: v.encode() for k, v in pages.items()}, "opened": opened}
    handler = type("Handler", (_SiteHandler,), attrs)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        if opened is not None:
            opened.set()
        httpd.shutdown()
        httpd.server_close()


class Relay:
    """A TCP relay to a server that can drop every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._accepting = threading.Event()
        self._accepting.set()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._accepting.is_set():
                downstream.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                downstream.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((downstream, upstream))
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until `restore`."""
        self._accepting.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        """Accept connections again."""
        self._accepting.set()

    def close(self) -> None:
        """Stop relaying."""
        self._closed.set()
        self.cut()
        self._listener.close()
        self._thread.join(5)


class RestUser:
    """Someone on the other end, using the plain REST API (and a WebSocket) directly.

    Logs in again whenever the server refuses the access token, so that a short access
    token lifetime on the test server does not get in the way.
    """

    def __init__(self, server: str, username: str) -> None:
        self.server = server
        self.username = username
        self.user = rest_register(server, username)
        self.id: int = self.user["id"]
        self._headers = rest_login(server, username)

    @property
    def token(self) -> str:
        """A current access token."""
        return self._headers["Authorization"].removeprefix("Bearer ")

    def call(self, method: str, path: str, json: Any = None, *, status: int = 200) -> Any:
        """`method path` with a JSON body; the decoded answer, which must have `status`."""
        for _ in range(2):
            resp = httpx.request(
                method, f"{self.server}/api/v1{path}", json=json, headers=self._headers, timeout=30
            )
            if resp.status_code != 401:
                break
            self._headers = rest_login(self.server, self.username)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def post(self, chat_id: int, text: str) -> dict[str, Any]:
        """Send a message; the Message."""
        message: dict[str, Any] = self.call(
            "POST", f"/chats/{chat_id}/messages", {"text": text}, status=201
        )
        return message

    def websocket_url(self) -> str:
        """The WebSocket URL with a fresh token."""
        self._headers = rest_login(self.server, self.username)
        return self.server.replace("http://", "ws://") + f"/api/v1/ws?token={self.token}"
