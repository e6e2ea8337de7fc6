"""The route class of every router: a JSON body is read by client_json.py, bounded, and a body it
refuses is invalid JSON, a 422.

FastAPI reports a body that fails `json.loads` with a JSONDecodeError as a 422, which
api/error_responses.py words; any other failure while decoding would become a bare 400 in FastAPI's own
shape. Bodies no client of ours sends but anyone may (nested past client_json.MAX_DEPTH, an
integer of more than 4300 digits, bytes that are not UTF-8) are refused by client_json.py with
a message, and reported here as the invalid JSON they are. Their size is capped before they are
read (body_limit.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tao_server.api import client_json


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_decoded(request: Request) -> Response:
            return await handle(_DecodingRequest(request.scope, request.receive))

        return handle_decoded


class _DecodingRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = client_json.parse(await self.body())
            except client_json.UnreadableJson as exc:
                raise json.JSONDecodeError(exc.message, "", exc.position) from None
        return self._json
