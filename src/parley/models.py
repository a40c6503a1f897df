"""Imports every model module so that `Base.metadata` knows all tables (Alembic, tests)."""

from parley.auth import models as auth_models
from parley.billing import models as billing_models
from parley.chats import models as chat_models
from parley.db import instance as instance_model
from parley.db.base import Base
from parley.jobs import models as job_models
from parley.outbox import models as outbox_models

__all__ = [
    "Base",
    "auth_models",
    "billing_models",
    "chat_models",
    "instance_model",
    "job_models",
    "outbox_models",
]
