"""-i and -t as `docker run` spells them, their auto-detection, and the detach keys (tao_client.cli)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tao_client.cli._common import LauncherOptions, UsageError
from tao_client.cli.main import parse_launcher_options
from tao_client.cli.port_forward import _port_pair
from tao_client.cli.task import terminal_modes
from tao_client.cli.terminal import DETACH_KEYS, Detached, _Session


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-i", "ssd"], {"interactive": True}),
        (["-t", "ssd"], {"tty": True}),
        (["-it", "ssd"], {"interactive": True, "tty": True}),
        (["-ti", "ssd"], {"interactive": True, "tty": True}),
        (["-dit", "ssd"], {"detach": True, "interactive": True, "tty": True}),
        (["--interactive", "--tty", "ssd"], {"interactive": True, "tty": True}),
        (["--tty=false", "ssd"], {"tty": False}),
        (["--interactive=0", "--tty=yes", "ssd"], {"interactive": False, "tty": True}),
        (["--detach=true", "ssd"], {"detach": True}),
    ],
)
def test_terminal_switches(argv: list[str], expected: dict[str, Any]) -> None:
    options, words = parse_launcher_options(argv)
    assert words == ["ssd"]
    assert options == LauncherOptions(**expected)


@pytest.mark.parametrize("argv", [["-ix", "ssd"], ["--tty=maybe", "ssd"], ["-", "ssd"]])
def test_bad_terminal_switches_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_launcher_options(argv)


def test_with_neither_switch_a_terminal_on_both_ends_gets_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    assert terminal_modes(LauncherOptions()) == (True, True)
    monkeypatch.setattr(os, "isatty", lambda fd: fd == 0)  # output to a pipe: a batch run, as before
    assert terminal_modes(LauncherOptions()) == (False, False)


def test_no_terminal_is_detected_for_a_detached_run_or_a_batch_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    assert terminal_modes(LauncherOptions(detach=True)) == (False, False)  # `tao -d <task>` stays a batch job
    assert terminal_modes(LauncherOptions(), daemon_attaches=False) == (False, False)  # Slurm: as before
    assert terminal_modes(LauncherOptions(detach=True, interactive=True, tty=True)) == (True, True)  # asked for: -dit


def test_a_tty_with_input_from_a_pipe_is_refused_as_docker_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "isatty", lambda fd: fd != 0)
    with pytest.raises(UsageError, match="needs a terminal on stdin"):
        terminal_modes(LauncherOptions(interactive=True, tty=True))
    assert terminal_modes(LauncherOptions(tty=True)) == (False, True)  # -t alone reads no input: allowed


def test_either_switch_given_reads_as_docker_run_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    assert terminal_modes(LauncherOptions(interactive=True)) == (True, False)
    assert terminal_modes(LauncherOptions(tty=False)) == (False, False)
    monkeypatch.setattr(os, "isatty", lambda fd: fd == 0)  # output to a pipe: asked for, so given
    assert terminal_modes(LauncherOptions(interactive=True, tty=True)) == (True, True)


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def _session() -> tuple[_Session, _Recorder]:
    recorder = _Recorder()
    session = _Session.__new__(_Session)
    session._terminal = recorder  # type: ignore[assignment]
    session._held = b""
    return session, recorder


def test_the_detach_keys_detach_and_what_came_before_them_is_sent() -> None:
    session, recorder = _session()
    with pytest.raises(Detached):
        session._without_detach_keys(b"ls" + DETACH_KEYS + b"more")
    assert recorder.sent == [b"ls"]


def test_detach_keys_split_across_reads_still_detach() -> None:
    session, recorder = _session()
    assert session._without_detach_keys(b"abc\x10") == b"abc"  # the Ctrl-P waits for the next key
    with pytest.raises(Detached):
        session._without_detach_keys(b"\x11")
    assert recorder.sent == []


def test_a_ctrl_p_not_followed_by_ctrl_q_reaches_the_task() -> None:
    session, _ = _session()
    assert session._without_detach_keys(b"\x10") == b""
    assert session._without_detach_keys(b"x") == b"\x10x"
    assert session._without_detach_keys(b"\x03") == b"\x03"  # Ctrl-C goes to the task's terminal


@pytest.mark.parametrize(("text", "pair"), [("8888", (8888, 8888)), (":8888", (0, 8888)), ("0:80", (0, 80)), ("9000:8888", (9000, 8888))])
def test_port_pairs_read_as_kubectl_port_forward(text: str, pair: tuple[int, int]) -> None:
    assert _port_pair(text) == pair


@pytest.mark.parametrize("text", ["", "x", "80:", "8888:0", "1:70000", "a:80", "70000:80"])
def test_bad_port_pairs_exit_125(text: str) -> None:
    with pytest.raises(SystemExit) as exited:
        _port_pair(text)
    assert exited.value.code == 125
