"""What the app's lifespan opens and closes: database, event bus, job queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parley.db.engine import Database
from parley.realtime.bus import Bus
from parley.settings import Settings


@dataclass
class Resources:
    """Lifespan resources shared by every request of one process."""

    settings: Settings
    db: Database
    bus: Bus
    extras: dict[str, Any] = field(default_factory=dict)
