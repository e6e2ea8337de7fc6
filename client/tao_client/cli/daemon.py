"""`tao daemon status|start|stop|restart|logs`: the daemon `tao` starts for you, seen and controlled.

`status` works at any address (a service's too); `start`, `stop` and `restart` act only where `tao`
may start a daemon of its own (tao_client/address.py says where), and `logs` reads the log `tao`
gives the daemons it starts. Exit codes: 0 done (status: a daemon answers), 3 status with no daemon
answering (as `systemctl status`), 125 what was asked could not be done.
"""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace

from tao_client import address, local_daemon
from tao_client.cli._common import EXIT_LAUNCHER, error
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client

EXIT_NOT_RUNNING = 3  # as `systemctl status` (LSB): the program is not running


def daemon_parser() -> Parser:
    parser = Parser(
        prog="tao daemon", description="The tao daemon: see it, start, stop or restart the one tao starts for you, read its log."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{status,start,stop,restart,logs}")
    status = actions.add_parser("status", help="whether a daemon answers: its pid, socket, data dir, version, manifest, dashboard")
    status.add_argument("--json", action="store_true", help="the daemon's own account, as JSON")
    actions.add_parser("start", help="start the daemon tao starts for you, if none answers")
    actions.add_parser("stop", help="stop it, and return once its process, socket and data-dir lock are gone")
    actions.add_parser("restart", help="stop it and start it again, with this environment's TAO_* settings")
    logs = actions.add_parser("logs", help="its log (daemon.log in its data dir)")
    logs.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing what it writes, until Ctrl-C")
    return parser


def manage_daemon(client: Client, args: Namespace) -> int:
    action = {"status": show_status, "start": start, "stop": stop, "restart": restart, "logs": show_log}[args.action]
    return action(client, args)


def _running(client: Client) -> dict[str, Any] | None:
    """The daemon's account of itself; None when nothing answers. A daemon of an older release, which has
    no GET /v1/daemon (still running after an upgrade of tao), is described from its /v1/info."""
    from tao_client._errors import ApiError

    try:
        return client.running_daemon()
    except ApiError as exc:
        if exc.status_code != 404:
            raise
    older: dict[str, Any] = client.info()["daemon"]
    older.setdefault("manifest", "(an older tao-server: `tao daemon restart` starts this release's)")
    return older


# -- status ----------------------------------------------------------------------------------------


def show_status(client: Client, args: Namespace) -> int:
    reported = _running(client)
    if args.json:
        differences = [{"variable": n, "daemon": d, "here": h} for n, d, h in local_daemon.differences(reported or {})]
        answer = {"address": client.address.url, "running": reported is not None, "daemon": reported, "differences": differences}
        print(json.dumps(answer, indent=2))
        return 0 if reported is not None else EXIT_NOT_RUNNING
    if reported is None:
        print(f"no daemon answers at {client.address.url}")
        if (refusal := address.not_own(client.address)) is None:
            print("`tao daemon start` starts one, as any tao command does")
        else:
            print(f"if a service runs there, it is not answering; {address.SERVICE_CHECK} ({refusal})")
        return EXIT_NOT_RUNNING
    for label, value in _status_lines(client, reported):
        print(f"{label + ':':<11}{value}")
    return 0


def _status_lines(client: Client, reported: dict[str, Any]) -> list[tuple[str, str]]:
    process = f", pid {reported['pid']}" if "pid" in reported else ""
    how = {"tao": ", started by tao"}.get(reported.get("started_by") or "", "")
    lines = [
        ("daemon", f"tao-server {reported['version']}{process}{how}, since {_local_time(reported['started_at'])}"),
        ("address", client.address.url),
        ("dashboard", f"{reported['dashboard']} (`tao ui` signs you in)" if reported.get("dashboard") else "none"),
        ("manifest", reported["manifest"]),
    ]
    if "data_dir" in reported:
        lines.append(("data dir", reported["data_dir"]))
    if reported.get("log"):
        lines.append(("log", reported["log"]))
    if reported.get("started_by") == "tao":
        differences = local_daemon.differences(reported)
        lines.append(("settings", "as this environment's" if not differences else local_daemon.describe(differences, "\n" + " " * 11)))
    lines.append(("stop it", _how_to_stop(client, reported)))
    return lines


def _local_time(iso: str) -> str:
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _how_to_stop(client: Client, reported: dict[str, Any]) -> str:
    if reported.get("service_manager") == "systemd":
        return "systemctl stop tao-server (it runs under systemd)"
    if address.not_own(client.address) is None:
        return "tao daemon stop (its running jobs go on; the next daemon takes them up)"
    return "it is a service's: systemctl stop tao-server, or docker compose stop"


# -- start, stop, restart --------------------------------------------------------------------------


def start(client: Client, _args: Namespace) -> int:
    reported = _running(client)
    if reported is not None:
        print(f"tao-server already answers at {client.address.url}{_pid(reported)}")
        return 0
    pid = local_daemon.start(client.address)
    if pid is None:  # another tao started it meanwhile
        print(f"tao-server already answers at {client.address.url}")
    else:
        print(f"started tao-server (pid {pid}) at {client.address.url}; log: {local_daemon.log_path()}")
    return 0


def stop(client: Client, _args: Namespace) -> int:
    reported = _running(client)
    if reported is None:
        print(f"no daemon answers at {client.address.url}")
        return 0
    if reported.get("service_manager") == "systemd":
        error(f"the daemon at {client.address.url} runs under systemd: systemctl stop tao-server")
        return EXIT_LAUNCHER
    pid = local_daemon.stop(client.address, reported.get("data_dir"))
    if pid is None:
        print(f"no daemon answers at {client.address.url}")
    else:
        print(f"stopped tao-server (pid {pid}); its running jobs go on, and the next daemon takes them up")
    return 0


def restart(client: Client, args: Namespace) -> int:
    code = stop(client, args)
    client.close()  # its kept connection went with the old daemon
    return code if code != 0 else start(client, args)


def _pid(reported: dict[str, Any]) -> str:
    return f" (pid {reported['pid']})" if "pid" in reported else ""


# -- logs ------------------------------------------------------------------------------------------


def show_log(client: Client, args: Namespace) -> int:
    path = _log_of(client)
    if path is None:
        error(
            f"the daemon at {client.address.url} was not started by tao, which keeps no log of it; a service's log: "
            "journalctl -u tao-server, or docker compose logs tao-server"
        )
        return EXIT_LAUNCHER
    try:
        log = open(path, "rb")
    except OSError as exc:
        error(f"cannot read the daemon's log {path}: {exc.strerror}")
        return EXIT_LAUNCHER
    with log:
        _copy(log, args.lines)
        if args.follow:
            _follow(log)
    return 0


def _log_of(client: Client) -> str | None:
    """The log of the daemon at the address: the one it names; else (nothing answers, or a daemon of an older
    release) tao's own, where tao may start one: with nothing answering, it says why the last start failed."""
    reported = _running(client)
    if reported is not None and "started_by" in reported:
        return reported.get("log") or None
    default = local_daemon.log_path()
    return default if address.not_own(client.address) is None and os.path.exists(default) else None


def _copy(log: Any, lines: int | None) -> None:
    out = sys.stdout.buffer
    if lines is None:
        while chunk := log.read(256 * 1024):
            out.write(chunk)
    else:
        out.writelines(log.readlines()[-lines:] if lines > 0 else [])
    out.flush()


def _follow(log: Any) -> None:
    import time

    try:
        while True:
            chunk = log.read(256 * 1024)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            else:
                time.sleep(0.2)  # a person's follow of a log file, as tail -f polls
    except KeyboardInterrupt:
        pass
