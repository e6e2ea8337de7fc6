"""The route class of every router: a JSON body that Python cannot decode is invalid JSON, a 422.

FastAPI reports a body that fails `json.loads` with a JSONDecodeError as a 422, which
api/errors.py words; any other failure while decoding becomes a bare 400 in FastAPI's own shape.
Python's decoder raises others for bodies no client of ours sends but anyone may: RecursionError
for arrays and objects nested about a thousand deep, ValueError for an integer of more than
4300 digits, UnicodeDecodeError for bytes that are not UTF-8. Each is reported here as the
invalid JSON it is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_decoded(request: Request) -> Response:
            return await handle(_DecodingRequest(request.scope, request.receive))

        return handle_decoded


class _DecodingRequest(Request):
    async def json(self) -> Any:
        try:
            return await super().json()
        except json.JSONDecodeError:
            raise
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply: arrays and objects about a thousand levels inside each other", "", 0) from None
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(f"cannot be decoded as {exc.encoding} at byte {exc.start}: {exc.reason}", "", 0) from None
        except ValueError:  # the one other ValueError json.loads raises
            raise json.JSONDecodeError(f"a number with more than {sys.get_int_max_str_digits()} digits", "", 0) from None
