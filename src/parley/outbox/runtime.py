"""Starting and stopping the outbox of one process: its publisher and, optionally, a relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parley.db.engine import Database
from parley.outbox.hooks import install
from parley.outbox.publication import JobSender, Publication
from parley.outbox.publisher import OutboxPublisher
from parley.outbox.relay import Housekeeping, Relay
from parley.realtime.bus import Bus
from parley.settings import Settings


@dataclass
class Outbox:
    """A process's publisher (always) and relay (in `parley serve` processes)."""

    publisher: OutboxPublisher
    relay: Relay | None

    @classmethod
    def start(
        cls,
        settings: Settings,
        db: Database,
        bus: Bus,
        send_job: JobSender | None,
        *,
        with_relay: bool,
        housekeeping: Sequence[Housekeeping] = (),
    ) -> Outbox:
        """Publish what `db`'s sessions commit from now on; relay leftovers if asked to."""
        publication = Publication(bus, send_job)
        relay = None
        if with_relay:
            relay = Relay(
                db,
                publication,
                interval=settings.outbox_relay_interval_seconds,
                grace=settings.outbox_grace_seconds,
                keep_published=settings.outbox_keep_published_seconds,
                housekeeping=housekeeping,
            )
        publisher = OutboxPublisher(
            db,
            publication,
            wait_seconds=settings.outbox_publish_wait_seconds,
            on_left_over=relay.wake if relay is not None else lambda: None,
        )
        install(db, publisher)
        publisher.start()
        if relay is not None:
            relay.start()
        return cls(publisher, relay)

    async def close(self) -> None:
        """Stop the relay, then publish and mark what the publisher still holds."""
        if self.relay is not None:
            await self.relay.close()
        await self.publisher.close()
