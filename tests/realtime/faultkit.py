"""A two-process deployment under load, and clients that behave as the contract says.

- `Deployment`: two `parley serve` processes on a private PostgreSQL database and a private
  Redis that a test may restart, kill or pause.
- `Sender`: posts messages into one chat, one after the other, each with a new clientId,
  retrying a failed attempt with the same clientId (on the other process if its own is
  gone). It records every 5xx, and every 5xx whose message turned out to be committed.
- `Watcher`: one user's socket. It resumes by the last id it saw (or by `ready`'s), moves to
  the other process when its own is gone, and on `resync.required` refetches the chats by
  REST. It records what it learned (`known`), duplicates and ids out of order.

A test then checks that every watcher knows every message of its chats, saw none twice and
none out of order: no silent gap, whatever the fault was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from parley.realtime.codec import parse_event_id
from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.realtime.conftest import Api, make_user

RETRY_PAUSE = 0.1
# The outbox's grace and the relay's interval (2 + 0.5 s), with room for a loaded machine.
EVERYTHING_WITHIN = 15.0


@dataclass
class Deployment:
    """Two `parley serve` processes sharing one database and one Redis."""

    database_url: str
    redis_url: str
    workdir: Path
    servers: list[ServerProcess] = field(default_factory=list)

    def start(self, count: int = 2, **env: str) -> None:
        extra = {
            "PARLEY_EVENT_LOG_MAX_EVENTS": "1000",
            "PARLEY_EVENT_LOG_MAX_AGE_SECONDS": "600",
            "PARLEY_LOG_LEVEL": "INFO",
            "PARLEY_JOB_HEARTBEAT_SECONDS": "1",
            **env,
        }
        for _ in range(count):
            self.servers.append(
                start_server(server_env(self.database_url, self.redis_url, **extra), self.workdir)
            )

    def alive(self) -> list[ServerProcess]:
        return [s for s in self.servers if s.process.poll() is None]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def logs(self) -> str:
        return "\n".join(s.log() for s in self.servers)


def answered(server: ServerProcess) -> bool:
    return server.process.poll() is None


async def health(server: ServerProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.get(f"{server.http}/api/v1/health")
        body: dict[str, Any] = resp.json()
        body["status_code"] = resp.status_code
        return body


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, poll: float = 0.1
) -> float:
    """Poll `check` (state in other processes: nothing to subscribe to) until true; returns
    the seconds it took."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if await check():
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(poll)


# -- senders ------------------------------------------------------------------------------


