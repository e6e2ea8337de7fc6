"""Hooks for the schemathesis runs of test_openapi.py; `st` loads this file through SCHEMATHESIS_HOOKS."""

from __future__ import annotations

from typing import Any

import schemathesis

# Nothing listens on port 1: a login or a pull there is refused at once, and never leaves the machine.
REFUSING_REGISTRY = "127.0.0.1:1"
# A loopback address no policy opens: refused at submission, before anything is sent.
UNLISTED_RECEIVER = "http://127.0.0.1:1/hook"


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """A login is checked with the registry it names: a made-up name would send the engine to look it up on the network."""
    if case.method.upper() == "POST" and case.path == "/v1/credentials" and isinstance(case.body, dict):
        if isinstance(case.body.get("registry"), str):
            case.body["registry"] = REFUSING_REGISTRY
    # A notification URL is resolved when it is given: a made-up host name would be looked up on the network.
    if case.method.upper() == "POST" and case.path == "/v1/notify/urls" and isinstance(case.body, dict):
        if isinstance(case.body.get("url"), str):
            case.body["url"] = UNLISTED_RECEIVER
    if case.method.upper() == "POST" and case.path == "/v1/jobs" and isinstance(case.body, dict):
        if isinstance(urls := case.body.get("notify"), list):
            case.body["notify"] = [UNLISTED_RECEIVER for _ in urls]
