"""The command table (tao_client.cli.commands): one list of verbs drives parsing, dispatch and `tao --help`."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from typing import Self

import pytest

from tao_client.cli import _common, commands
from tao_client.cli._parser import Parser
from tao_client.cli.help import format_commands, format_usage
from tao_client.cli.main import run

VERBS = [
    "list",
    "stop",
    "info",
    "show",
    "logs",
    "metrics",
    "events",
    "attach",
    "port-forward",
    "pipeline",
    "sweep",
    "pull",
    "images",
    "login",
    "logout",
    "notify",
    "ui",
    "daemon",
]

# `tao --help`'s wording, as users and scripts have seen it.
HELP_COMMANDS = """\
commands:
  list                  jobs queued and running, newest first (--all adds finished ones, --json)
  stop                  stop jobs: tao stop JOB_ID... | --container_id ID... | --all
  info                  the daemon, its task manifest, the Docker engine and GPUs
  show                  one job in full: status, error, times, image, mounts, events, last output
  logs                  a job's output: tao logs JOB_ID [-f]
  metrics               a job's training KPIs and a line per epoch: tao metrics JOB_ID [-f] [--json|--csv]
  events                a job's events: pulls, GPUs, notification tries: tao events JOB_ID [-f]
  attach                return to a job's terminal (or its output): tao attach JOB_ID
  port-forward          reach a job's port from here: tao port-forward JOB_ID [LOCAL:]REMOTE
  pipeline              run a pipeline file's steps as one: tao pipeline run FILE.yaml [-d] | list | show ID | stop ID
  sweep                 hyperparameter sweeps, each trial a job: tao sweep run SWEEP.yaml [-d] | list | show ID | stop ID
  pull                  pull the images of tasks ahead of time: tao pull TASK...
  images                the manifest's images: present or not, size, digest, tasks
  login, logout         store or forget your registry login: tao login nvcr.io (--list shows yours)
  notify                post your jobs' starts and ends to URLs: tao notify add|list|rm URL, tao notify secret
  ui                    open the dashboard in a browser, signed in as you: tao ui
  daemon                the daemon tao starts for you: tao daemon status|start|stop|restart|logs"""


class FakeClient:
    """Stands in for `Client` where a verb only needs one answer from the daemon."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def logout(self, registry: str) -> dict[str, object]:
        self.calls.append(("logout", registry))
        return {"registry": registry, "username": "bob", "owner_uid": 1000}

    def notify_add(self, url: str) -> str:
        self.calls.append(("notify_add", url))
        return "https://hooks.example/services/****abcd"

    def notify_urls(self) -> list[str]:
        self.calls.append(("notify_urls", ""))
        return ["https://hooks.example/services/****abcd"]

    def notify_secret(self) -> str:
        self.calls.append(("notify_secret", ""))
        return "ab" * 32


@pytest.fixture
def no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(options: _common.LauncherOptions, check_daemon: bool = False) -> None:
        raise AssertionError("connected to the daemon")

    monkeypatch.setattr(_common, "connect", refuse)


def test_the_table_holds_every_verb_once_in_help_order() -> None:
    assert [command.name for command in commands.COMMANDS] == VERBS


@pytest.mark.parametrize("command", commands.COMMANDS, ids=lambda command: command.name)
def test_each_verb_has_a_parser_factory_and_a_handler(command: commands.Command) -> None:
    module = import_module(f"tao_client.cli.{command.module}")
    parser = getattr(module, command.parser)()
    assert isinstance(parser, Parser)
    assert parser.prog == f"tao {command.name}"
    assert callable(getattr(module, command.handler))


@pytest.mark.parametrize("name", VERBS)
def test_find_returns_the_verbs_row(name: str) -> None:
    found = commands.find(name)
    assert found is not None and found.name == name


@pytest.mark.parametrize("word", ["detectnet_v2", "model", "List", "help", ""])
def test_other_words_are_not_verbs(word: str) -> None:
    assert commands.find(word) is None


def test_help_lists_every_verb_in_the_same_words() -> None:
    assert format_commands() == HELP_COMMANDS


def test_verbs_with_one_summary_share_a_help_line() -> None:
    assert ("login, logout", commands.find("logout").summary) in commands.help_lines()  # type: ignore[union-attr]
    assert len(commands.help_lines()) == len(VERBS) - 1


def test_usage_names_every_verb() -> None:
    assert (
        format_usage().splitlines()[2]
        == "       tao {list,stop,info,show,logs,metrics,events,attach,port-forward,pipeline,sweep,pull,images,login,logout,notify,ui,daemon} ..."
    )


@pytest.mark.parametrize("name", VERBS)
def test_usage_mistakes_exit_125_before_connecting(name: str, no_connection: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run([name, "--bogus"])
    assert exited.value.code == 125
    err = capsys.readouterr().err
    assert err.startswith(f"usage: tao {name}")
    assert "tao: error: unrecognized arguments: --bogus" in err or "tao: error: the following arguments are required" in err


@pytest.mark.parametrize("name", VERBS)
def test_verb_help_exits_0_before_connecting(name: str, no_connection: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run([name, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: tao {name}")


def test_dispatch_runs_the_handler_with_a_connected_client(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient()
    monkeypatch.setattr(_common, "connect", lambda options, check_daemon=False: client)
    assert run(["logout", "registry.example"]) == 0
    assert client.calls == [("logout", "registry.example")]
    assert capsys.readouterr().out == "Login removed for registry.example (bob): the login of uid 1000\n"


@pytest.mark.parametrize(
    ("argv", "call", "out"),
    [
        (
            ["notify", "add", "https://hooks.example/services/x/abcd"],
            ("notify_add", "https://hooks.example/services/x/abcd"),
            "every new job of yours now posts its start and end to https://hooks.example/services/****abcd\n",
        ),
        (["notify", "list"], ("notify_urls", ""), "https://hooks.example/services/****abcd\n"),
        (["notify", "list", "--json"], ("notify_urls", ""), '[\n  "https://hooks.example/services/****abcd"\n]\n'),
        (["notify", "secret"], ("notify_secret", ""), "ab" * 32 + "\n"),
    ],
)
def test_notify_says_what_it_did(
    argv: list[str], call: tuple[str, str], out: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient()
    monkeypatch.setattr(_common, "connect", lambda options, check_daemon=False: client)
    assert run(argv) == 0
    assert client.calls == [call]
    assert capsys.readouterr().out == out


def test_help_path_imports_no_argparse_typing_or_verb_module() -> None:
    probe = (
        "import sys\n"
        "from tao_client.cli import help, main\n"
        "help.format_usage(); help.format_commands(); main.commands.find('list')\n"
        "heavy = ('argparse', 'typing', 'dataclasses', 'tao_client.cli.jobs', 'tao_client.cli.info', 'tao_client.cli.images')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == "[]\n"
