"""`tao ui`: open the daemon's dashboard as yourself, through a one-time link it gives over its Unix socket.

The kernel names the caller on the socket, so no token is typed: the daemon answers with a link
that opens one short-lived browser session bound to that caller, on its loopback listener, once.
`webbrowser` honours $BROWSER; the link is printed too, for a browser started some other way.
"""

from __future__ import annotations

from argparse import Namespace

from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client.client import Client


def ui_parser() -> Parser:
    parser = Parser(prog="tao ui", description="Open the dashboard in a browser, signed in as you (a one-time link; local daemons).")
    parser.add_argument("--no-browser", action="store_true", help="print the link only")
    return parser


def open_dashboard(client: Client, args: Namespace) -> int:
    from tao_client._errors import TaoClientError

    if client.address.socket_path is None:
        raise TaoClientError(
            f"tao ui signs you in over the daemon's Unix socket; for {client.address.url}, open {client.address.url}/ui/ "
            "and give it your token"
        )
    # The SDK has no call for this yet; the link is the daemon's answer to POST /ui/links.
    url: str = client._json("POST", "/ui/links")["url"]
    print(url, flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    return 0
