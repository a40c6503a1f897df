"""Log lines go to standard output as it is when they are written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Configure Parley's logging in a fresh interpreter while stdout is one stream, close that
# stream (as a test's output capture does when it ends), and log with stdout replaced.
SCRIPT = """
import contextlib, io, logging, sys
from parley.ops.logging import configure_logging
from parley.settings import Settings

first = io.StringIO()
with contextlib.redirect_stdout(first):
    configure_logging(Settings(_env_file=None, log_format="json", log_level="INFO"))
first.close()
logging.getLogger("parley.test").warning("after the first stream closed")
"""


@pytest.mark.mode_independent
def test_a_line_logged_after_stdout_was_replaced_reaches_the_new_stdout() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Logging error" not in done.stderr, done.stderr
    (line,) = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert line["event"] == "after the first stream closed"
    assert line["level"] == "warning"
