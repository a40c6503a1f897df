"""Schemathesis against the billing routes with billing on (tests/ops/test_schemathesis.py
covers the whole document with billing off, where they answer 404)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.billing.conftest import BillingStack
from tests.ops.test_schemathesis import MAX_EXAMPLES, REPO, SEED


@pytest.mark.timeout(180)
async def test_schemathesis_finds_nothing_with_billing_on(stack: BillingStack) -> None:
    user = await stack.user("schemathesis")
    run = subprocess.run(  # noqa: ASYNC221 - the test has nothing else to do meanwhile
        [
            *(sys.executable, "-m", "schemathesis.cli", "run"),
            f"{stack.http}/openapi.json",
            *("--header", f"Authorization: Bearer {user.token}"),
            *("--include-path-regex", "^/(api/v1/billing|hooks)"),
            *("--checks", "all"),
            *("--phases", "examples,coverage,fuzzing"),
            *("--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"),
            *("--suppress-health-check", "all"),
            "--no-color",
        ],
        cwd=REPO,  # for schemathesis.toml
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
