"""`tao-server`: the daemon's command line, the entry point of the installed command.

    serve.py          `tao-server [flags]`: flags -> Settings -> the checked storage, backend and sockets -> uvicorn
    token_command.py  `tao-server token create|list|revoke`: bearer tokens in the daemon's database
    healthcheck.py    `tao-server healthcheck`: the image's HEALTHCHECK (standard library only)

Each subcommand is imported only when it runs: `healthcheck`, every few seconds in a container,
pays for neither the settings stack nor the web framework. Modules here may import anything in
tao_server; nothing in tao_server imports them.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        from tao_server.cli import token_command

        sys.exit(token_command.main(argv[1:]))
    if argv[:1] == ["healthcheck"]:
        from tao_server.cli import healthcheck

        sys.exit(healthcheck.main(argv[1:]))
    from tao_server.cli import serve

    sys.exit(serve.main(argv))
