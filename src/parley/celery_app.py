"""The Celery app of Flower and the `celery` command, from the environment.

celery -A parley.celery_app flower
celery -A parley.celery_app inspect ping
"""

from __future__ import annotations

from parley.settings import get_settings
from parley.tasks import TASKS
from parley.worker import create_celery

app = create_celery(get_settings(), TASKS)
