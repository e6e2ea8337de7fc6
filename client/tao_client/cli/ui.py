"""`tao ui`: open the daemon's dashboard as yourself, through a one-time link it gives over its Unix socket.

The kernel names the caller on the socket, so no token is typed: the daemon answers with a link
that opens one short-lived browser session bound to that caller, on its loopback listener, once,
and only for the account it was made for. The link's code never goes into the browser's argv or
environment, where every local user could read it (/proc/PID/cmdline): the browser is given a
page of this user's alone (mode 0600, in a private directory, as Jupyter does) that sends it on.
`webbrowser` honours $BROWSER. `--no-browser` prints the link itself, to paste.
"""

from __future__ import annotations

from argparse import Namespace

from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client.client import Client

STALE_PAGE_SECONDS = 600.0  # a page older than this has long outlived its link (good for a minute)


def ui_parser() -> Parser:
    parser = Parser(prog="tao ui", description="Open the dashboard in a browser, signed in as you (a one-time link; local daemons).")
    parser.add_argument("--no-browser", action="store_true", help="print the link (good once, for a minute) instead")
    return parser


def open_dashboard(client: Client, args: Namespace) -> int:
    from tao_client._errors import TaoClientError

    if client.address.socket_path is None:
        raise TaoClientError(
            f"tao ui signs you in over the daemon's Unix socket; for {client.address.url}, open {client.address.url}/ui/ "
            "and give it your token"
        )
    url = client.dashboard_link()
    if args.no_browser:
        print(url, flush=True)
        return 0
    import webbrowser

    page = redirect_page(url)
    print(page, flush=True)  # for a browser of this machine started some other way: the page is readable by you alone
    if not webbrowser.open(page):
        import sys

        print(f"tao: no browser found: open {page} in yours, or run `tao ui --no-browser` for a link to paste", file=sys.stderr)
    return 0


def redirect_page(url: str) -> str:
    """A page that sends a browser on to `url`, in a file only this user can read; its file:// URL."""
    import html
    import os
    import time

    directory = _private_dir()
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.startswith("ui-") and name.endswith(".html") and time.time() - os.stat(path).st_mtime > STALE_PAGE_SECONDS:
            os.unlink(path)
    path = os.path.join(directory, f"ui-{os.getpid()}.html")
    target = html.escape(url, quote=True)
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0; url={target}"><title>TAO dashboard</title></head>\n'
        f'<body><p>Opening <a href="{target}">the TAO dashboard</a>...</p></body></html>\n'
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with open(descriptor, "w") as file:
        file.write(page)
    from urllib.parse import quote

    return "file://" + quote(path)


def _private_dir() -> str:
    """A directory of this user's that no one else may enter: the runtime dir `tao` keeps, else a new temporary one."""
    import os
    import stat
    import tempfile

    from tao_common import paths

    directory = os.path.join(paths.runtime_dir(), "ui")
    try:
        # One level at a time: makedirs gives its mode to the last level only, and the runtime dir must stay private
        # (tao starts a daemon only in a directory no one else may enter: tao_client/address.py).
        os.makedirs(paths.runtime_dir(), mode=0o700, exist_ok=True)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.lstat(directory)
    except OSError:
        return tempfile.mkdtemp(prefix="tao-ui-")
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        return tempfile.mkdtemp(prefix="tao-ui-")
    return directory
