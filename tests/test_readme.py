"""README.md, checked the way a newcomer reads it: its links lead somewhere in the repository,
and its commands work in a fresh virtualenv.

The blocks that follow a `<!-- readme-test: NAME -->` line are read from the README itself
and run by bash as written, with these adaptations, each checked to still apply:

- the install command (`pip install .`) that starts each block runs once, when the
  virtualenv is made from a copy of the checkout; the rest of each block runs in a fresh
  directory, as if the README's commands were typed into a shell with that venv active;
- `parley serve` gets a free `--port` (the command has no port setting), and the curl
  block that address instead of `127.0.0.1:8000`;
- the services block gets a database of its own instead of `parley`, and the test suite's
  Redis database instead of `redis://127.0.0.1:6379/0`.

The venv costs most of the time (a real `pip install .`, about 30 s), so it is made once
per module and the tests that need it run once per suite: they are `services_only`, run in
the services pass of `scripts/test` and deselected in the embedded one. Their services
sequence needs that pass's PostgreSQL and Redis anyway, and the embedded quick start does
not depend on the pass's mode: it starts its own processes, with no `PARLEY_*` setting.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from websockets.sync.client import ClientConnection, connect

import parley
from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.fixtures.ports import free_port
from tests.fixtures.processes import ServiceProcess
from tests.fixtures.users import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTALL = "pip install ."
FENCED_BLOCK = re.compile(r"^```[\w-]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKED_BLOCK = re.compile(
    r"^<!-- readme-test: ([\w-]+) -->\n```[\w-]*\n(.*?)^```$", re.MULTILINE | re.DOTALL
)
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FINAL_JOB_STATUSES = {"succeeded", "failed", "cancelled"}
SERVE_SECONDS = 90.0

# The tests that build and use the virtualenv (see the module docstring).
run_once_per_suite = pytest.mark.services_only


def fenced_blocks() -> list[str]:
    """Every fenced code block of the README, in order."""
    return [block.rstrip("\n") for block in FENCED_BLOCK.findall(README.read_text())]


def marked_blocks() -> dict[str, str]:
    """The blocks marked `<!-- readme-test: NAME -->`, by name."""
    found: dict[str, str] = {}
    for name, block in MARKED_BLOCK.findall(README.read_text()):
        assert name not in found, f"two README blocks are marked {name!r}"
        found[name] = block.rstrip("\n")
    return found


def marked_block(name: str) -> str:
    """The README block marked `name` (the test fails if it is gone)."""
    blocks = marked_blocks()
    assert name in blocks, f"README.md has no block marked <!-- readme-test: {name} -->"
    return blocks[name]


def without_install(block: str) -> str:
    """The block without the install command it starts with (the venv fixture ran it)."""
    first, _, rest = block.partition("\n")
    if first == INSTALL:
        return rest
    assert first.startswith(f"{INSTALL} && "), f"the block does not start with {INSTALL!r}"
    return first.removeprefix(f"{INSTALL} && ") + ("\n" + rest if rest else "")


def adapted(block: str, replacements: Mapping[str, str]) -> str:
    """The block with each text replaced, every one of which must occur in it."""
    for old, new in replacements.items():
        assert old in block, f"the README block no longer has {old!r}:\n{block}"
        block = block.replace(old, new)
    return block


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    text = FENCED_BLOCK.sub("", markdown.read_text())
    return {github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


# -- what the README says, without running it ---------------------------------------------


def test_the_two_commands_come_first_and_ci_runs_the_second() -> None:
    assert fenced_blocks()[:2] == [f"{INSTALL} && parley serve", "scripts/test"]
    ci_commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci_commands[-1] == "scripts/test"


def test_every_link_of_the_readme_leads_to_a_file_of_the_repository() -> None:
    links = MARKDOWN_LINK.findall(README.read_text())
    assert links, "the README links to nothing: is the pattern still right?"
    for link in links:
        target, _, anchor = link.partition("#")
        assert "://" not in target, f"{link} leaves the repository"
        path = (README.parent / target).resolve() if target else README
        assert path.is_relative_to(ROOT), f"{link} leaves the repository"
        assert path.exists(), f"{link}: no such file"
        if anchor:
            assert anchor in anchors(path), f"{link}: {target or 'README.md'} has no such heading"


# -- running it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Venv:
    """A virtualenv with the checkout installed, and the environment of a shell using it."""

    path: Path

    def bin(self, name: str) -> str:
        """The path of a command the venv installed."""
        return str(self.path / "bin" / name)

    def env(self, **settings: str) -> dict[str, str]:
        """This environment as an activated venv sees it, without the test run's settings
        (`PARLEY_*`, the worktree on `PYTHONPATH`), plus `settings`."""
        dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PARLEY_", "COVERAGE_")) and k not in dropped
        }
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        env.update(settings)
        return env


def _copy_of_the_checkout(destination: Path) -> None:
    """The repository's files as a fresh clone has them: no .git, nothing .gitignore'd."""
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(".git", *ignored))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh virtualenv where the README's install command ran in a copy of the checkout."""
    root = tmp_path_factory.mktemp("readme")
    checkout = root / "checkout"
    _copy_of_the_checkout(checkout)
    made = Venv(root / "venv")
    subprocess.run([sys.executable, "-m", "venv", str(made.path)], check=True, timeout=120)
    result = subprocess.run(
        ["bash", "-ec", INSTALL],
        cwd=checkout,
        env=made.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{INSTALL} failed:\n{result.stdout[-3000:]}{result.stderr}"
    return made


class ShellBlock(ServiceProcess):
    """A README block run by bash in the background, in its own process group (it ends by
    serving, perhaps with a worker in the background)."""

    def __init__(self, script: str, *, cwd: Path, env: dict[str, str]) -> None:
        super().__init__(cwd / "block.log")
        self.script = script
        self.cwd = cwd
        self.env = env

    def start(self) -> None:
        """Start bash on the script (`-e`: a failing command ends it)."""
        self._spawn(["bash", "-ec", self.script], cwd=self.cwd, env=self.env)

    def wait_until_live(self, base_url: str) -> None:
        """Poll the server's liveness until it answers; fail with the log if bash ends."""
        deadline = time.monotonic() + SERVE_SECONDS
        while time.monotonic() < deadline:
            if not self.running:
                self._raise_startup_failure("the block ended before serving")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/api/v1/health/live", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)  # polling another process's readiness URL: no event to await
        self._raise_startup_failure(f"nothing served at {base_url} within {SERVE_SECONDS} s")

    def stop(self) -> None:
        """SIGTERM to everything the block started (the server, a worker), then wait."""
        self._signal_group(signal.SIGTERM)
        self._reap(timeout=30)


@contextlib.contextmanager
def serving(script: str, *, cwd: Path, env: dict[str, str], port: int) -> Iterator[ShellBlock]:
    """Run a block that ends with `parley serve --port PORT` until the server is live."""
    cwd.mkdir(parents=True, exist_ok=True)
    block = ShellBlock(script, cwd=cwd, env=env)
    block.start()
    try:
        block.wait_until_live(f"http://127.0.0.1:{port}")
        yield block
    finally:
        block.stop()


def run(argv: list[str], env: dict[str, str], cwd: Path, stdin: str = "") -> str:
    """Run a command to its end; its stdout (the test fails, showing stderr, if it fails)."""
    result = subprocess.run(
        argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def log_in(base: str, username: str, password: str) -> dict[str, str]:
    """The Authorization header of a password-grant login."""
    answer = httpx.post(
        f"{base}/api/v1/auth/token", data={"username": username, "password": password}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@run_once_per_suite
@pytest.mark.timeout(300)
def test_the_quick_start_serves_the_page_the_api_and_its_docs(venv: Venv, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = adapted(
        without_install(marked_block("quickstart")), {"parley serve": f"parley serve --port {port}"}
    )
    with serving(script, cwd=tmp_path / "here", env=venv.env(), port=port):
        page = httpx.get(f"{base}/")
        assert page.status_code == 200
        assert "<title>Parley</title>" in page.text
        static = ROOT / "src" / "parley" / "web" / "static"
        for file in (f for f in static.rglob("*") if f.is_file()):
            served = httpx.get(f"{base}/{file.relative_to(static).as_posix()}")
            assert (served.status_code, served.content) == (200, file.read_bytes()), file
        for docs in ("/docs", "/redoc"):
            answer = httpx.get(f"{base}{docs}")
            assert answer.status_code == 200
            assert "text/html" in answer.headers["content-type"]
        paths = httpx.get(f"{base}/openapi.json").json()["paths"]
        assert "/api/v1/chats/{chat_id}/messages" in paths

        registered = httpx.post(
            f"{base}/api/v1/auth/register", json={"username": "newcomer", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        me = httpx.get(f"{base}/api/v1/users/me", headers=log_in(base, "newcomer", PASSWORD))
        assert me.json()["username"] == "newcomer"

    assert (tmp_path / "here" / "parley.db").is_file()  # embedded: SQLite where it ran
    version = run([venv.bin("parley"), "--version"], venv.env(), tmp_path)
    assert version.strip() == f"parley {parley.__version__}"


@run_once_per_suite
@pytest.mark.timeout(300)
def test_the_first_hour_demo_people_sign_in_by_api_curl_and_client(
    venv: Venv, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = adapted(
        without_install(marked_block("first-hour")), {"parley serve": f"parley serve --port {port}"}
    )
    with serving(script, cwd=tmp_path / "here", env=venv.env(), port=port) as block:
        printed = block.log()
        assert "demo data added: users alice, bob, carol, dave" in printed
        found = re.search(r"with the password '([^']+)'", printed)
        assert found, printed
        password = found.group(1)
        for person in ("alice", "bob", "carol", "dave"):
            log_in(base, person, password)

        curl = adapted(marked_block("try-api"), {"127.0.0.1:8000": f"127.0.0.1:{port}"})
        chats = json.loads(run(["bash", "-ec", curl], venv.env(), tmp_path))
        titles = {chat["title"] for chat in chats["items"]}
        assert {"Weekend hike", "Book club", None} == titles  # None: the direct chat with bob

        client = venv.env(PARLEY_SERVER=base, PARLEY_CLIENT_CONFIG=str(tmp_path / "client.json"))
        parley_client = [venv.bin("parley"), "client"]
        login = run(
            [*parley_client, "login", "alice", "--password-stdin"], client, tmp_path, password
        )
        assert "logged in as alice" in login
        listed = run([*parley_client, "chats"], client, tmp_path)
        assert "Weekend hike" in listed
        assert "Book club" in listed


def _job_update(socket: ClientConnection, job_id: int) -> dict[str, Any]:
    """The first `job.updated` of this job in a final status."""
    deadline = time.monotonic() + 60
    while True:
        frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        job = frame.get("data") or {}
        is_this_job = frame.get("type") == "job.updated" and job.get("id") == job_id
        if is_this_job and job["status"] in FINAL_JOB_STATUSES:
            return dict(job)


@run_once_per_suite
@pytest.mark.timeout(300)
def test_the_services_sequence_serves_with_a_worker_of_its_own(venv: Venv, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database = f"parley_readme_{uuid.uuid4().hex[:12]}"
    postgres = urlsplit(PG_ADMIN_URL)
    where = ["-h", postgres.hostname or "127.0.0.1", "-p", str(postgres.port or 5432)]
    where += ["-U", postgres.username or "postgres"]
    script = adapted(
        without_install(marked_block("services")),
        {
            "createdb -h 127.0.0.1 -U postgres parley": " ".join(["createdb", *where, database]),
            "postgresql+asyncpg://postgres@127.0.0.1:5432/parley": f"{PG_ADMIN_URL}/{database}",
            "redis://127.0.0.1:6379/0": REDIS_URL,
            "parley serve": f"parley serve --port {port}",
        },
    )
    # The worker fetches this server's own page, on loopback; queues of this test alone.
    env = venv.env(PARLEY_FETCH_ALLOW_PRIVATE="true", PARLEY_JOB_QUEUE_PREFIX=f"{database}.")
    try:
        with serving(script, cwd=tmp_path / "here", env=env, port=port) as block:
            assert "created the database tables" in block.log()
            health = httpx.get(f"{base}/api/v1/health", timeout=10)
            assert health.json() == {
                "status": "ok",
                "checks": {"database": "ok", "pubsub": "ok", "broker": "ok"},
            }
            registered = httpx.post(
                f"{base}/api/v1/auth/register", json={"username": "ops", "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            auth = log_in(base, "ops", PASSWORD)
            socket_url = f"ws://127.0.0.1:{port}/api/v1/ws"
            with connect(socket_url, additional_headers=auth) as socket:
                assert json.loads(socket.recv(timeout=10))["type"] == "ready"
                job = httpx.post(
                    f"{base}/api/v1/jobs/parse", json={"url": f"{base}/"}, headers=auth
                )
                assert job.status_code == 202, job.text
                finished = _job_update(socket, job.json()["id"])
            assert finished["status"] == "succeeded", finished
            page = httpx.get(f"{base}/api/v1/pages/{finished['pageId']}", headers=auth)
            assert page.json()["title"] == "Parley"
    finally:
        subprocess.run(
            ["dropdb", "--if-exists", "--force", *where, database], check=False, timeout=60
        )
        with redis.Redis.from_url(REDIS_URL) as client:
            client.flushdb()
