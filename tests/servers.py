"""Real `parley serve` processes for tests that need sockets and several processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fixtures.ports import free_port

__all__ = ["ServerProcess", "free_port", "start_server", "wait_until_live"]


@dataclass
class ServerProcess:
    """A running `parley serve` subprocess."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Stop the process (SIGTERM by default) and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def wait_until_live(url: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """Poll the liveness endpoint until it answers, the process dies, or time runs out."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/health/live", timeout=1).status_code == 200:
                return
        time.sleep(0.05)  # polling a readiness URL: there is no event to await across processes
    raise RuntimeError(f"server did not become live:\n{log.read_text()}")


def start_server(
    env_overrides: dict[str, str], workdir: Path, *, port: int | None = None
) -> ServerProcess:
    """Start `parley serve` with the given PARLEY_* settings and wait until it is live."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    # Test servers outlive many tests that register users from one address; the limits
    # themselves are tested in-process (tests/ratelimit).
    env["PARLEY_RATE_LIMIT_ENABLED"] = "false"
    env.update(env_overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "parley.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(port, process, log_path, env)
    try:
        wait_until_live(server.http, process, log_path, time.monotonic() + 120)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    return server
