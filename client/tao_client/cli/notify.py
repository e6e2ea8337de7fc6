"""`tao notify add|list|rm|secret`: the URLs every new job of yours posts its start and end to, and the secret that signs them.

A job's own URLs come with `tao --notify URL <task> ...`. URLs are shown with their credentials
masked; `rm` takes a URL whole or as `list` shows it.
"""

from __future__ import annotations

import json
from argparse import Namespace

from tao_client.cli._common import write_text
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client.client import Client


def notify_parser() -> Parser:
    parser = Parser(
        prog="tao notify",
        description="Where your jobs' starts and ends are posted (signed JSON, with a `text` line that Slack, Mattermost and "
        "Teams webhooks show), and the secret that signs them. A job adds its own with `tao --notify URL <task> ...`.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{add,list,rm,secret}")
    add = actions.add_parser("add", help="post the start and end of every new job of yours to URL")
    add.add_argument("url", metavar="URL", help="an http:// or https:// URL, such as a Slack incoming webhook")
    listing = actions.add_parser("list", help="your URLs, their credentials masked")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    remove = actions.add_parser("rm", help="stop posting to URL (given whole, or as `tao notify list` shows it)")
    remove.add_argument("url", metavar="URL")
    actions.add_parser(
        "secret",
        help="print your signing secret, made the first time: X-Tao-Signature-256 is sha256=HMAC-SHA256(secret, body)",
    )
    return parser


def manage(client: Client, args: Namespace) -> int:
    if args.action == "add":
        print(f"every new job of yours now posts its start and end to {client.notify_add(args.url)}")
    elif args.action == "rm":
        print(f"removed {client.notify_remove(args.url)}")
    elif args.action == "secret":
        print(client.notify_secret())
    else:
        urls = client.notify_urls()
        if args.json:
            write_text(json.dumps(urls, indent=2) + "\n")
        elif urls:
            write_text("".join(f"{url}\n" for url in urls))
        else:
            print("no default URLs: `tao notify add URL` adds one")
    return 0
