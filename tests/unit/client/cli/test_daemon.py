"""`tao daemon status` against a daemon of an older release, which has no GET /v1/daemon: described from /v1/info."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

import pytest

from tao_client._errors import ApiError
from tao_client.address import Address
from tao_client.cli.daemon import show_status


class OlderDaemon:
    """What a daemon released before /v1/daemon answers (the route is unknown: 404), as `Client` hands it over."""

    address = Address("unix:///tmp/x/tao.sock", "/tmp/x/tao.sock", explicit=False)

    def running_daemon(self) -> dict[str, Any]:
        raise ApiError(404, "not_found", "no route GET /v1/daemon", request="GET /v1/daemon")

    def info(self) -> dict[str, Any]:
        return {"daemon": {"version": "0.0.9", "addresses": [self.address.url], "started_at": "2026-01-02T03:04:05+00:00", "pid": 42}}


def test_an_older_daemon_is_shown_with_what_its_info_says_and_how_to_replace_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert show_status(OlderDaemon(), Namespace(json=False)) == 0  # type: ignore[arg-type]
    shown = capsys.readouterr().out
    assert "tao-server 0.0.9, pid 42, since " in shown
    assert "`tao daemon restart` starts this release's" in shown
