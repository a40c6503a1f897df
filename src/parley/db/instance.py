"""The id of this deployment: one random value, made with the database's first migration.

Whatever a deployment keeps outside its database (its keys in Redis) is named after it, so
that two deployments pointed at one Redis by mistake never read each other's events, nor
take each other's outbox rows for ones already published.
"""

from __future__ import annotations

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base
from parley.db.engine import Database


class Instance(Base):
    """The one row that names this deployment."""

    __tablename__ = "parley_instance"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)


async def instance_id(db: Database) -> str:
    """This deployment's id (the database must be migrated)."""
    async with db.session() as session:
        found = await session.scalar(select(Instance.id).limit(1))
    if found is None:  # pragma: no cover - the migration inserts it
        raise RuntimeError("the database has no parley_instance row: run `parley migrate`")
    return found