@dataclass
class Sender:
    """Posts into one chat, one message at a time, until told to stop."""

    user: Api
    chat_id: int
    deployment: Deployment
    interval: float
    sent: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    committed_but_5xx: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set (pacing a load, not waiting for an event)."""
        while not stop.is_set():
            await self.send_one(f"m{len(self.sent)} from {self.user.username}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def send_one(self, text: str) -> int:
        """Post one message, retrying until it is in; returns its id."""
        client_id = uuid.uuid4().hex
        failed_with_5xx: list[int] = []
        attempt = 0
        while True:
            servers = self.deployment.alive()
            server = servers[attempt % len(servers)]
            attempt += 1
            try:
                async with httpx.AsyncClient(timeout=15) as client:
                    resp = await client.post(
                        f"{server.http}/api/v1/chats/{self.chat_id}/messages",
                        json={"text": text, "clientId": client_id},
                        headers={"Authorization": f"Bearer {self.user.token}"},
                    )
            except httpx.HTTPError:
                await asyncio.sleep(RETRY_PAUSE)  # the process is gone or restarting
                continue
            self.statuses[resp.status_code] += 1
            if resp.status_code >= 500:
                if resp.status_code != 503:
                    self.server_errors.append(f"{resp.status_code}: {resp.text[:200]}")
                failed_with_5xx.append(resp.status_code)
                await asyncio.sleep(RETRY_PAUSE)
                continue
            assert resp.status_code in (200, 201), resp.text
            message_id = int(resp.json()["id"])
            if resp.status_code == 200 and failed_with_5xx:
                # The same clientId found a message: an earlier attempt had committed it.
                self.committed_but_5xx.append(f"message {message_id}: {failed_with_5xx}")
            self.sent.append(message_id)
            return message_id


# -- watchers -----------------------------------------------------------------------------


@dataclass
class Watcher:
    """One user's socket, resuming by id across faults, with everything it learned."""

    user: Api
    chat_ids: list[int]
    deployment: Deployment
    home: int
    known: set[int] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    resyncs: int = 0
    connects: int = 0
    close_codes: list[int | None] = field(default_factory=list)
    last_id: str | None = None
    _epoch_ids: set[str] = field(default_factory=set)
    _epoch_messages: set[int] = field(default_factory=set)
    _last_key: tuple[int, int] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def server(self) -> ServerProcess:
        alive = self.deployment.alive()
        preferred = self.deployment.servers[self.home % len(self.deployment.servers)]
        return preferred if preferred in alive else alive[0]

    async def run(self, stop: asyncio.Event, connected: asyncio.Event | None = None) -> None:
        while not stop.is_set():
            server = self.server()
            query = f"?token={self.user.token}"
            if self.last_id is not None:
                query += f"&lastEventId={self.last_id}"
            try:
                async with connect(
                    server.ws + query, max_queue=None, ping_interval=None, open_timeout=10
                ) as ws:
                    self.connects += 1
                    await self._consume(ws, stop, connected)
                    self.close_codes.append(ws.close_code)
            except (OSError, InvalidStatus, WebSocketException, TimeoutError) as exc:
                if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
                    self.close_codes.append(exc.rcvd.code)
            if not stop.is_set():
                await asyncio.sleep(RETRY_PAUSE)

    async def _consume(self, ws: Any, stop: asyncio.Event, connected: asyncio.Event | None) -> None:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "ready":
                self.last_id = frame["data"]["lastEventId"]
                if connected is not None:
                    connected.set()
            elif kind == "resync.required":
                await self._resync()
            elif "id" in frame:
                self._on_event(frame)

    async def _resync(self) -> None:
        """The contract's answer to a gap it cannot replay: refetch by REST, start over."""
        self.resyncs += 1
        self._epoch_ids.clear()
        self._epoch_messages.clear()
        self._last_key = None
        for chat_id in self.chat_ids:
            self.known |= await self.rest_messages(chat_id)
        self._arrived.set()

    def _on_event(self, frame: dict[str, Any]) -> None:
        event_id = frame["id"]
        key = parse_event_id(event_id)
        if event_id in self._epoch_ids:
            self.duplicates.append(f"event id {event_id} twice")
        elif key is None or (self._last_key is not None and key <= self._last_key):
            self.out_of_order.append(f"{event_id} after {self._last_key}")
        self._epoch_ids.add(event_id)
        self._last_key = key
        self.last_id = event_id
        if frame["type"] == "message.created":
            message_id = int(frame["data"]["id"])
            if message_id in self._epoch_messages:
                self.duplicates.append(f"message {message_id} created twice")
            self._epoch_messages.add(message_id)
            self.known.add(message_id)
            self._arrived.set()

    async def rest_messages(self, chat_id: int) -> set[int]:
        """Every message id of a chat, by REST (any live process, retried through faults)."""
        ids: set[int] = set()
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            try:
                async with httpx.AsyncClient(timeout=10) as client:
                    resp = await client.get(
                        f"{self.server().http}/api/v1/chats/{chat_id}/messages",
                        params=params,
                        headers={"Authorization": f"Bearer {self.user.token}"},
                    )
            except httpx.HTTPError:
                await asyncio.sleep(RETRY_PAUSE)
                continue
            if resp.status_code == 503:
                await asyncio.sleep(RETRY_PAUSE)
                continue
            assert resp.status_code == 200, resp.text
            body = resp.json()
            ids |= {int(m["id"]) for m in body["items"]}
            cursor = body["nextCursor"]
            if not cursor:
                return ids

    async def wait_for(self, message_ids: set[int], timeout: float) -> None:
        """Until every id in `message_ids` is known (events, or a resync's refetch)."""
        async with asyncio.timeout(timeout):
            while not message_ids <= self.known:
                self._arrived.clear()
                await self._arrived.wait()


