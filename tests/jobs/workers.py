"""`parley worker` subprocesses, started from a Settings object."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from parley.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The PARLEY_* environment that reproduces `settings` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        env[f"PARLEY_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


@dataclass
class WorkerProcess:
    """A running `parley worker`, in its own process group (so a kill takes its pool too)."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), like a lost machine."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """Warm shutdown (SIGTERM); killed if it takes longer than `timeout`."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)  # the main process stops its pool
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


def start_worker(
    settings: Settings, workdir: Path, *, concurrency: int = 2, name: str = "worker"
) -> WorkerProcess:
    """Start `parley worker` with `settings` (it connects to the broker on its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(settings_env(settings))
    env.update(PARLEY_LOG_FORMAT="json", PARLEY_LOG_LEVEL="INFO")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "parley.cli", "worker", "--concurrency", str(concurrency)],
            cwd=workdir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(process, log_path)
