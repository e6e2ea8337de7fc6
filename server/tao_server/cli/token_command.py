"""`tao-server token create|list|revoke`: bearer tokens for TCP callers, kept in the daemon's database.

Run it as the daemon's user, against the daemon's data dir; a running daemon sees changes at once.
"""

from __future__ import annotations

import argparse
import pwd
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported in main(), once the flags are read
    from tao_server.access.tokens import TokenStore
    from tao_server.models import ApiToken


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tao-server token", description="Bearer tokens for callers over TCP.")
    parser.add_argument("--data-dir", type=Path, help="the daemon's data dir (default: $TAO_DATA_DIR or ~/.local/share/tao)")
    # --data-dir reads the same before or after the verb.
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", parents=[data_dir], help="make a token and print it once")
    create.add_argument("--user", help="who the token acts as; a local account gives its uid and gid (with --scrape: a name for it)")
    create.add_argument("--uid", type=int, help="the uid the token's jobs run as (default: the local account's)")
    create.add_argument("--gid", type=int, help="the gid the token's jobs run as (default: the local account's)")
    role = create.add_mutually_exclusive_group()
    role.add_argument("--admin", action="store_true", help="see and stop every user's jobs, and pass the policy")
    role.add_argument("--scrape", action="store_true", help="read GET /metrics and nothing else, as no account: for a Prometheus server")
    verbs.add_parser("list", parents=[data_dir], help="the tokens: id, user, uid:gid, access (user, admin, scrape), created")
    revoke = verbs.add_parser("revoke", parents=[data_dir], help="revoke tokens by id")
    revoke.add_argument("ids", nargs="+", metavar="ID")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from tao_common import paths
    from tao_server import db
    from tao_server.access.tokens import TokenStore

    db_path = Path(args.data_dir or paths.data_dir()) / db.FILE_NAME
    if not db_path.exists():
        return _fail(f"no daemon database at {db_path}; give the daemon's --data-dir")
    engine = db.make_engine(db_path)
    db.upgrade(engine)
    store = TokenStore(engine)
    if args.verb == "create":
        return _create(store, args)
    if args.verb == "list":
        print(f"{'ID':<14}{'USER':<20}{'UID:GID':<14}{'ACCESS':<8}CREATED")
        for token in store.list():
            account = f"{token.uid}:{token.gid}" if token.scope == "api" else "-"
            print(f"{token.id:<14}{token.user:<20}{account:<14}{_access(token):<8}{token.created_at:%Y-%m-%d %H:%M}")
    else:
        missing = [token_id for token_id in args.ids if not store.revoke(token_id)]
        if missing:
            return _fail(f"no token {', '.join(missing)}; `tao-server token list` shows them")
    return 0


def _create(store: TokenStore, args: argparse.Namespace) -> int:
    if args.scrape:
        if args.uid is not None or args.gid is not None:
            return _fail("a scrape token acts as no account: it takes no --uid or --gid")
        name = args.user or "scrape"
        token, text = store.create_scrape(name)
        print(text)
        print(
            f"token {token.id} ({name}): reads GET /metrics and nothing else; it is shown only now: the daemon keeps its hash",
            file=sys.stderr,
        )
        return 0
    if args.user is None:
        return _fail("give --user: who the token acts as (or --scrape, for a token that only reads /metrics)")
    uid, gid = _account(args.user, args.uid, args.gid)
    if uid == 0 and not args.admin:
        return _fail("a token acting as uid 0 is root on the box; make it with --admin, or give another --uid")
    if gid == 0 and not args.admin:
        return _fail("a token acting as gid 0 gets root's group on the box; make it with --admin, or give another --gid")
    token, text = store.create(args.user, uid, gid, args.admin)
    print(text)
    print(
        f"token {token.id} for {args.user} (uid {uid}, gid {gid}{', admin' if args.admin else ''}); "
        "it is shown only now: the daemon keeps its hash",
        file=sys.stderr,
    )
    return 0


def _access(token: ApiToken) -> str:
    if token.scope != "api":
        return token.scope
    return "admin" if token.admin else "user"


def _account(user: str, uid: int | None, gid: int | None) -> tuple[int, int]:
    """The uid and gid a token acts as: given, or the local account's."""
    if uid is not None and gid is not None:
        return uid, gid
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        sys.exit(_fail(f"{user!r} is not a local account; give --uid and --gid for the token's jobs to run as"))
    return (entry.pw_uid if uid is None else uid), (entry.pw_gid if gid is None else gid)


def _fail(message: str) -> int:
    print(f"tao-server token: error: {message}", file=sys.stderr)
    return 2
