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


REDACTING = """
import logging
import structlog
from parley.ops.logging import configure_logging
from parley.settings import Settings

configure_logging(Settings(_env_file=None, log_format="json", log_level="INFO"))
structlog.get_logger("parley.test").warning(
    "a request failed", query="token=secret-one", error="Traceback\\ncode=secret-two"
)
logging.getLogger("uvicorn.error").info("GET /api/v1/ws?access_token=secret-three")
"""


@pytest.mark.mode_independent
def test_credentials_are_taken_out_of_every_kind_of_line() -> None:
    """A credential that starts a quoted value or a traceback's line, not only one in a
    URL's query, is redacted (the JSON renderer escapes the newline)."""
    done = subprocess.run(
        [sys.executable, "-c", REDACTING], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2, done.stdout
    for secret in ("secret-one", "secret-two", "secret-three"):
        assert secret not in done.stdout
    assert lines[0]["query"] == "token=[redacted]"
    assert lines[0]["error"] == "Traceback\ncode=[redacted]"
