"""A small synchronous client of Parley's REST API, with automatic token refresh."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from parley import __version__
from parley.client import config as cfg

API_PREFIX = "/api/v1"
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 3
MAX_RETRY_WAIT = 10.0


class ApiError(Exception):
    """A request failed: an HTTP status with the server's detail, or a network problem."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.status} {self.detail}" if self.status is not None else self.detail


class NotLoggedIn(ApiError):
    """There is no usable session for this server."""

    def __init__(self, server: str) -> None:
        super().__init__(401, f"not logged in to {server} (run `parley client login USERNAME`)")


def error_detail(response: httpx.Response) -> str:
    """A one-line description of an error response: its `detail`, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail.splitlines()[0]
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail[:3]:
            if isinstance(item, dict):
                loc = list(item.get("loc") or ())
                if loc and loc[0] in ("body", "path", "query", "header", "cookie"):
                    loc = loc[1:]
                where = ".".join(str(p) for p in loc)
                message = str(item.get("msg", "invalid"))
                parts.append(f"{where}: {message}" if where else message)
        if parts:
            return "; ".join(parts)
    return response.reason_phrase or "error"


def _retry_wait(response: httpx.Response | None, attempt: int) -> float:
    if response is not None:
        header = str(response.headers.get("Retry-After", ""))
        if header.isdigit():
            return min(float(header), MAX_RETRY_WAIT)
    return min(0.5 * 2.0**attempt, MAX_RETRY_WAIT)


class Api:
    """Calls to one server on behalf of the session stored in the config file.

    An authenticated call that answers 401 is retried once after rotating the tokens with
    the refresh token; the new pair is written back to the config file.
    """

    def __init__(self, server: str, config_file: Path, *, timeout: float = 15.0) -> None:
        self.server = cfg.normalize_server(server)
        self.config_file = config_file
        self.config = cfg.load(config_file)
        self._http = httpx.Client(
            base_url=self.server + API_PREFIX,
            timeout=timeout,
            headers={"User-Agent": f"parley-client/{__version__}"},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- session -------------------------------------------------------------------------

    @property
    def session(self) -> cfg.Session | None:
        """The stored session for this server, if any."""
        return self.config.sessions.get(self.server)

    def store_session(self, session: cfg.Session) -> None:
        """Remember a new session for this server and make this server the current one."""
        with cfg.locked(self.config_file):
            self.config = cfg.load(self.config_file)
            self.config.sessions[self.server] = session
            self.config.current_server = self.server
            cfg.save(self.config_file, self.config)

    def forget_session(self) -> None:
        """Drop the stored session for this server."""
        with cfg.locked(self.config_file):
            self.config = cfg.load(self.config_file)
            self.config.sessions.pop(self.server, None)
            cfg.save(self.config_file, self.config)

    def access_token(self) -> str:
        """The current access token; NotLoggedIn when there is none."""
        session = self.session
        if session is None:
            raise NotLoggedIn(self.server)
        return session.access_token

    def refresh_tokens(self, rejected_access_token: str) -> str:
        """A fresh access token after `rejected_access_token` was refused.

        Another client process may already have rotated the pair: then its tokens are used
        instead of spending (and killing) the refresh token a second time.
        """
        with cfg.locked(self.config_file):
            self.config = cfg.load(self.config_file)
            session = self.session
            if session is None:
                raise NotLoggedIn(self.server)
            if session.access_token != rejected_access_token:
                return session.access_token
            response = self._send(
                "POST", "/auth/refresh", json={"refreshToken": session.refresh_token}
            )
            if response.status_code in (400, 401, 403, 422):
                self.config.sessions.pop(self.server, None)
                cfg.save(self.config_file, self.config)
                raise ApiError(401, "session expired; log in again with `parley client login`")
            body = self._decode(response)
            session = cfg.Session(
                username=session.username,
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
            )
            self.config.sessions[self.server] = session
            cfg.save(self.config_file, self.config)
            return session.access_token

    # -- requests ------------------------------------------------------------------------

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET an authenticated resource (retried on transient failures)."""
        return self.request("GET", path, params=params, idempotent=True)

    def post(self, path: str, body: Any = None, *, idempotent: bool = False) -> Any:
        """POST a JSON body as the logged-in user."""
        return self.request("POST", path, json=body, idempotent=idempotent)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        idempotent: bool = False,
    ) -> Any:
        """Send a request and return its decoded JSON body (None for an empty answer).

        Raises ApiError for an error status or a network failure. `idempotent` requests are
        retried on network errors, 429 and 5xx unavailability.
        """
        return self.call(
            method, path, json=json, data=data, params=params, auth=auth, idempotent=idempotent
        )[1]

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        idempotent: bool = False,
    ) -> tuple[int, Any]:
        """Like `request`, but also returns the success status (to tell 200 from 201)."""
        attempts = MAX_ATTEMPTS if idempotent else 1
        refreshed = False
        attempt = 0
        while True:
            headers = {}
            token = None
            if auth:
                token = self.access_token()
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = self._send(
                    method, path, json=json, data=data, params=params, headers=headers
                )
            except ApiError:
                attempt += 1
                if attempt >= attempts:
                    raise
                time.sleep(_retry_wait(None, attempt))
                continue
            if response.status_code == 401 and token is not None and not refreshed:
                refreshed = True
                self.refresh_tokens(token)
                continue
            if response.status_code in RETRYABLE_STATUSES and attempt + 1 < attempts:
                attempt += 1
                time.sleep(_retry_wait(response, attempt))
                continue
            return response.status_code, self._decode(response)

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._http.request(
                method, path, json=json, data=data, params=params, headers=headers
            )
        except httpx.ConnectError as exc:
            raise ApiError(None, f"cannot connect to {self.server}: {_reason(exc)}") from exc
        except httpx.TimeoutException as exc:
            raise ApiError(None, f"{self.server} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise ApiError(None, f"request to {self.server} failed: {_reason(exc)}") from exc

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.is_error:
            raise ApiError(response.status_code, error_detail(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code, "the server answered something that is not JSON"
            ) from exc


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
