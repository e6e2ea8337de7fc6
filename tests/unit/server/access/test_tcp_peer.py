"""Who owns the far end of a loopback TCP connection (access/tcp_peer.py), read from this host's real /proc/net/tcp."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tao_server.access.tcp_peer import loopback_owner


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["ipv4", "ipv6"])
def connection(request: pytest.FixtureRequest) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    """(client, server) of a real loopback connection, as the server's side sees them."""
    family, host = request.param
    with socket.socket(family) as listener:
        listener.bind((host, 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, peer = listener.accept()
            with accepted:
                yield peer[:2], accepted.getsockname()[:2]


def test_the_owner_of_the_clients_end_is_this_process_uid(connection: tuple[tuple[str, int], tuple[str, int]]) -> None:
    client, server = connection
    assert loopback_owner(client, server) == os.getuid()


def test_a_connection_that_is_not_there_has_no_owner(connection: tuple[tuple[str, int], tuple[str, int]]) -> None:
    client, server = connection
    assert loopback_owner((client[0], client[1] ^ 1), server) is None


def test_the_row_found_is_the_clients_not_the_servers(tmp_path: Path) -> None:
    """Both ends of a loopback connection are listed; only the one whose local address is the client's names the caller."""
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    rows = (
        "   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 11 1 0\n"  # the daemon's end
        "   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 12 1 0\n"  # the caller's end
    )
    (tmp_path / "tcp").write_text(header + rows)
    if socket.htonl(1) == 1:
        pytest.skip("the rows above are written as a little-endian host writes them")
    assert loopback_owner(("127.0.0.1", 0xD431), ("127.0.0.1", 0x1F90), proc_net=tmp_path) == 1001


def test_a_client_that_is_not_on_loopback_is_never_looked_up(tmp_path: Path) -> None:
    assert loopback_owner(("192.0.2.7", 40000), ("127.0.0.1", 8080), proc_net=tmp_path) is None
    assert loopback_owner(("testserver", 1), ("127.0.0.1", 8080), proc_net=tmp_path) is None
