"""The transactional outbox: events and job enqueues written with the change they report.

Services call `emit` (an event for some users) or `enqueue` (a background job) inside their
transaction; nothing else is needed. Once the transaction commits, the process publishes its
rows at once (`OutboxPublisher`), and the relay publishes whatever is left (`Relay`).
"""

from parley.outbox.emit import emit, emit_row, enqueue
from parley.outbox.hooks import publish_committed
from parley.outbox.items import Pending
from parley.outbox.models import EVENT, JOB, OutboxRow

__all__ = [
    "EVENT",
    "JOB",
    "OutboxRow",
    "Pending",
    "emit",
    "emit_row",
    "enqueue",
    "publish_committed",
]
