"""nginx (Debian's package) in front of real `parley serve` processes, under a path prefix.

Two processes in services mode (one in embedded mode, which is one process by design),
and in services mode a `parley hooks` process that nginx sends `/hooks/` to (in embedded
mode `parley serve` answers those itself);
the nginx config is the one compose uses, rendered by deploy/nginx/render.py. The apps trust
nginx (127.0.0.1) as their proxy and limit registrations per client address.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import MODE
from tests.fixtures.servers import (
    ServerProcess,
    free_port,
    server_env,
    start_server,
    wait_until_live,
)
from tests.fixtures.users import PASSWORD, register

REPO = Path(__file__).resolve().parents[2]
PREFIX = "/chat"
REGISTRATIONS_PER_ADDRESS = 3


@pytest.fixture(scope="module")
def behind_nginx(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The base URL of nginx, proxying to the app processes under PREFIX."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is required (apt-get install nginx); CI installs it"
    workdir = tmp_path_factory.mktemp("nginx")
    env = server_env(
        database_url,
        redis_url,
        PARLEY_ROOT_PATH=PREFIX,
        PARLEY_TRUSTED_PROXIES="127.0.0.1",
        PARLEY_RATE_LIMIT_ENABLED="true",
        PARLEY_RATE_LIMIT_REGISTER_IP=str(REGISTRATIONS_PER_ADDRESS),
        PARLEY_RATE_LIMIT_LOGIN_IP="0",
        PARLEY_RATE_LIMIT_LOGIN_USERNAME="0",
        PARLEY_RATE_LIMIT_REFRESH_IP="0",
    )
    apps: list[ServerProcess] = [
        start_server(env, workdir / f"app{i}") for i in range(2 if MODE == "services" else 1)
    ]
    hooks = start_hooks(env, workdir / "hooks") if MODE == "services" else None
    hooks_address = f"127.0.0.1:{hooks.port if hooks else apps[0].port}"
    port = free_port()
    conf_dir = workdir / "conf"
    upstreams = [arg for app in apps for arg in ("--upstream", f"127.0.0.1:{app.port}")]
    subprocess.run(
        [
            sys.executable,
            str(REPO / "deploy/nginx/render.py"),
            str(conf_dir),
            *upstreams,
            "--listen",
            f"127.0.0.1:{port}",
            "--root-path",
            PREFIX,
            "--set",
            f"PARLEY_NGINX_HOOKS_UPSTREAM={hooks_address}",
        ],
        check=True,
    )
    log = conf_dir / "error.log"
    proc = subprocess.Popen(
        [
            nginx,
            "-p",
            str(conf_dir),
            "-c",
            str(conf_dir / "nginx.conf"),
            "-e",
            str(log),
            "-g",
            f"daemon off; pid {conf_dir / 'nginx.pid'}; error_log {log} warn;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        wait_until_live(base, proc, log, time.monotonic() + 30)  # type: ignore[arg-type]
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        for app in apps:
            app.stop()
        if hooks is not None:
            hooks.stop()


def start_hooks(env: dict[str, str], workdir: Path) -> ServerProcess:
    """`parley hooks` with the apps' settings, live on a free port."""
    return start_server(env, workdir, command="hooks")


async def test_webhooks_go_to_their_own_process(behind_nginx: str) -> None:
    async with httpx.AsyncClient(base_url=behind_nginx, timeout=15) as c:
        # Billing is off here: the route answers 404 (from `parley hooks`, or the api).
        hook = await c.post("/hooks/stripe", content=b"{}", headers={"Stripe-Signature": "x"})
        assert hook.status_code == 404, hook.text
        assert hook.json() == {"detail": "billing is not enabled on this server"}
        health = await c.get("/hooks/health")
        if MODE == "services":  # only the hooks process has this route
            assert health.json() == {"status": "ok", "checks": {"database": "ok"}}
        else:
            assert health.status_code == 404  # the api serves /hooks/stripe only


async def test_rest_and_websocket_session_through_nginx(behind_nginx: str) -> None:
    base = behind_nginx
    async with httpx.AsyncClient(base_url=base, timeout=15) as c:
        tokens = {name: (await register(c, name)).access_token for name in ("alice", "bob")}
        alice = {"Authorization": f"Bearer {tokens['alice']}"}
        bob_id = (
            await c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['bob']}"})
        ).json()["id"]
        chat = await c.post(
            "/api/v1/chats", json={"type": "direct", "memberIds": [bob_id]}, headers=alice
        )
        assert chat.status_code == 201
        chat_id = chat.json()["id"]

        ws_url = base.replace("http://", "ws://") + f"/api/v1/ws?token={tokens['bob']}"
        async with connect(ws_url) as ws:
            assert '"type":"ready"' in await asyncio.wait_for(ws.recv(), 10)
            await ws.send('{"type":"ping"}')
            # Bob's `chat.created` may come first: when the fast path is closed, the relay
            # publishes it a moment later, after this socket has opened.
            while (frame := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "pong":
                assert frame["type"] == "chat.created", frame
            # Several sends, so that in services mode both app processes take some.
            sent = []
            for i in range(6):
                r = await c.post(
                    f"/api/v1/chats/{chat_id}/messages",
                    json={"text": f"via nginx {i}"},
                    headers=alice,
                )
                assert r.status_code == 201
                sent.append(r.json()["id"])
            got = []
            while len(got) < len(sent):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "message.created":
                    got.append(frame["data"]["id"])
            assert got == sent

        history = await c.get(f"/api/v1/chats/{chat_id}/messages", headers=alice)
        assert [m["id"] for m in history.json()["items"]] == sent[::-1]


async def test_request_id_passes_through_and_back(behind_nginx: str) -> None:
    async with httpx.AsyncClient(base_url=behind_nginx, timeout=15) as c:
        mine = await c.get("/api/v1/health/live", headers={"X-Request-ID": "trace-me-123"})
        assert mine.headers["x-request-id"] == "trace-me-123"
        fresh = await c.get("/api/v1/health/live")
        assert len(fresh.headers["x-request-id"]) >= 16
        assert fresh.headers.get_list("x-request-id") == [fresh.headers["x-request-id"]]


async def test_docs_know_the_prefix_and_bodies_are_capped(behind_nginx: str) -> None:
    async with httpx.AsyncClient(base_url=behind_nginx, timeout=15) as c:
        spec = (await c.get("/openapi.json")).json()
        assert spec["servers"][0]["url"] == PREFIX
        big = await c.post(
            "/api/v1/auth/register",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413


async def test_a_client_spoofing_x_forwarded_for_is_still_rate_limited(behind_nginx: str) -> None:
    """nginx appends the address it sees to the client's X-Forwarded-For; the app takes the
    rightmost address that is not its trusted proxy, whatever the client wrote before it.
    The client connects from 127.0.0.2, nginx (the trusted proxy) from 127.0.0.1."""
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=behind_nginx, transport=transport, timeout=15) as c:
        answers = []
        for i in range(REGISTRATIONS_PER_ADDRESS + 2):
            spoofed = {"X-Forwarded-For": f"192.0.2.{i}", "X-Real-IP": f"192.0.2.{i}"}
            answers.append(
                await c.post(
                    "/api/v1/auth/register",
                    json={"username": f"spoofer{i}", "password": PASSWORD},
                    headers=spoofed,
                )
            )
    statuses = [r.status_code for r in answers]
    assert statuses == [201] * REGISTRATIONS_PER_ADDRESS + [429, 429], statuses
    assert int(answers[-1].headers["retry-after"]) >= 1
