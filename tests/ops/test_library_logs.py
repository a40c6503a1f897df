"""How a library's own failure lines are logged: a recovered one is a warning, not a stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Configure Parley's logging in a fresh interpreter (the suite's own logging stays as it is)
# and log what redis-py logs when its cluster pubsub fails to move a channel in a failover.
SCRIPT = """
import logging
from parley.ops.logging import configure_logging
from parley.settings import Settings

configure_logging(Settings(_env_file=None, log_format="json", log_level="INFO"))
cluster = logging.getLogger("redis.asyncio.cluster")
try:
    raise AttributeError("'NoneType' object has no attribute 'writelines'")
except AttributeError as exc:
    cluster.error("shard subscription reconciliation failed: %r", exc, exc_info=exc)
    cluster.error("another redis-py error", exc_info=exc)
"""


@pytest.mark.mode_independent
def test_redis_py_s_recovered_pubsub_failure_is_one_warning_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    recovered, other = lines
    assert recovered["level"] == "warning"
    assert "writelines" in recovered["event"]
    assert "exception" not in recovered
    # Any other error of the library keeps its level and its traceback.
    assert other["level"] == "error"
    assert "Traceback" in other["exception"]
