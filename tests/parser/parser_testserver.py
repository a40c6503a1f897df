"""A real HTTP server on loopback serving the pages the fetcher tests need.

A module of its own (not conftest.py) so that test modules can import its names.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PAGE_HTML = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
    b"<title>Test page</title>"
    b"<meta property='og:title' content='OG title'>"
    b"<meta property='og:image' content='/img/cover.png'>"
    b"</head><body><h1>Hello</h1><a href='/other.html'>Other</a></body></html>"
)
BIG_SIZE = 6 * 1024 * 1024


class PageHandler(BaseHTTPRequestHandler):
    """Routes: see the ``_route_*`` methods; ``/a-b.c/x`` calls ``_route_a_b_c("x")``."""

    protocol_version = "HTTP/1.1"  # needed for chunked bodies

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        route = getattr(self, "_route_" + parts[0].replace("-", "_").replace(".", "_"), None)
        if route is None:
            self._send(404, b"not found", "text/plain")
        else:
            route(*parts[1:])

    # -- helpers -----------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "text/html; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client gave up, as it should
            self.close_connection = True

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, b"", None, {"Location": location})

    def _chunked(self, chunks: Iterator[bytes], delay: float = 0.0) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                if delay:
                    time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client gave up, as it should
            self.close_connection = True

    # -- routes --------------------------------------------------------------------------

    def _route_page_html(self) -> None:
        self._send(200, PAGE_HTML)

    def _route_xhtml(self) -> None:
        self._send(200, PAGE_HTML, "application/xhtml+xml")

    def _route_gzip(self) -> None:
        self._send(200, gzip.compress(PAGE_HTML), extra={"Content-Encoding": "gzip"})

    def _route_echo_headers(self) -> None:
        host = self.headers.get("Host", "")
        agent = self.headers.get("User-Agent", "")
        body = f"<html><body><p id='host'>{host}</p><p id='ua'>{agent}</p></body></html>"
        self._send(200, body.encode())

    def _route_redirect(self, count: str) -> None:
        remaining = int(count)
        self._redirect("/page.html" if remaining <= 1 else f"/redirect/{remaining - 1}")

    def _route_redirect_loop(self) -> None:
        self._redirect("/redirect-loop", 301)

    def _route_redirect_to_private(self) -> None:
        port = self.connection.getsockname()[1]  # the port this request came in on
        self._redirect(f"http://127.0.0.1:{port}/page.html")

    def _route_redirect_to_ftp(self) -> None:
        self._redirect("ftp://example.com/file")

    def _route_no_location(self) -> None:
        self._send(302, b"", None)

    def _route_big(self) -> None:
        self._send(200, b"a" * BIG_SIZE)

    def _route_big_no_length(self) -> None:
        self._chunked(b"a" * 65536 for _ in range(BIG_SIZE // 65536))

    def _route_exactly(self, size: str) -> None:
        self._send(200, b"a" * int(size))

    def _route_json(self) -> None:
        self._send(200, b'{"a": 1}', "application/json")

    def _route_no_content_type(self) -> None:
        self._send(200, PAGE_HTML, None)

    def _route_slow(self) -> None:
        time.sleep(2)
        self._send(200, PAGE_HTML)

    def _route_trickle(self) -> None:
        self._chunked((b"<p>x</p>" for _ in range(30)), delay=0.1)

    def _route_status(self, code: str) -> None:
        self._send(int(code), b"<p>error</p>")

    def _route_drop(self) -> None:
        self.close_connection = True  # close without answering


@dataclass(frozen=True)
class PageServer:
    """A running test server; ``url(path)`` addresses it by its literal address."""

    host: str
    port: int

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"


@dataclass(frozen=True)
class TLSPageServer:
    """The test server behind TLS, with a certificate for ``hostname`` only."""

    port: int
    hostname: str
    cafile: str
    server_names: list[str] = field(default_factory=list)  # SNI names received, in order


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are expected
            super().handle_error(request, client_address)


@contextmanager
def _running(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def serve(family: socket.AddressFamily, host: str) -> Iterator[PageServer]:
    """Run the page server on ``host`` (port chosen by the system) while iterated."""

    class Server(_QuietServer):
        address_family = family

    server = Server((host, 0), PageHandler)
    with _running(server):
        yield PageServer(host, server.server_address[1])


def make_certificate(openssl: str, folder: Path, hostname: str) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``hostname``, made with the openssl CLI."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def serve_tls(cert: Path, key: Path, hostname: str) -> Iterator[TLSPageServer]:
    """Run the page server over TLS on 127.0.0.1 while iterated, recording SNI names."""
    info_names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_name(_sock: Any, name: str, _ctx: ssl.SSLContext) -> None:
        info_names.append(name or "")

    context.sni_callback = remember_name

    class Server(_QuietServer):
        def get_request(self) -> tuple[Any, Any]:
            raw, address = self.socket.accept()
            raw.settimeout(5)
            try:
                return context.wrap_socket(raw, server_side=True), address
            except OSError:
                raw.close()
                raise

    server = Server(("127.0.0.1", 0), PageHandler)
    with _running(server):
        yield TLSPageServer(server.server_address[1], hostname, str(cert), info_names)
