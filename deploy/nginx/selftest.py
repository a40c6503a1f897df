#!/usr/bin/env python3
"""Behavioural self-test of Parley's nginx templates, on loopback only.

Renders the templates (render.py), starts the real nginx binary unprivileged in a
temporary directory in front of small stub backends on 127.0.0.1, and checks what the
configuration promises: prefix stripping, forwarded headers, request ids, round robin
and failover across two app processes, CORS, the body limit, gzip, the WebSocket
upgrade, the internal-only /metrics, Flower's basic auth, JSON error bodies, and the
TLS site. Python standard library and `nginx` and `openssl` on PATH; every socket has
a timeout and the whole run takes a few seconds.

    python3 deploy/nginx/selftest.py [--nginx /usr/sbin/nginx] [-v]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # the sibling module, not an installed package

TIMEOUT = 5.0
ORIGIN = "https://app.example"


class StubBackend(ThreadingHTTPServer):
    """An app stand-in that answers every request with what it received."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.name = name
        self.stopped = False
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        """Die like a process: refuse new connections, drop kept-alive ones unanswered."""
        self.stopped = True
        self.shutdown()
        self.server_close()


class _StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubBackend

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def _answer(self) -> None:
        if self.server.stopped:
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._upgrade()
            return
        echo = {
            "backend": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        if "big" in self.path:
            echo["padding"] = "x" * 4096
        body = json.dumps(echo).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # What the app might send too; nginx must replace, not duplicate, these.
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("X-Request-ID", "from-the-app")
        self.end_headers()
        self.wfile.write(body)

    def _upgrade(self) -> None:
        echo = {
            "upgrade": self.headers.get("Upgrade"),
            "connection": self.headers.get("Connection"),
            "path": self.path,
        }
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", "stub")
        self.end_headers()
        self.wfile.write(json.dumps(echo).encode() + b"\n")
        self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer  # noqa: N815


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_nginx(nginx: str, conf_dir: Path, ports: list[int]) -> Iterator[None]:
    """Run nginx from `conf_dir` until the block ends; fail with its log if it won't start."""
    log = conf_dir / "error.log"
    proc = subprocess.Popen(  # noqa: S603
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
    try:
        deadline = time.monotonic() + TIMEOUT
        for port in ports:
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"nginx exited with {proc.returncode}:\n{log.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"nginx did not listen on {port}") from None
                    time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """Tiny HTTP client for one nginx listener."""

    def __init__(self, port: int, tls: bool = False) -> None:
        self.port = port
        self.tls = tls

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=TIMEOUT, context=context
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def echo(self, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response, body = self.request("GET", path, headers)
        check(response.status == 200, f"GET {path}: status {response.status}: {body[:200]!r}")
        return json.loads(body)


class Failure(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


# ----------------------------------------------------------------------------- checks


def check_prefix_site(
    client: Client, backends: list[StubBackend], flower: StubBackend, hooks: StubBackend
) -> None:
    echo = client.echo("/chat/api/v1/health/live")
    check(echo["path"] == "/api/v1/health/live", f"prefix not stripped: {echo['path']}")
    headers = echo["headers"]
    check(headers.get("x-forwarded-prefix") == "/chat", f"X-Forwarded-Prefix: {headers}")
    check(headers.get("x-forwarded-proto") == "http", "X-Forwarded-Proto missing")
    check(headers.get("x-forwarded-for") == "127.0.0.1", "X-Forwarded-For missing")
    check(headers.get("x-forwarded-host", "").startswith("127.0.0.1:"), "X-Forwarded-Host missing")
    check(headers.get("host") == headers.get("x-forwarded-host"), "Host not passed through")
    check(len(headers.get("x-request-id", "")) == 32, "no generated X-Request-ID")
    check("connection" not in headers, "plain requests must not send Connection upstream")

    # The raw query string and percent-encoding reach the app untouched.
    echo = client.echo("/chat/api/v1/users?query=a%20b&x=%2F")
    check(echo["path"] == "/api/v1/users?query=a%20b&x=%2F", f"query mangled: {echo['path']}")

    # Request ids: a sane client id is kept and echoed once; a bad one is replaced.
    response, body = client.request("GET", "/chat/", {"X-Request-ID": "abc-123"})
    seen = json.loads(body)["headers"].get("x-request-id")
    check(seen == "abc-123", f"client request id not forwarded: {seen}")
    check(
        response.headers.get_all("X-Request-ID") == ["abc-123"],
        "X-Request-ID not echoed exactly once",
    )
    echo = client.echo("/chat/", {"X-Request-ID": "bad id; with spaces"})
    check(echo["headers"]["x-request-id"] != "bad id; with spaces", "unsafe request id forwarded")

    # /chat redirects to /chat/, relatively.
    response, _ = client.request("GET", "/chat")
    check(
        response.status == 301 and response.headers["Location"] == "/chat/",
        "no /chat -> /chat/ redirect",
    )
    response, body = client.request("GET", "/elsewhere")
    check(
        response.status == 404 and json.loads(body) == {"detail": "Not Found"},
        f"paths outside the prefix must not reach the app: {response.status}",
    )

    # Round robin over both app processes.
    names = {client.echo(f"/chat/api/v1/chats?i={i}")["backend"] for i in range(8)}
    check(names == {b.name for b in backends}, f"traffic did not reach every backend: {names}")

    # CORS: preflight answered by nginx, allowed origin only, app's headers replaced.
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    response, _ = client.request("OPTIONS", "/chat/api/v1/chats", preflight)
    check(response.status == 204, f"preflight status {response.status}")
    check(
        response.headers.get("Access-Control-Allow-Origin") == ORIGIN, "preflight: no allow-origin"
    )
    check(
        response.headers.get("Access-Control-Allow-Credentials") == "true",
        "preflight: no credentials",
    )
    check("POST" in response.headers.get("Access-Control-Allow-Methods", ""), "preflight: methods")
    check(
        "Authorization" in response.headers.get("Access-Control-Allow-Headers", ""),
        "preflight: headers",
    )
    response, _ = client.request(
        "OPTIONS", "/chat/api/v1/chats", {**preflight, "Origin": "https://evil.example"}
    )
    check(
        response.status == 204 and "Access-Control-Allow-Origin" not in response.headers,
        "preflight from a foreign origin must not be allowed",
    )
    response, _ = client.request("GET", "/chat/api/v1/chats", {"Origin": ORIGIN})
    check(
        response.headers.get_all("Access-Control-Allow-Origin") == [ORIGIN],
        "GET: allow-origin wrong",
    )
    check(
        "X-Request-ID" in response.headers.get("Access-Control-Expose-Headers", ""),
        "expose headers",
    )
    response, _ = client.request("GET", "/chat/api/v1/chats", {"Origin": "https://evil.example"})
    check(
        "Access-Control-Allow-Origin" not in response.headers, "app's wildcard CORS leaked through"
    )
    response, _ = client.request("OPTIONS", "/chat/api/v1/chats")
    check(json.loads(_)["method"] == "OPTIONS", "a non-preflight OPTIONS belongs to the app")

    # Body limit: 1 MiB passes, more is a JSON 413 from nginx.
    response, _ = client.request(
        "POST", "/chat/api/v1/x", {"Content-Type": "application/json"}, b"x" * (1 << 20)
    )
    check(response.status == 200, f"a 1 MiB body was refused: {response.status}")
    response, body = client.request(
        "POST", "/chat/api/v1/x", {"Content-Type": "application/json"}, b"x" * ((1 << 20) + 1)
    )
    check(response.status == 413, f"oversized body: status {response.status}")
    check(json.loads(body) == {"detail": "Request body too large"}, f"413 body: {body!r}")
    check(response.headers.get("Content-Type") == "application/json", "413 is not JSON")

    # gzip for JSON.
    response, body = client.request("GET", "/chat/api/v1/big", {"Accept-Encoding": "gzip"})
    check(response.headers.get("Content-Encoding") == "gzip", "JSON not compressed")
    check(json.loads(gzip.decompress(body))["path"] == "/api/v1/big", "gzip body broken")

    # WebSocket upgrade, tunnelled both ways.
    with socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"GET /chat/api/v1/ws?token=t HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        data = b""
        while b"}\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 101"), f"no 101 Switching Protocols: {head[:80]!r}")
    echo = json.loads(rest)
    check(
        echo["upgrade"] == "websocket" and echo["connection"].lower() == "upgrade",
        f"upgrade headers not forwarded: {echo}",
    )
    check(echo["path"] == "/api/v1/ws?token=t", f"WebSocket path: {echo['path']}")

    # /metrics: loopback may read it (the rest of the world gets 403, not testable here).
    check(client.echo("/chat/metrics")["path"] == "/metrics", "metrics not proxied for loopback")

    # nginx's own health.
    response, body = client.request("GET", "/nginx-health")
    check(response.status == 200 and body == b"ok\n", "nginx-health")

    # Flower: basic auth, then proxied with its /flower/ prefix kept.
    response, _ = client.request("GET", "/flower/")
    check(response.status == 401, f"flower without credentials: {response.status}")
    auth = {"Authorization": "Basic b3BzOnNlY3JldA=="}  # ops:secret
    echo = client.echo("/flower/tasks", auth)
    check(echo["backend"] == flower.name and echo["path"] == "/flower/tasks", f"flower: {echo}")

    # Webhooks: to the hooks process, prefix stripped, body passed; bursts beyond the
    # limit answer a JSON 429 with Retry-After.
    response, body = client.request(
        "POST", "/chat/hooks/stripe", {"Stripe-Signature": "t=1,v1=00"}, b'{"id": "evt_1"}'
    )
    echo = json.loads(body)
    check(response.status == 200, f"hooks: status {response.status}")
    check(echo["backend"] == hooks.name, f"hooks not routed to the hooks process: {echo}")
    check(echo["path"] == "/hooks/stripe", f"hooks path: {echo['path']}")
    check(echo["headers"].get("stripe-signature") == "t=1,v1=00", "Stripe-Signature lost")
    for _ in range(400):  # a burst of 200 passes, then 50 a second
        limited, body = client.request("POST", "/chat/hooks/stripe")
        if limited.status != 200:
            break
    check(limited.status == 429, f"webhooks are not rate limited: {limited.status}")
    check("detail" in json.loads(body), f"429 body: {body!r}")
    check(limited.headers.get("Retry-After") == "1", "429 without Retry-After")
    echo = client.echo("/chat/api/v1/health/live")
    check(echo["backend"] != hooks.name, "the api's routes must not go to the hooks process")

    # Failover: one app process gone, every request still answered by the other.
    backends[0].stop()
    names = {client.echo(f"/chat/api/v1/chats?j={i}")["backend"] for i in range(6)}
    check(names == {backends[1].name}, f"no failover to the live backend: {names}")
    # All gone: a JSON 502.
    backends[1].stop()
    response, body = client.request("GET", "/chat/api/v1/chats")
    check(response.status == 502, f"no backend: status {response.status}")
    check("detail" in json.loads(body), f"502 body: {body!r}")
    check(response.headers.get("X-Request-ID") is not None, "502 without X-Request-ID")


def check_root_site(client: Client) -> None:
    echo = client.echo("/api/v1/health?x=1")
    check(echo["path"] == "/api/v1/health?x=1", f"root site path: {echo['path']}")
    check(
        "x-forwarded-prefix" not in echo["headers"], "empty prefix must send no X-Forwarded-Prefix"
    )
    check(client.echo("/")["path"] == "/", "the web page at / is not proxied")
    response, _ = client.request("GET", "/api/v1/x", {"Origin": ORIGIN})
    check(
        "Access-Control-Allow-Origin" not in response.headers, "CORS must be off when unconfigured"
    )


def check_tls_site(plain: Client, secure: Client) -> None:
    response, _ = plain.request("GET", "/api/v1/chats?a=1", {"Host": "chat.test"})
    check(response.status == 301, f"port 80 must redirect: {response.status}")
    check(response.headers["Location"] == "https://chat.test/api/v1/chats?a=1", "redirect target")
    response, _ = plain.request("GET", "/nginx-health")
    check(response.status == 200, "port 80 nginx-health")
    response, _ = plain.request("GET", "/.well-known/acme-challenge/missing")
    check(response.status == 404, "ACME challenges must be served, not redirected")
    response, body = secure.request("GET", "/api/v1/health")
    check(response.status == 200, f"TLS request: {response.status}")
    check(json.loads(body)["headers"]["x-forwarded-proto"] == "https", "X-Forwarded-Proto on TLS")
    check(response.headers.get("Strict-Transport-Security", "").startswith("max-age="), "no HSTS")


# ------------------------------------------------------------------------------- main


def make_certificate(directory: Path) -> None:
    directory.mkdir(parents=True)
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Failure("openssl is not installed")
    subprocess.run(  # noqa: S603
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(directory / "privkey.pem"),
            "-out",
            str(directory / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


def run(nginx: str, verbose: bool) -> int:
    scenarios: list[tuple[str, Callable[[Path], None]]] = []

    def scenario(name: str) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
        def register(fn: Callable[[Path], None]) -> Callable[[Path], None]:
            scenarios.append((name, fn))
            return fn

        return register

    @scenario("prefix /chat, two app processes, CORS, Flower, the hooks process")
    def _prefix(tmp: Path) -> None:
        backends = [StubBackend("app-1"), StubBackend("app-2")]
        flower = StubBackend("flower")
        hooks = StubBackend("hooks")
        port = free_port()
        values = {
            **render.DEFAULTS,
            "PARLEY_ROOT_PATH": "/chat",
            "PARLEY_NGINX_LISTEN": f"127.0.0.1:{port}",
            "PARLEY_NGINX_CORS_ORIGIN": ORIGIN,
            "PARLEY_NGINX_FLOWER_UPSTREAM": flower.address,
            "PARLEY_NGINX_HOOKS_UPSTREAM": hooks.address,
        }
        render.render(tmp, values, [b.address for b in backends])
        (tmp / "auth").mkdir()
        (tmp / "auth" / "htpasswd").write_text("ops:{PLAIN}secret\n")
        try:
            with running_nginx(nginx, tmp, [port]):
                check_prefix_site(Client(port), backends, flower, hooks)
        finally:
            for server in (*backends, flower, hooks):
                with contextlib.suppress(Exception):
                    server.stop()

    @scenario("no prefix, one app address")
    def _root(tmp: Path) -> None:
        backend = StubBackend("app")
        port = free_port()
        render.render(
            tmp, {**render.DEFAULTS, "PARLEY_NGINX_LISTEN": f"127.0.0.1:{port}"}, [backend.address]
        )
        try:
            with running_nginx(nginx, tmp, [port]):
                check_root_site(Client(port))
        finally:
            backend.stop()

    @scenario("TLS site with HSTS and the port-80 redirect")
    def _tls(tmp: Path) -> None:
        backend = StubBackend("app")
        plain, secure = free_port(), free_port()
        make_certificate(tmp / "certs")
        values = {
            **render.DEFAULTS,
            "PARLEY_NGINX_SITE": "https",
            "PARLEY_NGINX_LISTEN": f"127.0.0.1:{plain}",
            "PARLEY_NGINX_TLS_LISTEN": f"127.0.0.1:{secure}",
            "PARLEY_NGINX_TLS_CERT_DIR": str(tmp / "certs"),
        }
        render.render(tmp, values, [backend.address])
        try:
            with running_nginx(nginx, tmp, [plain, secure]):
                check_tls_site(Client(plain), Client(secure, tls=True))
        finally:
            backend.stop()

    failures = 0
    for name, fn in scenarios:
        tmp = Path(tempfile.mkdtemp(prefix="parley-nginx-selftest-"))
        # Run as root, nginx's workers drop to an unprivileged user that must reach the
        # temporary body files under the prefix.
        tmp.chmod(0o755)
        try:
            fn(tmp)
            print(f"ok   {name}")
        except (Failure, AssertionError, OSError, subprocess.SubprocessError) as exc:
            failures += 1
            print(f"FAIL {name}: {exc}")
            log = tmp / "error.log"
            if verbose and log.exists():
                print(log.read_text())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(scenarios) - failures} passed, {failures} failed")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print nginx's error log on failure"
    )
    args = parser.parse_args()
    return run(args.nginx, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
