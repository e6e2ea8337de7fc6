"""Where the client finds the daemon (tao_client.daemon.resolve)."""

from __future__ import annotations

import pytest

from tao_client._errors import TaoClientError
from tao_client.daemon import Address, resolve


@pytest.fixture(autouse=True)
def no_tao_host(monkeypatch):
    monkeypatch.delenv("TAO_HOST", raising=False)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("unix:///x", Address("unix:///x", "/x")),
        ("unix:///run/tao/tao.sock", Address("unix:///run/tao/tao.sock", "/run/tao/tao.sock")),
        ("/x", Address("unix:///x", "/x")),
        ("http://h:1/", Address("http://h:1")),
        ("http://h:1", Address("http://h:1")),
        ("https://tao.example.com//", Address("https://tao.example.com")),
    ],
)
def test_explicit_address(host, expected):
    assert resolve(host) == expected


def test_unix_address_talks_http_to_a_placeholder_host():
    assert resolve("/x").base_url == "http://tao"


def test_tcp_address_is_its_own_base_url():
    assert resolve("http://h:1/").base_url == "http://h:1"


def test_tao_host_variable_is_used(monkeypatch):
    monkeypatch.setenv("TAO_HOST", "http://h:2/")
    assert resolve() == Address("http://h:2")


def test_argument_wins_over_tao_host(monkeypatch):
    monkeypatch.setenv("TAO_HOST", "http://h:2")
    assert resolve("/x").socket_path == "/x"


def test_default_socket_under_xdg_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = str(tmp_path / "tao" / "tao.sock")
    assert resolve() == Address(f"unix://{path}", path)


def test_default_socket_without_xdg_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve().socket_path == str(tmp_path / ".tao" / "run" / "tao.sock")


@pytest.mark.parametrize("host", ["localhost:8080", "tcp://h:1", "relative/tao.sock", "garbage"])
def test_garbage_address(host):
    with pytest.raises(TaoClientError) as info:
        resolve(host)
    assert repr(host) in info.value.message


def test_no_daemon_is_started_in_another_user_s_socket_directory(tmp_path, monkeypatch):
    from tao_client.daemon import DaemonUnreachable, start_local

    monkeypatch.delenv("TAO_NO_AUTOSTART", raising=False)
    shared = tmp_path / "run-tao"
    shared.mkdir()
    monkeypatch.setattr("os.getuid", lambda: shared.stat().st_uid + 1)  # as a user who does not own it
    with pytest.raises(DaemonUnreachable) as info:
        start_local(resolve(f"unix://{shared}/tao.sock"))
    assert "another user's daemon" in str(info.value)
    assert list(shared.iterdir()) == []  # no lock file, no socket, no daemon
