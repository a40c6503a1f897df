"""Database: async engine, sessions, declarative base and migrations."""

from parley.db.base import Base, IntPK, utcnow
from parley.db.engine import Database

__all__ = ["Base", "Database", "IntPK", "utcnow"]
