"""Serving the web page's static files at `/` — as GET routes, not a catch-all mount.

A mount at `/` would match every path for every method, so `PUT /api/v1/chats` would be
answered by the file server (405 with `Allow: GET, HEAD`) instead of the API (405 with the
methods the route has). Routes registered after the API's let the router tell the two apart.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match

WEB_DIR = Path(__file__).parent / "web" / "static"
ROUTE_NAME = "web-page"
# Paths that belong to the API: a GET there that no API route takes is not a file request.
_API_PREFIXES = ("api/",)
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def install_web_page(app: FastAPI) -> None:
    """Serve the files of `web/static` at `/` (index.html for `/` itself)."""
    if not WEB_DIR.is_dir():
        return
    files = StaticFiles(directory=WEB_DIR, html=True)

    async def web_file(request: Request) -> Response:
        path = request.path_params.get("path", "") or "."
        if path.startswith(_API_PREFIXES):
            # A wrong method on an API path (405, the error handler says which are right),
            # or no such path (404).
            raise HTTPException(405 if api_methods(request) else 404)
        return await files.get_response(path, request.scope)

    for path in ("/", "/{path:path}"):
        app.add_route(
            path, web_file, methods=["GET", "HEAD"], name=ROUTE_NAME, include_in_schema=False
        )


def api_methods(request: Request) -> list[str]:
    """The methods the app's routes (not the web page's) take at the request's path.

    Asked of each route by matching the path with each method: routers may be nested, and
    matching is the one thing every route answers.
    """
    routes = [r for r in request.app.router.routes if getattr(r, "name", None) != ROUTE_NAME]
    methods = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            methods.append(method)
    return methods
