"""The Celery app of `parley worker`, Flower and the `celery` command, from the environment.

celery -A parley.jobs.celery_app flower
celery -A parley.jobs.celery_app inspect ping
"""

from __future__ import annotations

from parley.jobs.factory import create_celery
from parley.settings import get_settings

app = create_celery(get_settings())
