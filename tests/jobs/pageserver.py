"""A real HTTP server on loopback with the pages, errors and stalls the job tests need."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOO_LARGE = 6 * 1024 * 1024
HOLD_TIMEOUT = 60.0


def page_html(name: str, *, filler: int = 0) -> bytes:
    """A small HTML page with Open Graph tags and two links; `filler` pads the text."""
    padding = ("<p>" + "lorem ipsum dolor sit amet " * 20 + "</p>") * filler
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Page {name}</title>"
        f"<meta name='description' content='About {name}'>"
        f"<meta property='og:image' content='/img/{name}.png'>"
        "<meta property='og:site_name' content='Test site'>"
        f"</head><body><h1>Hello {name}</h1><a href='/page/{name}-next'>Next</a>"
        f"<a href='https://example.org/x'>Elsewhere</a>{padding}</body></html>"
    ).encode()


class PageServer:
    """Routes (each path segment after the first is a free-form key):

    - `/page/<name>`: an HTML page
    - `/long/<n>/<name>`: the same page with `n` paragraphs of filler text
    - `/status/<code>/<key>`: that HTTP status
    - `/flaky/<n>/<key>`: 503 for the first `n` requests, then a page
    - `/file/<key>`: a PDF, not HTML
    - `/big/<key>`: an HTML page declared larger than the fetcher accepts
    - `/hold/<key>`: waits until `release(key)`, then a page (`arrived(key)` is set on entry)
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._arrived: dict[str, threading.Event] = {}
        self._released: dict[str, threading.Event] = {}
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        self.host = f"[{host}]" if ":" in host else host
        self.httpd = server_class((host, 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def count(self, path: str) -> int:
        """How many requests `path` received."""
        with self._lock:
            return self.hits[path]

    def _event(self, table: dict[str, threading.Event], key: str) -> threading.Event:
        with self._lock:
            return table.setdefault(key, threading.Event())

    def arrived(self, key: str) -> threading.Event:
        """Set when a request for `/hold/<key>` came in."""
        return self._event(self._arrived, key)

    def release(self, key: str) -> None:
        """Let `/hold/<key>` requests answer (now and from now on)."""
        self._event(self._released, key).set()

    def _record(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            return self.hits[path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        for event in list(self._released.values()):
            event.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: PageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            count = server._record(path)
            parts = path.strip("/").split("/")
            kind, args = parts[0], parts[1:]
            if kind == "page":
                self._send(200, page_html(args[0]))
            elif kind == "long":
                self._send(200, page_html(args[1], filler=int(args[0])))
            elif kind == "status":
                self._send(int(args[0]), b"<html><body>status</body></html>")
            elif kind == "flaky":
                if count <= int(args[0]):
                    self._send(503, b"<html><body>try later</body></html>")
                else:
                    self._send(200, page_html(args[1]))
            elif kind == "file":
                self._send(200, b"%PDF-1.4 not html", "application/pdf")
            elif kind == "big":
                self._send_big()
            elif kind == "hold":
                server.arrived(args[0]).set()
                server._event(server._released, args[0]).wait(HOLD_TIMEOUT)
                self._send(200, page_html(args[0]))
            else:
                self._send(404, b"not found", "text/plain")

        def _send(
            self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8"
        ) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client went away (a killed worker)
                pass

        def _send_big(self) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(TOO_LARGE))
                self.end_headers()
                chunk = b"<p>" + b"x" * 65536 + b"</p>"
                for _ in range(TOO_LARGE // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:  # the fetcher stops reading early, as it should
                pass

    return Handler


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def running_page_server(host: str = "127.0.0.1") -> Iterator[PageServer]:
    """A started page server (on `host`: `::1` for an IPv6 one), stopped at the end."""
    server = PageServer(host)
    server.start()
    try:
        yield server
    finally:
        server.stop()