@dataclass
class Scenario:
    """Users in groups, their senders and watchers, running until stopped."""

    deployment: Deployment
    senders: list[Sender]
    watchers: list[Watcher]
    stop_sending: asyncio.Event = field(default_factory=asyncio.Event)
    stop_watching: asyncio.Event = field(default_factory=asyncio.Event)
    sending: list[asyncio.Task[None]] = field(default_factory=list)
    watching: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def create(
        cls, deployment: Deployment, *, groups: int = 3, per_group: int = 2, interval: float = 0.1
    ) -> Scenario:
        """`groups` groups of `per_group` users, each of whom sends into their group."""
        server = deployment.servers[0]
        senders, watchers = [], []
        for g in range(groups):
            users = [await make_user(server, f"u{g}x{i}") for i in range(per_group)]
            chat_id = await users[0].group(*users[1:], title=f"group {g}")
            for i, user in enumerate(users):
                senders.append(Sender(user, chat_id, deployment, interval))
                watchers.append(Watcher(user, [chat_id], deployment, home=g * per_group + i))
        return cls(deployment, senders, watchers)

    async def start(self) -> None:
        """Connect every watcher, then start sending."""
        ready = [asyncio.Event() for _ in self.watchers]
        for watcher, connected in zip(self.watchers, ready, strict=True):
            self.watching.append(asyncio.create_task(watcher.run(self.stop_watching, connected)))
        async with asyncio.timeout(20):
            for event in ready:
                await event.wait()
        for sender in self.senders:
            self.sending.append(asyncio.create_task(sender.run(self.stop_sending)))

    async def finish(self) -> float:
        """Stop sending, post one last message per chat and wait until every watcher has
        everything; returns how long the last messages took to reach everyone.

        A message whose process died between its commit and its publication goes out
        through the relay once it is older than the outbox's grace (2 s): possibly after
        the last messages. So each watcher is given until EVERYTHING_WITHIN to learn every
        message REST lists; what it has not learned by then `problems` reports.
        """
        self.stop_sending.set()
        await asyncio.gather(*self.sending)
        started = time.monotonic()
        await asyncio.gather(*(self._last_message(s) for s in self.senders))
        elapsed = time.monotonic() - started
        await asyncio.gather(*(self._everything(w) for w in self.watchers))
        self.stop_watching.set()
        await asyncio.gather(*self.watching)
        return elapsed

    async def _everything(self, watcher: Watcher) -> None:
        expected: set[int] = set()
        for chat_id in watcher.chat_ids:
            expected |= await watcher.rest_messages(chat_id)
        with contextlib.suppress(TimeoutError):
            await watcher.wait_for(expected, EVERYTHING_WITHIN)

    async def _last_message(self, sender: Sender) -> None:
        last = await sender.send_one(f"the last one from {sender.user.username}")
        members = [w for w in self.watchers if sender.chat_id in w.chat_ids]
        await asyncio.gather(*(w.wait_for({last}, 30) for w in members))

    async def problems(self) -> list[str]:
        """Everything that breaks the contract: silent loss, duplicates, disorder, 5xx."""
        found = []
        for sender in self.senders:
            who = sender.user.username
            found += [f"{who}: committed but answered {e}" for e in sender.committed_but_5xx]
            found += [f"{who}: {e}" for e in sender.server_errors]
        for watcher in self.watchers:
            name = watcher.user.username
            expected: set[int] = set()
            for chat_id in watcher.chat_ids:
                expected |= await watcher.rest_messages(chat_id)
            missing = sorted(expected - watcher.known)
            if missing:
                found.append(f"{name}: {len(missing)} messages silently missing: {missing[:10]}")
            found += [f"{name}: {d}" for d in watcher.duplicates]
            found += [f"{name}: out of order {d}" for d in watcher.out_of_order]
        return found

    def sent(self) -> int:
        """Messages posted so far."""
        return sum(len(s.sent) for s in self.senders)
