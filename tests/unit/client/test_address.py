"""Where the client finds the daemon (tao_client.address.resolve), and where it may start one of its own."""

from __future__ import annotations

import pytest

from tao_client._errors import DaemonUnreachable, TaoClientError
from tao_client._http import NOTHING_ANSWERS
from tao_client.address import Address, autostart_refusal, resolve, unreachable


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


def test_only_the_default_location_is_resolved_as_not_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert not resolve().explicit
    assert resolve(f"unix://{tmp_path}/tao/tao.sock").explicit  # the same path, given: explicit
    monkeypatch.setenv("TAO_HOST", f"unix://{tmp_path}/tao/tao.sock")
    assert resolve().explicit


@pytest.fixture
def autostart_env(monkeypatch):
    for name in ("TAO_NO_AUTOSTART", "TAO_AUTOSTART"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def private(path):
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


def test_tao_starts_a_daemon_at_the_default_location_in_a_private_or_missing_directory(tmp_path, autostart_env):
    autostart_env.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert autostart_refusal(resolve()) is None  # missing: tao makes it, private
    private(tmp_path / "tao")
    assert autostart_refusal(resolve()) is None


def test_an_explicit_address_needs_tao_autostart_and_a_private_directory(tmp_path, autostart_env):
    address = resolve(f"unix://{private(tmp_path / 'run')}/tao.sock")
    assert "given as the daemon's address" in str(autostart_refusal(address))
    autostart_env.setenv("TAO_AUTOSTART", "1")
    assert autostart_refusal(address) is None
    (tmp_path / "run").chmod(0o755)
    assert "open to other users (mode 0755)" in str(autostart_refusal(address))


def test_a_directory_of_another_uid_is_a_services_even_at_the_default_location(tmp_path, autostart_env):
    autostart_env.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    directory = private(tmp_path / "tao")
    autostart_env.setattr("os.getuid", lambda: directory.stat().st_uid + 1)
    assert f"belongs to uid {directory.stat().st_uid}" in str(autostart_refusal(resolve()))


def test_tao_no_autostart_forbids_it_everywhere(tmp_path, autostart_env):
    autostart_env.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    autostart_env.setenv("TAO_NO_AUTOSTART", "1")
    assert autostart_refusal(resolve()) == "TAO_NO_AUTOSTART is set"
    assert "TAO_NO_AUTOSTART is set" in unreachable(resolve(), NOTHING_ANSWERS).message


@pytest.mark.parametrize("host", ["unix:///run/tao/tao.sock", "http://127.0.0.1:9"])
def test_a_service_that_does_not_answer_is_named_with_how_to_check_it(host, autostart_env):
    message = unreachable(resolve(host), NOTHING_ANSWERS).message
    assert message.startswith(f"cannot reach the tao daemon at {host}: the service at that address is not answering")
    assert "systemctl status tao-server" in message and "docker compose ps" in message


def test_other_reasons_are_left_as_they_are(autostart_env):
    assert unreachable(resolve("unix:///run/tao/tao.sock"), "permission denied").message.endswith(": permission denied")


def test_no_daemon_is_started_in_another_user_s_socket_directory(tmp_path, monkeypatch):
    from tao_client.local_daemon import start

    monkeypatch.delenv("TAO_NO_AUTOSTART", raising=False)
    shared = tmp_path / "run-tao"
    shared.mkdir()
    monkeypatch.setattr("os.getuid", lambda: shared.stat().st_uid + 1)  # as a user who does not own it
    with pytest.raises(DaemonUnreachable) as info:
        start(resolve(f"unix://{shared}/tao.sock"))
    assert "tao starts no daemon there: its directory" in str(info.value) and "systemctl status tao-server" in str(info.value)
    assert list(shared.iterdir()) == []  # no lock file, no socket, no daemon
