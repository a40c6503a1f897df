"""Apply Alembic migrations programmatically (used by `parley migrate` and `parley serve`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at Parley's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_to_head(database_url: str) -> None:
    """Bring the database up to the newest migration; a no-op when already there."""
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_to_head_async(database_url: str) -> None:
    """`upgrade_to_head` from inside a running event loop (Alembic's env runs its own)."""
    await asyncio.to_thread(upgrade_to_head, database_url)


def current_revision(database_url: str) -> str | None:
    """The migration the database is at; None for a database without Parley's tables."""
    return asyncio.run(_current_revision(database_url))


async def _current_revision(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from parley.db.engine import make_engine

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
