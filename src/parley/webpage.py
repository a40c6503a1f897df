"""Serving the web page's static files at `/` — as GET routes, not a catch-all mount.

A mount at `/` would match every path for every method, so `PUT /api/v1/chats` would be
answered by the file server (405 with `Allow: GET, HEAD`) instead of the API (405 with the
methods the route has). Routes registered after the API's let the router tell the two apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.routing import Match

WEB_DIR = Path(__file__).parent / "web" / "static"
ROUTE_NAME = "web-page"
# Paths that belong to the API (and the webhooks): a GET there that no route takes is not a
# file request.
_API_PREFIXES = ("api/", "hooks/")
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
_PAGE_METHODS = ["GET", "HEAD"]
_CSP = re.compile(r'(http-equiv="Content-Security-Policy"\s+content=")([^"]*)(")')
_INDEX_PATHS = (".", "index.html")

CspSources = Mapping[str, Sequence[str]]
"""Sources to allow beyond the page's own policy, by directive: {"script-src": [...]}."""


def with_csp_sources(html: str, sources: CspSources) -> str:
    """`html` whose Content-Security-Policy meta also allows `sources` (directives that it
    lacks are added, starting from `'self'`)."""

    def widen(match: re.Match[str]) -> str:
        directives = [d.strip() for d in match.group(2).split(";") if d.strip()]
        by_name = {d.split()[0]: d for d in directives}
        for name, extra in sources.items():
            current = by_name.get(name, f"{name} 'self'")
            by_name[name] = " ".join([current, *extra])
        return match.group(1) + "; ".join(by_name.values()) + match.group(3)

    return _CSP.sub(widen, html, count=1)


def install_web_page(app: FastAPI, *, csp_sources: CspSources | None = None) -> None:
    """Serve the files of `web/static` at `/` (index.html for `/` itself), the page's
    Content-Security-Policy widened by `csp_sources` (a payment script, when billing is on)."""
    if not WEB_DIR.is_dir():
        return
    files = StaticFiles(directory=WEB_DIR, html=True)
    index = None
    if csp_sources:
        index = with_csp_sources((WEB_DIR / "index.html").read_text("utf-8"), csp_sources)

    async def web_file(request: Request) -> Response:
        path = request.path_params.get("path", "") or "."
        if path.startswith(_API_PREFIXES):
            # Not a file: a wrong method on an API path, or no such path. The error handler
            # tells the two apart (405 with the right methods, or 404), as for any method.
            raise HTTPException(405)
        if index is not None and path in _INDEX_PATHS:
            return HTMLResponse(index, headers={"Cache-Control": "no-cache"})
        return await files.get_response(path, request.scope)

    for path in ("/", "/{path:path}"):
        app.add_route(
            path, web_file, methods=_PAGE_METHODS, name=ROUTE_NAME, include_in_schema=False
        )


def allowed_methods(request: Request) -> list[str]:
    """The methods some route takes at the request's path: the app's, or else the web
    page's (GET and HEAD) outside the API; none for an API path that has no route."""
    methods = api_methods(request)
    if methods or get_route_path(request.scope).lstrip("/").startswith(_API_PREFIXES):
        return methods
    page = any(getattr(r, "name", None) == ROUTE_NAME for r in request.app.router.routes)
    return list(_PAGE_METHODS) if page else []


def api_methods(request: Request) -> list[str]:
    """The methods the app's routes (not the web page's) take at the request's path.

    Asked of each route by matching the path with each method: routers may be nested, and
    matching is the one thing every route answers. HEAD wherever GET is: the edge middleware
    answers it as a GET without the body.
    """
    routes = [r for r in request.app.router.routes if getattr(r, "name", None) != ROUTE_NAME]
    methods = []
    for method in _METHODS:
        scope = {**request.scope, "method": "GET" if method == "HEAD" else method}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            methods.append(method)
    return methods
