"""Both clients send the same request for each SDK call (tao_client._routes): Client on plain sockets, AsyncClient on httpx.

A scripted server on a Unix socket records what each sends; the query and the JSON body are
compared as the daemon reads them (httpx writes booleans and JSON spacing its own way).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tao_client import AsyncClient, Client
from tests.unit.client.scripted_server import ScriptedServer, reply

JOB = {"id": "j1", "task": "unet", "status": "queued", "exit_code": None, "error": None}
PAGE: dict[str, Any] = {"jobs": [], "next_cursor": None}

# (what the call is, its answer, the call on Client, the call on AsyncClient)
CALLS: list[tuple[str, Any, Callable[[Client], Any], Callable[[AsyncClient], Any]]] = [
    ("submit", JOB, lambda c: c.submit("unet", "run", ["a b"], launch_config=False, time="1:00", interactive=True),
     lambda c: c.submit("unet", "run", ["a b"], launch_config=False, time="1:00", interactive=True)),
    ("job", JOB, lambda c: c.job("j1"), lambda c: c.job("j1")),
    ("jobs", PAGE, lambda c: list(c.jobs(["running", "queued"], "c1", 10)), lambda c: c.jobs(["running", "queued"], "c1", 10)),
    ("cancel", JOB, lambda c: c.cancel("j1"), lambda c: c.cancel("j1")),
    ("logs", b"output", lambda c: c.logs("j1", 5), lambda c: c.logs("j1", 5)),
    ("tail", b"output", lambda c: c.logs("j1", tail=100), lambda c: c.logs("j1", tail=100)),
    ("events", {"events": [], "next_after": 0}, lambda c: c.events("j1", 3), lambda c: c.events("j1", 3)),
    ("metrics", {"series": {}}, lambda c: c.metrics("j1"), lambda c: c.metrics("j1")),
    ("notify_urls", {"urls": []}, lambda c: c.notify_urls(), lambda c: c.notify_urls()),
    ("notify_add", {"url": "u"}, lambda c: c.notify_add("https://example.org/h"), lambda c: c.notify_add("https://example.org/h")),
    ("notify_remove", {"url": "u"}, lambda c: c.notify_remove("https://example.org/h"), lambda c: c.notify_remove("https://example.org/h")),
    ("notify_secret", {"secret": "s"}, lambda c: c.notify_secret(), lambda c: c.notify_secret()),
    ("images", [], lambda c: c.images(), lambda c: c.images()),
    ("login", {}, lambda c: c.login("nvcr.io", "u", "p"), lambda c: c.login("nvcr.io", "u", "p")),
    ("logout", {}, lambda c: c.logout("nvcr.io"), lambda c: c.logout("nvcr.io")),
    ("logins", [], lambda c: c.logins(), lambda c: c.logins()),
    ("tasks", {}, lambda c: c.tasks(), lambda c: c.tasks()),
    ("info", {}, lambda c: c.info(verbose=True), lambda c: c.info(verbose=True)),
    ("daemon", {}, lambda c: c.daemon(), lambda c: c.daemon()),
]  # fmt: skip


def answer(body: Any) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data


def sent(server: ScriptedServer) -> tuple[str, str, dict[str, list[str]], Any]:
    """The last request as the daemon reads it: method, path, query (values lowercased), JSON body."""
    request = server.requests[-1]
    method, target, _version = request.line.split(" ")
    split = urlsplit(target)
    query = {name: [value.lower() for value in values] for name, values in parse_qs(split.query).items()}
    return method, split.path, query, json.loads(request.body) if request.body else None


@pytest.mark.parametrize(("name", "body", "sync_call", "async_call"), CALLS, ids=[call[0] for call in CALLS])
def test_both_clients_send_the_same_request(unix_server: ScriptedServer, name: str, body: Any, sync_call: Any, async_call: Any) -> None:
    unix_server.script(reply(answer(body)), reply(answer(body)))
    with Client(f"unix://{unix_server.socket_path}", autostart=False) as client:
        sync_call(client)
    by_client = sent(unix_server)

    async def main() -> None:
        async with AsyncClient(f"unix://{unix_server.socket_path}", autostart=False) as client:
            await async_call(client)

    asyncio.run(main())
    assert sent(unix_server) == by_client
    assert by_client[1].startswith("/v1/")
