"""The OpenAPI document describes every route of the contract, with handler names as ids."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

CONTRACT_ROUTES = {
    ("post", "/api/v1/auth/register"): "register",
    ("post", "/api/v1/auth/token"): "token",
    ("post", "/api/v1/auth/refresh"): "refresh",
    ("post", "/api/v1/auth/logout"): "logout",
    ("post", "/api/v1/auth/otp/setup"): "otp_setup",
    ("post", "/api/v1/auth/otp/enable"): "otp_enable",
    ("post", "/api/v1/auth/otp/disable"): "otp_disable",
    ("post", "/api/v1/auth/login"): "login",
    ("post", "/api/v1/auth/logout-session"): "logout_session",
    ("get", "/api/v1/users/me"): "me",
    ("get", "/api/v1/users"): "search_users",
    ("post", "/api/v1/chats"): "create_chat",
    ("get", "/api/v1/chats"): "list_chats",
    ("get", "/api/v1/chats/{chat_id}"): "get_chat",
    ("patch", "/api/v1/chats/{chat_id}"): "update_chat",
    ("post", "/api/v1/chats/{chat_id}/members"): "add_member",
    ("delete", "/api/v1/chats/{chat_id}/members/{user_id}"): "remove_member",
    ("post", "/api/v1/chats/{chat_id}/messages"): "send_message",
    ("get", "/api/v1/chats/{chat_id}/messages"): "list_messages",
    ("patch", "/api/v1/messages/{message_id}"): "edit_message",
    ("delete", "/api/v1/messages/{message_id}"): "delete_message",
    ("post", "/api/v1/chats/{chat_id}/read"): "mark_read",
    ("get", "/api/v1/health/live"): "live",
    ("get", "/api/v1/health"): "health",
    ("get", "/metrics"): "metrics_endpoint",
    ("get", "/api/v1/ws"): "websocket_events",  # the WebSocket, documented as its handshake
}


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


async def test_every_contract_route_is_documented_with_its_handler_name(
    client: httpx.AsyncClient,
) -> None:
    ops = operations(await openapi(client))
    missing = set(CONTRACT_ROUTES) - set(ops)
    assert not missing
    for key, name in CONTRACT_ROUTES.items():
        assert ops[key]["operationId"] == name, key


async def test_every_operation_id_names_the_route_it_documents(
    app: Any, client: httpx.AsyncClient
) -> None:
    """Route names are their handlers' names, so each id must lead back to its own path."""
    ops = operations(await openapi(client))
    for (_, path), op in ops.items():
        params = dict.fromkeys(re.findall(r"{(\w+)}", path), "1")
        assert app.url_path_for(op["operationId"], **params) == path.format(**params)
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))


async def test_the_socket_is_documented_and_a_plain_get_is_told_to_upgrade(
    client: httpx.AsyncClient,
) -> None:
    op = operations(await openapi(client))[("get", "/api/v1/ws")]
    assert {"101", "426"} <= set(op["responses"])
    assert {p["name"] for p in op["parameters"]} == {"token", "lastEventId"}
    plain = await client.get("/api/v1/ws", params={"token": "x"})
    assert plain.status_code == 426
    assert plain.headers["upgrade"] == "websocket"
    assert "WebSocket" in plain.json()["detail"]


async def test_bodies_are_camel_case_except_the_oauth2_token(client: httpx.AsyncClient) -> None:
    schemas = (await openapi(client))["components"]["schemas"]
    assert set(schemas["MessageIn"]["properties"]) == {"text", "clientId"}
    assert set(schemas["ChatCreateIn"]["properties"]) == {
        "type",
        "title",
        "description",
        "memberIds",
    }
    assert "lastReadMessageId" in schemas["MemberOut"]["properties"]
    assert set(schemas["TokenOut"]["properties"]) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
    }


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_nothing_from_elsewhere(client: httpx.AsyncClient, page: str) -> None:
    """Swagger UI and ReDoc work offline: every script, style and icon is served by Parley."""
    resp = await client.get(page)
    assert resp.status_code == 200
    assert "/openapi.json" in resp.text
    linked = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", resp.text)
    assert linked, resp.text
    for url in linked:
        assert not re.match(r"(https?:)?//", url), f"{page} loads {url} from elsewhere"
        if url != "/openapi.json":
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000 or url.endswith(".svg"), url
