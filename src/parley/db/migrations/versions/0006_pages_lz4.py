"""pages.text and pages.links compressed with lz4 instead of pglz (PostgreSQL)

Storing a parsed page compresses its ~100 KB of text and its links. With PostgreSQL's
default, pglz, that took ~2.8 ms of the database's CPU per page, the largest part of a parse
job's cost in PostgreSQL; lz4 takes ~0.6 ms, for pages ~40% larger on disk. Rows already
stored keep their compression until they are written again. Servers built without lz4
(it is optional before PostgreSQL 16's packages made it usual) and SQLite are left alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("text", "links")


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.execute(
            sa.text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                " WHERE name = 'default_toast_compression'"
            )
        ).scalar()
    )


def _set_compression(method: str) -> None:
    changes = ", ".join(f"ALTER COLUMN {column} SET COMPRESSION {method}" for column in COLUMNS)
    op.execute(f"ALTER TABLE pages {changes}")


def upgrade() -> None:
    if _lz4_available():
        _set_compression("lz4")


def downgrade() -> None:
    if _lz4_available():
        _set_compression("pglz")
