"""The event bus: per-user event logs plus live fan-out to the sockets of every process.

Two implementations share this interface: in-process memory (embedded mode) and Redis
(services mode: a Stream per user for the log, one pub/sub connection per process for live
delivery). Events reach the bus only from the outbox (`parley.outbox`), identified by their
outbox row id, which makes appending idempotent: a row appended twice is logged once.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parley.common.errors import Unavailable
from parley.realtime.codec import Frame

Listener = Callable[[Frame], None]
GapHandler = Callable[[], None]


class ReplayUnavailable(Exception):
    """The requested position is not in the log any more: the client must resync."""


class BusUnavailable(Unavailable):
    """The bus cannot deliver right now (its store is unreachable or not subscribed)."""


class Appended(enum.Enum):
    """What became of one event handed to `Bus.append`."""

    LOGGED = "logged"
    """Appended to every recipient's log and published live."""
    DUPLICATE = "duplicate"
    """This row was appended before: nothing was done."""
    DEFERRED = "deferred"
    """The fast path is closed (after an outage): the relay publishes it, in order."""


@dataclass(frozen=True)
class LogEvent:
    """An event to log: its outbox row id, recipients and encoded body (see codec)."""

    row_id: int
    recipients: Sequence[int]
    body: str
    event_type: str


@dataclass(frozen=True)
class Position:
    """Where a socket starts: the events to replay, then the id live events follow."""

    frames: list[Frame]
    last_event_id: str


class Bus(ABC):
    """Logs events per user and delivers them to the listeners of this process."""

    def __init__(self) -> None:
        self._listeners: dict[int, set[Listener]] = defaultdict(set)
        self._gap_handlers: list[GapHandler] = []

    async def start(self, *, live: bool = True) -> None:
        """Open connections and background tasks.

        Without `live` the process appends and publishes but has no socket of its own (a
        worker): it does not subscribe to live delivery, which would bring it every event
        of the deployment only to be dropped.
        """

    async def close(self) -> None:
        """Release everything `start` opened."""

    @abstractmethod
    async def check(self) -> None:
        """Raise BusUnavailable (or a connection error) unless live delivery works now."""

    @abstractmethod
    async def append(self, events: Sequence[LogEvent], *, gated: bool) -> list[Appended]:
        """Log each event for its recipients and deliver it live, once per row id.

        With `gated`, an event is deferred instead while the fast path is closed. Raises a
        connection error when the store is unreachable (nothing is then known to be done).
        """

    @abstractmethod
    async def publish_ephemeral(
        self,
        user_ids: Iterable[int],
        event_type: str,
        data: Mapping[str, Any],
        *,
        internal: bool = False,
    ) -> None:
        """Deliver an event live only: no id, never replayed. An `internal` one is a notice
        for the server's own sockets (see `codec.SESSION_ENDED_TYPE`), sent so that a
        process that does not know it (an older version, mid-upgrade) drops it."""

    @abstractmethod
    async def position(self, user_id: int, after_id: str | None) -> Position:
        """The user's logged events after `after_id` and the id that follows them.

        Without `after_id`: no frames, and the id of the user's newest event (or one that
        precedes every future event). Raises ReplayUnavailable when `after_id` is not a
        position of this log (older than what it keeps, or from data it lost).
        """

    # -- the outbox's side: gating the fast path, job send claims, data loss --------------

    async def close_gate(self, deferred_row_ids: Sequence[int] = ()) -> None:
        """Close the fast path (its events are deferred to the relay) and record deferrals."""

    async def reopen_gate(self) -> bool:
        """Open the fast path again unless a deferred row is still unpublished."""
        return True

    async def gate_is_open(self) -> bool:
        """Whether fast-path events are appended now (renewing the gate's lease)."""
        return True

    async def claim_send(self, key: str) -> bool:
        """Claim the sending of the job row `key`; False when it is sent or being sent."""
        return True

    async def release_send(self, key: str, *, sent: bool) -> None:
        """After a claim: remember the job as sent, or free it for another try."""

    @property
    def generation(self) -> int:
        """Changes whenever the store was found restarted (it may have lost recent data)."""
        return 0

    async def kept_its_data(self) -> bool:
        """After a restart: True when the store kept its data (only a recent tail may be lost)."""
        return True

    # -- presence -------------------------------------------------------------------------

    @abstractmethod
    async def presence_join(self, user_id: int) -> bool:
        """Count one more open socket of `user_id`; True when it is their first anywhere."""

    @abstractmethod
    async def presence_leave(self, user_id: int) -> bool:
        """Count one socket fewer; True when it was their last anywhere."""

    # -- listeners of this process ----------------------------------------------------------

    def listen(self, user_id: int, listener: Listener) -> None:
        """Call `listener` with every event for `user_id` delivered from now on, in order."""
        self._listeners[user_id].add(listener)

    def unlisten(self, user_id: int, listener: Listener) -> None:
        """Stop calling `listener`."""
        listeners = self._listeners.get(user_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[user_id]

    def on_gap(self, handler: GapHandler) -> None:
        """Call `handler` whenever live delivery may have missed events (a lost connection)."""
        self._gap_handlers.append(handler)

    def listened_users(self) -> int:
        """How many users have at least one listener in this process."""
        return len(self._listeners)

    def is_listened(self, user_id: int) -> bool:
        """Whether some socket of this process listens to `user_id`."""
        return user_id in self._listeners

    def _deliver(self, user_id: int, frame: Frame) -> None:
        for listener in list(self._listeners.get(user_id, ())):
            listener(frame)

    def _signal_gap(self) -> None:
        for handler in list(self._gap_handlers):
            handler()
