"""`tao list`, `tao stop`, `tao info` and `tao logs`."""

from __future__ import annotations

import argparse
import json
import sys

from tao_client.cli._common import EXIT_LAUNCHER, LauncherOptions, connect, error
from tao_client.cli.attach import attach

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from tao_client.client import Client, Job


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are launcher failures: exit 125, as `docker run` does."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.print_usage(sys.stderr)
        error(message)
        sys.exit(EXIT_LAUNCHER)


def dispatch(options: LauncherOptions, command: str, args: list[str]) -> int:
    parser = _PARSERS[command]()
    parsed = parser.parse_args(args)
    with connect(options) as client:
        return _HANDLERS[command](client, parsed)


# -- list ------------------------------------------------------------------------------------------


def _list_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tao list", description="Jobs queued and running, oldest first.")
    parser.add_argument("-a", "--all", action="store_true", help="include finished jobs")
    parser.add_argument("--json", action="store_true", help="one JSON array, as the REST API returns jobs")
    parser.add_argument("-n", "--limit", type=int, default=None, help="show at most this many (the newest)")
    return parser


def list_jobs(client: Client, args: argparse.Namespace) -> int:
    from tao_client.client import ACTIVE_STATUSES

    found = []
    for job in client.jobs(None if args.all else ACTIVE_STATUSES):
        found.append(job)
        if args.limit is not None and len(found) >= args.limit:
            break
    found.reverse()
    if args.json:
        print(json.dumps([job.data for job in found], indent=2))
        return 0
    rows = [("JOB ID", "TASK", "STATUS", "EXIT", "CREATED", "CONTAINER")]
    rows += [
        (
            job.id,
            " ".join(part for part in (job.data["group"], job.data["task"], job.data["subtask"]) if part),
            job.status + (f" (GPU line #{job.data['gpu_queue_position']})" if job.data.get("gpu_queue_position") else ""),
            "" if job.exit_code is None else str(job.exit_code),
            job.data["created_at"][:19].replace("T", " "),
            (job.data["container_id"] or "")[:12],
        )
        for job in found
    ]
    _print_table(rows)
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# -- stop ------------------------------------------------------------------------------------------


def _stop_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tao stop", description="Stop jobs; waits until their containers are gone.")
    parser.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    parser.add_argument("--container_id", "--container-id", nargs="+", default=[], metavar="ID", help="stop the jobs running in these containers")
    parser.add_argument("--all", action="store_true", help="stop every queued and running job")
    parser.add_argument("--no-wait", action="store_true", help="return once the stop is requested")
    return parser


def stop_jobs(client: Client, args: argparse.Namespace) -> int:
    from tao_client._errors import ApiError
    from tao_client.client import ACTIVE_STATUSES

    if not (args.job_ids or args.container_id or args.all):
        error("tao stop needs JOB_ID..., --container_id ID... or --all")
        return EXIT_LAUNCHER
    targets = list(args.job_ids)
    status = 0
    for container_id in args.container_id:
        matches = [job.id for job in client.jobs(container_id=container_id)] if container_id.strip() else []
        if len(matches) != 1:
            error(f"container id {container_id!r} matches {'no job' if not matches else 'several jobs: ' + ', '.join(matches)}")
            status = 1
            continue
        targets += matches
    if args.all:
        targets += [job.id for job in client.jobs(ACTIVE_STATUSES)]
    cancelled = []
    for job_id in dict.fromkeys(targets):
        try:
            cancelled.append(client.cancel(job_id))
        except ApiError as exc:
            error(exc.message)
            status = 1
    for job in cancelled:
        final = job if args.no_wait else client.wait_until_done(job.id)
        print(f"{final.id}: {final.status}")
    return status


# -- logs ------------------------------------------------------------------------------------------


def _logs_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tao logs", description="A job's output. With -f, follow it to the end and exit with the job's exit code.")
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends (Ctrl-C detaches; the job goes on)")
    return parser


def show_logs(client: Client, args: argparse.Namespace) -> int:
    if args.follow:
        return attach(client, args.job_id, cancel_on_signal=False)
    sys.stdout.buffer.write(client.logs(args.job_id))
    sys.stdout.buffer.flush()
    return 0


# -- info ------------------------------------------------------------------------------------------


def _info_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tao info", description="The daemon, its task manifest, the Docker engine and GPUs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show each image's local presence and size")
    parser.add_argument("--json", action="store_true")
    return parser


def show_info(client: Client, args: argparse.Namespace) -> int:
    info = client.info(verbose=args.verbose)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    daemon, manifest, engine = info["daemon"], info["manifest"], info["engine"]
    print(f"daemon:    {client.address.url} (tao-server {daemon['version']}, pid {daemon['pid']})")
    print(f"data dir:  {daemon['data_dir']}")
    print(f"manifest:  {manifest['source']} (format {manifest['format_version']}, toolkit {manifest['toolkit_version'] or 'unknown'})")
    if "error" in engine:
        print(f"engine:    {engine['error']}")
    else:
        print(f"engine:    Docker {engine['version']} (API {engine['api_version']}, {engine['os']}/{engine['arch']})")
    gpus = [f"{gpu['index']} ({_gpu_holder(gpu)})" for gpu in info["gpus"]]
    print(f"gpus:      {', '.join(gpus) if gpus else 'none'}{' [' + info['gpu_mode'] + ' mode]' if gpus else ''}")
    counts = daemon["jobs"]
    print(f"jobs:      {', '.join(f'{status} {count}' for status, count in sorted(counts.items())) or 'none yet'}")
    print("images:")
    for image in info["images"]:
        print(f"  {image['reference']}{_local(image) if args.verbose else ''}")
        print(f"    tasks: {', '.join(image['tasks'])}")
    return 0


