"""`tao pull`, `tao images`, `tao login` and `tao logout`: task images and the registry logins they are pulled with."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

from tao_client.cli._common import EXIT_LAUNCHER, error, print_table
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client


# -- pull ------------------------------------------------------------------------------------------


def pull_parser() -> Parser:
    parser = Parser(prog="tao pull", description="Pull the images of these tasks ahead of time, with progress.")
    parser.add_argument("tasks", nargs="+", metavar="TASK")
    return parser


def pull_images(client: Client, args: Namespace) -> int:
    from tao_client.cli.pull_progress import view

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


# -- images ----------------------------------------------------------------------------------------


def images_parser() -> Parser:
    parser = Parser(prog="tao images", description="The images the task manifest uses: present or not, size, digest, tasks.")
    parser.add_argument("--json", action="store_true")
    return parser


def list_images(client: Client, args: Namespace) -> int:
    images = client.images()
    if args.json:
        print(json.dumps(images, indent=2))
        return 0
    rows = [("IMAGE", "PRESENT", "SIZE", "DIGEST", "TASKS")]
    for image in images:
        digest = image["digests"][0].split("@", 1)[1][:19] if image["digests"] else ""
        size = f"{image['size'] / 1e9:.2f} GB" if image["size"] else ""
        rows.append((image["reference"], "yes" if image["present"] else "no", size, digest, ", ".join(image["tasks"])))
    print_table(rows)
    return 0


# -- login and logout ------------------------------------------------------------------------------


def login_parser() -> Parser:
    parser = Parser(
        prog="tao login",
        description="Store a registry login with the daemon, for your jobs' pulls from that registry. The password never comes back. "
        "Logins of the daemon's user and root are the daemon's shared ones: jobs of users without their own login use them.",
    )
    parser.add_argument("registry", nargs="?", metavar="REGISTRY", help="e.g. nvcr.io (user $oauthtoken, password: your NGC API key)")
    parser.add_argument("-u", "--username")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--list", action="store_true", help="show your stored logins (registry and user) instead")
    return parser


def login(client: Client, args: Namespace) -> int:
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
    print_table(rows)
    return 0


def logout_parser() -> Parser:
    parser = Parser(prog="tao logout", description="Forget your registry login stored with the daemon.")
    parser.add_argument("registry", metavar="REGISTRY")
    return parser


def logout(client: Client, args: Namespace) -> int:
    removed = client.logout(args.registry)
    whose = "the daemon's shared login" if removed["owner_uid"] is None else f"the login of uid {removed['owner_uid']}"
    print(f"Login removed for {args.registry} ({removed['username']}): {whose}")
    return 0
