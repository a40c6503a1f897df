"""A RabbitMQ virtual host of its own for a test run, so runs never share messages."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"


def _rabbitmqctl(*args: str) -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60)
    return done.returncode == 0


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A broker URL on a fresh vhost (deleted afterwards); the default vhost if that fails.

    Queue names carry a per-run prefix anyway, so the fallback is still isolated.
    """
    vhost = f"parley_test_{uuid.uuid4().hex[:10]}"
    if not (
        _rabbitmqctl("add_vhost", vhost)
        and _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    ):
        yield f"{RABBITMQ}//"
        return
    try:
        yield f"{RABBITMQ}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)