def _local(image: dict[str, Any]) -> str:
    local = image.get("local")
    if not local:
        return "  (not pulled)"
    return f"  ({local['size'] / 1e9:.2f} GB, {local['id'][:19]})"


# -- images and registries -------------------------------------------------------------------------


def _pull_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tao pull", description="Pull the images of these tasks ahead of time, with progress.")
    parser.add_argument("tasks", nargs="+", metavar="TASK")
    return parser


def pull_images(client: Client, args: argparse.Namespace) -> int:
    from tao_client.cli.progress import view

    shown = view()
    failed = False
    try:
        for update in client.pull(tasks=args.tasks):
            if update["type"] == "progress":
                shown.update(update)
            elif update["error"]:
                failed = True
                error(update["error"])
            else:
                shown.update({"image": update["image"], "status": f"{update['image']} is ready"})
    finally:
        shown.close()
    return EXIT_LAUNCHER if failed else 0


def _images_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tao images", description="The images the task manifest uses: present or not, size, digest, tasks.")
    parser.add_argument("--json", action="store_true")
    return parser


def list_images(client: Client, args: argparse.Namespace) -> int:
    images = client.images()
    if args.json:
        print(json.dumps(images, indent=2))
        return 0
    rows = [("IMAGE", "PRESENT", "SIZE", "DIGEST", "TASKS")]
    for image in images:
        digest = image["digests"][0].split("@", 1)[1][:19] if image["digests"] else ""
        size = f"{image['size'] / 1e9:.2f} GB" if image["size"] else ""
        rows.append((image["reference"], "yes" if image["present"] else "no", size, digest, ", ".join(image["tasks"])))
    _print_table(rows)
    return 0


def _login_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tao login",
        description="Store a registry login with the daemon, for your jobs' pulls from that registry. The password never comes back. "
        "Logins of the daemon's user and root are the daemon's shared ones: jobs of users without their own login use them.",
    )
    parser.add_argument("registry", nargs="?", metavar="REGISTRY", help="e.g. nvcr.io (user $oauthtoken, password: your NGC API key)")
    parser.add_argument("-u", "--username")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--list", action="store_true", help="show your stored logins (registry and user) instead")
    return parser


def login(client: Client, args: argparse.Namespace) -> int:
    if args.list:
        if args.registry is not None:
            error("tao login --list takes no REGISTRY")
            return EXIT_LAUNCHER
        return _list_logins(client)
    if args.registry is None:
        error("tao login needs a REGISTRY (or --list to show your logins)")
        return EXIT_LAUNCHER
    username = args.username
    if username is None:
        if args.registry == "nvcr.io":
            username = "$oauthtoken"
        elif sys.stdin.isatty():
            username = input("Username: ")
        else:
            error("give --username (no terminal to ask on)")
            return EXIT_LAUNCHER
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
    else:
        error("give --password-stdin (no terminal to ask on)")
        return EXIT_LAUNCHER
    stored = client.login(args.registry, username, password)
    print(f"Login stored for {args.registry} ({username}) {_whose(stored)}")
    return 0


def _whose(login: dict[str, Any]) -> str:
    if login["owner_uid"] is None:
        return f"as the daemon's shared login: jobs of users without their own login for {login['registry']} pull with it"
    return f"for uid {login['owner_uid']}: your jobs pull from {login['registry']} with it, no one else's do"


def _list_logins(client: Client) -> int:
    logins = client.logins()
    if not logins:
        print("No logins of yours are stored; `tao login REGISTRY` stores one")
        return 0
    rows = [("REGISTRY", "USERNAME", "FOR")]
    for each in logins:
        owner = "all users (daemon)" if each["owner_uid"] is None else f"uid {each['owner_uid']}"
        rows.append((each["registry"], each["username"], owner))
    _print_table(rows)
    return 0


def _logout_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tao logout", description="Forget your registry login stored with the daemon.")
    parser.add_argument("registry", metavar="REGISTRY")
    return parser


def logout(client: Client, args: argparse.Namespace) -> int:
    removed = client.logout(args.registry)
    whose = "the daemon's shared login" if removed["owner_uid"] is None else f"the login of uid {removed['owner_uid']}"
    print(f"Login removed for {args.registry} ({removed['username']}): {whose}")
    return 0


_PARSERS = {
    "list": _list_parser, "stop": _stop_parser, "logs": _logs_parser, "info": _info_parser,
    "pull": _pull_parser, "images": _images_parser, "login": _login_parser, "logout": _logout_parser,
}
_HANDLERS = {
    "list": list_jobs, "stop": stop_jobs, "logs": show_logs, "info": show_info,
    "pull": pull_images, "images": list_images, "login": login, "logout": logout,
}


def _gpu_holder(gpu: dict[str, Any]) -> str:
    if gpu.get("job"):
        return "job " + gpu["job"]
    return "another user's job" if gpu.get("held") else "free"
