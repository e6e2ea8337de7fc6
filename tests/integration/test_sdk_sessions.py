"""A job's terminal and ports as SDK calls (`Client.terminal`, `Client.forward_port`, and AsyncClient's), on real daemons.

`tao attach` and `tao port-forward` are presentations of these (test_terminal.py, test_port_forward.py
drive them); here a program uses them directly. The jobs run the test image's busybox: `cat` as a
terminal's task, `nc -ll -e cat` as an echo server. Each forward test runs over the Unix socket
(the connection handed over and spliced) and over TCP with a token (a websocket per connection).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_client import AsyncClient, Client
from tao_client._errors import ApiError
from tao_server.testing.daemon import Daemon
from tests.integration.conftest import free_port, make_daemon, until

pytestmark = pytest.mark.integration
TIMEOUT = 60


@pytest.fixture(scope="module")
def tcp_daemon(tmp_path_factory: pytest.TempPathFactory, manifest_file: Path, docker_client: Any) -> Iterator[Daemon]:
    """A daemon also on loopback TCP, with root's token in `token`."""
    port = free_port()
    running = make_daemon(tmp_path_factory.mktemp("sdk-tcp-daemon"), manifest_file, "--port", str(port)).start()
    running.token_text = running.token("--user", "root", "--uid", "0", "--gid", "0", "--admin")  # type: ignore[attr-defined]
    running.tcp_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield running
    running.stop()
    running.remove_containers()


@pytest.fixture(params=["unix", "tcp"])
def client(request: pytest.FixtureRequest, daemon: Daemon) -> Iterator[tuple[Daemon, Client]]:
    """(the daemon, a Client reaching it): on its Unix socket, or over TCP with a token."""
    if request.param == "unix":
        reached, made = daemon, Client(daemon.address, autostart=False)
    else:
        reached = request.getfixturevalue("tcp_daemon")
        made = Client(reached.tcp_url, token=reached.token_text, autostart=False)  # type: ignore[attr-defined]
    with made:
        yield reached, made


def echo_job(client: Client) -> str:
    """A running job whose port 9000 echoes what it gets, each connection until its input ends."""
    job = client.submit("detectnet_v2", "run", ["nc", "-ll", "-p", "9000", "-e", "cat"], launch_config=False)
    until(lambda: client.job(job.id).status == "running", "the echo job runs", timeout=TIMEOUT)
    return job.id


def echoed(port: int) -> bytes:
    """What the echo server gives back of one line, through a local port, once it answers (nc may still be starting)."""
    answers: list[bytes] = []

    def answered() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
                connection.sendall(b"through the forward\n")
                connection.shutdown(socket.SHUT_WR)  # the half-close travels too: the echo ends, and so does the stream
                received = b""
                while chunk := connection.recv(4096):
                    received += chunk
        except OSError:
            return False
        answers.append(received)
        return bool(received)

    until(answered, "the echo server answers through the forward", timeout=TIMEOUT)
    return answers[0]


def test_forward_port_carries_connections_both_ways_until_it_is_closed(client: tuple[Daemon, Client]) -> None:
    _daemon, sdk = client
    job_id = echo_job(sdk)
    errors: list[str] = []
    with sdk.forward_port(job_id, 9000, on_error=errors.append) as forward:
        assert forward.local_address == "127.0.0.1" and forward.local_port > 0
        assert echoed(forward.local_port) == b"through the forward\n"
        assert echoed(forward.local_port) == b"through the forward\n"  # each connection carried on its own
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", forward.local_port), timeout=TIMEOUT).close()
    assert errors == []
    sdk.cancel(job_id)


def test_a_forward_to_a_port_nothing_answers_says_why_for_each_connection(client: tuple[Daemon, Client]) -> None:
    _daemon, sdk = client
    job_id = echo_job(sdk)
    errors: list[str] = []
    with sdk.forward_port(job_id, 8080, on_error=errors.append) as forward:
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=TIMEOUT) as connection:
            assert connection.recv(100) == b""  # closed
        until(lambda: bool(errors), "the failed connection is reported", timeout=TIMEOUT)
    assert "nothing answers on port 8080" in errors[0] and errors[0].startswith("port-forward to 8080: ")
    sdk.cancel(job_id)


def test_a_terminal_takes_keys_and_gives_the_output_and_the_end(daemon: Daemon) -> None:
    with Client(daemon.address, autostart=False) as sdk:
        job = sdk.submit("detectnet_v2", "run", ["cat"], interactive=True, launch_config=False)
        with sdk.terminal(job.id, offset=0) as terminal:
            terminal.send(b"typed in\n")
            seen = b""
            while b"typed in\n" not in seen:
                chunk = terminal.receive()
                assert chunk is not None, f"the session ended first: {terminal.end}"
                seen += chunk
            terminal.end_input()  # cat reads EOF and exits 0
            rest = b"".join(terminal.output())
        assert seen + rest == b"typed in\n"
        assert terminal.end is not None and (terminal.end["status"], terminal.end["exit_code"]) == ("succeeded", 0)
        assert sdk.job(job.id).status == "succeeded"


def test_a_terminal_of_a_job_without_input_is_refused_in_the_daemons_words(daemon: Daemon) -> None:
    with Client(daemon.address, autostart=False) as sdk:
        job = sdk.submit("detectnet_v2", "run", ["sleep", "600"], launch_config=False)
        with sdk.terminal(job.id) as terminal, pytest.raises(ApiError) as refused:
            terminal.receive()
        assert refused.value.code == "not_attachable" and "was not started with -i" in refused.value.message
        sdk.cancel(job.id)


def test_the_async_client_has_the_same_terminal_and_forwards(daemon: Daemon) -> None:
    async def main() -> tuple[bytes, dict[str, Any] | None, bytes]:
        async with AsyncClient(daemon.address, autostart=False) as sdk:
            job = await sdk.submit("detectnet_v2", "run", ["cat"], interactive=True, launch_config=False)
            terminal = await sdk.terminal(job.id, offset=0)
            async with terminal:
                await terminal.send(b"from asyncio\n")
                await terminal.end_input()
                output = b"".join([chunk async for chunk in terminal.output()])
            echo = await sdk.submit("detectnet_v2", "run", ["nc", "-ll", "-p", "9000", "-e", "cat"], launch_config=False)
            while (await sdk.job(echo.id)).status != "running":
                await asyncio.sleep(0.05)
            forward = await sdk.forward_port(echo.id, 9000)
            with forward:
                through = await asyncio.to_thread(echoed, forward.local_port)
            await sdk.cancel(echo.id)
            return output, terminal.end, through

    output, end, through = asyncio.run(main())
    assert output == b"from asyncio\n"
    assert end is not None and end["exit_code"] == 0
    assert through == b"through the forward\n"
