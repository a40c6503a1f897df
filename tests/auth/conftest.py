"""Auth test helpers. The app, its clients and users come from `tests.fixtures`."""

from __future__ import annotations

import httpx


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


def assert_unauthenticated(resp: httpx.Response) -> None:
    """401 with the Bearer challenge and a JSON detail."""
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert isinstance(resp.json()["detail"], str)
