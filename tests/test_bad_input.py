"""Bad input of every kind answers 4xx with a JSON detail: never a 500, never a traceback.

Every request here goes through the guarded `client` (tests.fixtures.http), which fails the
test on any 5xx answer or a traceback in any body, so each test checks that on top of the
status it expects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.users import PASSWORD, Account

MIB = 1024 * 1024


@dataclass
class World:
    """Two users, a group chat of theirs and a message in it: something for every route."""

    alice: Account
    bob: Account
    chat_id: int
    message_id: int


@pytest.fixture
async def world(client: httpx.AsyncClient, alice: Account, bob: Account) -> World:
    chat = await client.post(
        "/api/v1/chats", json={"type": "group", "memberIds": [bob.id]}, headers=alice.headers
    )
    message = await client.post(
        f"/api/v1/chats/{chat.json()['id']}/messages", json={"text": "hi"}, headers=alice.headers
    )
    return World(alice, bob, chat.json()["id"], message.json()["id"])


@dataclass(frozen=True)
class JsonRoute:
    """A route with a JSON object body, and a body it accepts."""

    method: str
    path: str
    valid: dict[str, Any]
    auth: bool = True


def json_routes(w: World) -> dict[str, JsonRoute]:
    c, m = w.chat_id, w.message_id
    return {
        "register": JsonRoute(
            "POST", "/api/v1/auth/register", {"username": "newbie", "password": PASSWORD}, False
        ),
        "refresh": JsonRoute(
            "POST", "/api/v1/auth/refresh", {"refreshToken": w.alice.refresh_token}, False
        ),
        "logout": JsonRoute("POST", "/api/v1/auth/logout", {"refreshToken": "x"}, False),
        "otp enable": JsonRoute("POST", "/api/v1/auth/otp/enable", {"code": "123456"}),
        "otp disable": JsonRoute("POST", "/api/v1/auth/otp/disable", {"code": "123456"}),
        "create chat": JsonRoute("POST", "/api/v1/chats", {"type": "group", "title": "t"}),
        "update chat": JsonRoute("PATCH", f"/api/v1/chats/{c}", {"title": "t"}),
        "add member": JsonRoute("POST", f"/api/v1/chats/{c}/members", {"userId": w.bob.id}),
        "send message": JsonRoute("POST", f"/api/v1/chats/{c}/messages", {"text": "hello"}),
        "mark read": JsonRoute("POST", f"/api/v1/chats/{c}/read", {"messageId": m}),
        "edit message": JsonRoute("PATCH", f"/api/v1/messages/{m}", {"text": "edited"}),
    }


JSON_ROUTES = list(json_routes(World(Account(1, "", "", ""), Account(2, "", "", ""), 1, 1)))


async def call(
    client: httpx.AsyncClient, w: World, route: JsonRoute, **kwargs: Any
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if route.auth:
        headers.update(w.alice.headers)
    return await client.request(route.method, route.path, headers=headers, **kwargs)


def raw_json(value: Any) -> bytes:
    """JSON text with non-ASCII escaped, so that lone surrogates can be sent at all."""
    return json.dumps(value).encode()


JSON = {"Content-Type": "application/json"}


def assert_422(resp: httpx.Response) -> None:
    assert resp.status_code == 422, resp.text
    assert "detail" in resp.json()


# --- Bodies that are not the JSON object a route wants ---------------------------------------


MALFORMED = [
    b"{",
    b'{"text": }',
    b"{'text': 'single quotes'}",
    b'{"text": "unterminated}',
    b"not json at all",
    b'{"text": "a",}',
    b"\x00\x01\x02",
    b'{"text": NaN}',
]


@pytest.mark.parametrize("route_name", JSON_ROUTES)
async def test_malformed_json_is_422(
    client: httpx.AsyncClient, world: World, route_name: str
) -> None:
    route = json_routes(world)[route_name]
    for body in MALFORMED:
        resp = await call(client, world, route, content=body, headers=JSON)
        assert resp.status_code == 422, (body, resp.text)


@pytest.mark.parametrize("route_name", JSON_ROUTES)
async def test_json_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, world: World, route_name: str
) -> None:
    route = json_routes(world)[route_name]
    for value in ([route.valid], [], None, "text", 42, True):
        assert_422(await call(client, world, route, json=value))


@pytest.mark.parametrize("route_name", JSON_ROUTES)
async def test_a_missing_body_is_422(
    client: httpx.AsyncClient, world: World, route_name: str
) -> None:
    route = json_routes(world)[route_name]
    assert_422(await call(client, world, route))
    assert_422(await call(client, world, route, content=b"", headers=JSON))


@pytest.mark.parametrize("route_name", JSON_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_json_body_under_another_content_type_is_422(
    client: httpx.AsyncClient, world: World, route_name: str, content_type: str
) -> None:
    route = json_routes(world)[route_name]
    resp = await call(
        client, world, route, content=raw_json(route.valid), headers={"Content-Type": content_type}
    )
    assert_422(resp)


async def test_a_form_body_on_a_json_route_is_422(client: httpx.AsyncClient, world: World) -> None:
    route = json_routes(world)["send message"]
    assert_422(await call(client, world, route, data={"text": "hello"}))
    assert_422(await call(client, world, route, files={"text": ("t.txt", b"hello")}))


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/auth/login"])
async def test_form_routes_refuse_json_and_garbage(
    client: httpx.AsyncClient, alice: Account, path: str
) -> None:
    assert_422(await client.post(path, json={"username": "alice", "password": PASSWORD}))
    assert_422(await client.post(path, content=b"{", headers=JSON))
    assert_422(
        await client.post(
            path,
            content=b"\xff\xfe=\x00",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    resp = await client.post(
        path,
        content=b"--broken-boundary\r\ngarbage",
        headers={"Content-Type": "multipart/form-data; boundary=broken-boundary"},
    )
    assert 400 <= resp.status_code < 500


async def test_invalid_utf8_in_a_json_body_is_4xx(client: httpx.AsyncClient, world: World) -> None:
    route = json_routes(world)["send message"]
    resp = await call(client, world, route, content=b'{"text": "\xff\xfe"}', headers=JSON)
    assert 400 <= resp.status_code < 500
    assert "detail" in resp.json()


@pytest.mark.parametrize("depth", [50, 400, 800, 900, 5_000, 200_000])
async def test_deeply_nested_json_is_4xx(
    client: httpx.AsyncClient, world: World, depth: int
) -> None:
    route = json_routes(world)["send message"]
    body = b'{"text": ' + b"[" * depth + b"]" * depth + b"}"
    resp = await call(client, world, route, content=body, headers=JSON)
    assert 400 <= resp.status_code < 500
    assert "detail" in resp.json()


async def test_huge_number_literals_are_4xx(client: httpx.AsyncClient, world: World) -> None:
    route = json_routes(world)["mark read"]
    for literal in (b"1" * 5000, b"1e999999", b"-1e999999", b"99999999999999999999"):
        resp = await call(
            client, world, route, content=b'{"messageId": ' + literal + b"}", headers=JSON
        )
        assert 400 <= resp.status_code < 500, literal[:20]


# --- Every field, every wrong kind of value ----------------------------------------------------


WEIRD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    2**64,
    -(2**64),
    "",
    " ",
    "x" * 5000,
    [],
    ["x"],
    {},
    {"nested": "object"},
]


@pytest.mark.parametrize("route_name", JSON_ROUTES)
async def test_any_value_in_any_field_is_never_a_server_error(
    client: httpx.AsyncClient, world: World, route_name: str
) -> None:
    route = json_routes(world)[route_name]
    fields = [*route.valid, "unknownField"]
    for field in fields:
        for value in WEIRD_VALUES:
            resp = await call(client, world, route, json={**route.valid, field: value})
            assert resp.status_code < 500  # the guarded client says why, if not


STRING_FIELDS = [
    ("register", "password"),
    ("register", "displayName"),
    ("register", "username"),
    ("refresh", "refreshToken"),
    ("logout", "refreshToken"),
    ("otp enable", "code"),
    ("create chat", "title"),
    ("create chat", "description"),
    ("update chat", "title"),
    ("update chat", "description"),
    ("send message", "text"),
    ("send message", "clientId"),
    ("edit message", "text"),
]

UNSTORABLE = {"NUL": "a\x00b", "lone surrogate": "a\ud800b", "lone low surrogate": "\udfff"}


@pytest.mark.parametrize(("route_name", "field"), STRING_FIELDS)
@pytest.mark.parametrize("kind", list(UNSTORABLE))
async def test_text_no_database_can_store_is_422(
    client: httpx.AsyncClient, world: World, route_name: str, field: str, kind: str
) -> None:
    route = json_routes(world)[route_name]
    body = raw_json({**route.valid, field: UNSTORABLE[kind]})
    assert_422(await call(client, world, route, content=body, headers=JSON))


async def test_unicode_that_is_storable_is_fine(client: httpx.AsyncClient, world: World) -> None:
    route = json_routes(world)["send message"]
    text = "zero\u200bwidth, emoji 😀, RTL \u202e, combining e\u0301, bell \x07"
    resp = await call(client, world, route, content=raw_json({"text": text}), headers=JSON)
    assert resp.status_code == 201
    assert resp.json()["text"] == text


# --- Sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route_name", ["register", "send message", "create chat"])
async def test_a_body_over_1_mib_is_413(
    client: httpx.AsyncClient, world: World, route_name: str
) -> None:
    route = json_routes(world)[route_name]
    body = raw_json({**route.valid, "padding": "x" * MIB})
    resp = await call(client, world, route, content=body, headers=JSON)
    assert resp.status_code == 413
    assert "detail" in resp.json()
    assert resp.headers["x-request-id"]


@pytest.mark.parametrize("route_name", ["register", "send message", "create chat"])
async def test_a_chunked_body_over_1_mib_is_413(
    client: httpx.AsyncClient, world: World, route_name: str
) -> None:
    route = json_routes(world)[route_name]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * (128 * 1024)
        yield b'"}'

    resp = await call(client, world, route, content=chunks(), headers=JSON)
    assert "content-length" not in resp.request.headers
    assert resp.status_code == 413, resp.text
    assert "detail" in resp.json()


async def test_a_huge_form_body_is_413(client: httpx.AsyncClient, alice: Account) -> None:
    data = {"username": "alice", "password": "x" * (MIB + 10)}
    resp = await client.post("/api/v1/auth/token", data=data)
    assert resp.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        yield b"username=alice&password="
        for _ in range(20):
            yield b"x" * (128 * 1024)

    resp = await client.post(
        "/api/v1/auth/token",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 413


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient, world: World
) -> None:
    route = json_routes(world)["send message"]
    resp = await call(
        client,
        world,
        route,
        content=raw_json({"text": "small"}),
        headers={**JSON, "Content-Length": str(MIB + 1)},
    )
    assert resp.status_code == 413


async def test_a_body_just_under_the_limit_is_read_and_validated(
    client: httpx.AsyncClient, world: World
) -> None:
    route = json_routes(world)["send message"]
    body = raw_json({"text": "x" * (MIB - 100)})
    assert len(body) < MIB
    assert_422(await call(client, world, route, content=body, headers=JSON))  # text > 4000


async def test_huge_bodies_on_routes_without_a_body_are_413(
    client: httpx.AsyncClient, world: World
) -> None:
    resp = await client.request(
        "GET", "/api/v1/chats", content=b"x" * (MIB + 1), headers=world.alice.headers
    )
    assert resp.status_code == 413


# --- Path and query parameters -----------------------------------------------------------------


BAD_IDS = ["abc", "1.5", "1e3", "0", "-1", "0x10", str(2**53), str(2**64), "9" * 400, "%20", "1;"]


def id_routes(w: World) -> dict[str, Callable[[str], tuple[str, str, dict[str, Any] | None]]]:
    c, m, b = w.chat_id, w.message_id, w.bob.id
    return {
        "get chat": lambda x: ("GET", f"/api/v1/chats/{x}", None),
        "update chat": lambda x: ("PATCH", f"/api/v1/chats/{x}", {"title": "t"}),
        "add member": lambda x: ("POST", f"/api/v1/chats/{x}/members", {"userId": b}),
        "remove member: chat": lambda x: ("DELETE", f"/api/v1/chats/{x}/members/{b}", None),
        "remove member: user": lambda x: ("DELETE", f"/api/v1/chats/{c}/members/{x}", None),
        "list messages": lambda x: ("GET", f"/api/v1/chats/{x}/messages", None),
        "send message": lambda x: ("POST", f"/api/v1/chats/{x}/messages", {"text": "t"}),
        "mark read": lambda x: ("POST", f"/api/v1/chats/{x}/read", {"messageId": m}),
        "edit message": lambda x: ("PATCH", f"/api/v1/messages/{x}", {"text": "t"}),
        "delete message": lambda x: ("DELETE", f"/api/v1/messages/{x}", None),
    }


ID_ROUTES = list(id_routes(World(Account(1, "", "", ""), Account(2, "", "", ""), 1, 1)))


@pytest.mark.parametrize("route_name", ID_ROUTES)
async def test_ids_that_are_not_positive_64_bit_ints_are_422(
    client: httpx.AsyncClient, world: World, route_name: str
) -> None:
    make = id_routes(world)[route_name]
    for bad in BAD_IDS:
        method, path, body = make(bad)
        resp = await client.request(method, path, json=body, headers=world.alice.headers)
        assert resp.status_code == 422, (bad, resp.text)
    # The largest id (the largest integer JSON clients read exactly) is valid: it just does
    # not exist.
    method, path, body = make(str(2**53 - 1))
    resp = await client.request(method, path, json=body, headers=world.alice.headers)
    assert resp.status_code == 404, resp.text


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "limit=",
        "limit=1&limit=abc",
        "limit=%00",
        "cursor=%00",
        "cursor=%ff%fe",
        "cursor=" + "x" * 300,
        "limit=99999999999999999999999",
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/chats", "/api/v1/users", "MESSAGES"])
async def test_garbage_query_parameters_are_422(
    client: httpx.AsyncClient, world: World, path: str, query: str
) -> None:
    if path == "MESSAGES":
        path = f"/api/v1/chats/{world.chat_id}/messages"
    resp = await client.get(f"{path}?{query}", headers=world.alice.headers)
    assert_422(resp)


async def test_unknown_query_parameters_are_ignored(
    client: httpx.AsyncClient, world: World
) -> None:
    resp = await client.get("/api/v1/chats?foo=bar&%00=%ff", headers=world.alice.headers)
    assert resp.status_code == 200


# --- Routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/chats/1/nope", "/api/v2/chats", "/api/v1/messages"]
)
async def test_unknown_routes_are_404(client: httpx.AsyncClient, world: World, path: str) -> None:
    resp = await client.get(path, headers=world.alice.headers)
    assert resp.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/chats"),
        ("DELETE", "/api/v1/chats"),
        ("POST", "/api/v1/users/me"),
        ("PUT", "/api/v1/messages/1"),
    ],
)
async def test_wrong_methods_are_405(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> None:
    resp = await client.request(method, path, headers=world.alice.headers)
    assert resp.status_code == 405


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/token", "/api/v1/auth/register", "/api/v1/messages/1"]
)
async def test_a_wrong_method_is_405_naming_every_method_of_the_path(
    client: httpx.AsyncClient, world: World, path: str
) -> None:
    allowed = {"/api/v1/auth/token": "POST", "/api/v1/auth/register": "POST"}.get(
        path, "DELETE, PATCH"
    )
    for method in ("GET", "PUT", "OPTIONS"):
        resp = await client.request(method, path, headers=world.alice.headers)
        assert resp.status_code == 405, (method, path, resp.text)
        assert resp.headers["allow"] == allowed, (method, path)
        assert "detail" in resp.json()


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient, world: World) -> None:
    for body in (b"\x05\x08\xff\xfe", b"{not json", b"\xef\xbb\xbf{}"):
        resp = await client.post(
            "/api/v1/chats",
            content=body,
            headers={**world.alice.headers, "Content-Type": "application/json"},
        )
        assert resp.status_code == 422, (body, resp.text)
        assert isinstance(resp.json()["detail"], list)


async def test_odd_headers_do_not_break_authentication(
    client: httpx.AsyncClient, world: World
) -> None:
    weird = [
        {"Authorization": "Bearer " + "a" * 10_000},
        {"Authorization": "Bearer \x7f\x7f"},
        {"Cookie": "parley_session=" + "x" * 4000},
        {"Cookie": "parley_session=%00%ff; other=1"},
        {"Cookie": ";;;=;="},
    ]
    for headers in weird:
        resp = await client.get("/api/v1/users/me", headers=headers)
        assert resp.status_code == 401, headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/chats/1/nope", "/api/v1/chats/", "/hooks/nope"]
)
async def test_any_method_on_an_unknown_api_path_is_404(
    client: httpx.AsyncClient, world: World, method: str, path: str
) -> None:
    """Not 405: the web page's GET route matches every path, but nothing is at these."""
    resp = await client.request(method, path, headers=world.alice.headers)
    assert resp.status_code == 404, (method, path, resp.text)
    assert "allow" not in resp.headers


async def test_a_wrong_method_on_the_web_page_names_its_methods(
    client: httpx.AsyncClient, world: World
) -> None:
    resp = await client.post("/", headers=world.alice.headers)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path", ["/api/v1/health", "/api/v1/users/me", "/api/v1/chats", "/metrics", "/", "/api/v1/nope"]
)
async def test_head_answers_as_get_does_without_the_body(
    client: httpx.AsyncClient, world: World, path: str
) -> None:
    """RFC 9110 §9.1: every resource that answers GET answers HEAD (uptime probes use it)."""
    got = await client.get(path, headers=world.alice.headers)
    head = await client.head(path, headers=world.alice.headers)
    assert head.status_code == got.status_code, (path, head.text)
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""


async def test_head_where_there_is_no_get_is_405_naming_the_methods(
    client: httpx.AsyncClient, world: World
) -> None:
    resp = await client.head("/api/v1/auth/token")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    chats = await client.put("/api/v1/chats", headers=world.alice.headers)
    assert chats.headers["allow"] == "GET, HEAD, POST"
