"""Reading what `parley worker` processes print and serve, and running `parley` commands."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from parley.settings import Settings
from tests.fixtures.commands import run_parley
from tests.fixtures.servers import free_port
from tests.fixtures.workers import WorkerProcess

LOG_DEADLINE = 60.0


def unique_node() -> str:
    """A Celery node name no other worker on this broker uses."""
    return f"ops-{uuid.uuid4().hex[:10]}@%h"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` parsed as a JSON object; fails on a line that is not one."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"line {number} is not JSON: {line[:300]!r}") from exc
        assert isinstance(parsed, dict), line
        lines.append(parsed)
    return lines


async def wait_for_lines(
    worker: WorkerProcess,
    found: Callable[[list[dict[str, Any]]], bool],
    *,
    what: str,
    timeout: float = LOG_DEADLINE,
) -> list[dict[str, Any]]:
    """Poll the worker's output until `found(lines)`; another process writes it, so we poll."""
    deadline = time.monotonic() + timeout
    while True:
        lines = json_lines(worker.log())
        if found(lines):
            return lines
        if not worker.alive():
            raise AssertionError(f"the worker exited while waiting for {what}:\n{worker.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{worker.log()[-5000:]}")
        await asyncio.sleep(0.1)


async def wait_until_ready(worker: WorkerProcess) -> None:
    """Wait for Celery's "<node> ready." line."""
    await wait_for_lines(
        worker,
        lambda lines: any(str(line.get("event", "")).endswith(" ready.") for line in lines),
        what="the worker to be ready",
    )


def metrics_port() -> int:
    """A free loopback port for a worker's metrics."""
    return free_port()


async def scrape(url: str) -> str:
    """GET a Prometheus exposition over HTTP."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        resp = await client.get(url)
    assert resp.status_code == 200, resp.text
    return resp.text


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The value of one sample in Prometheus text (labels in any order), 0 when absent.

    Samples that carry a `pid` label (a multiprocess gauge) are summed.
    """
    wanted = sorted(f'{k}="{v}"' for k, v in (labels or {}).items())
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if not match:
            continue
        have = [p for p in (match.group(1) or "").split(",") if p and not p.startswith("pid=")]
        if sorted(have) == wanted:
            total += float(match.group(2))
    return total


def run_check(settings: Settings, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`parley worker --check ...` with the environment of `settings`."""
    return run_parley(settings, "worker", "--check", *args, **extra_env)
