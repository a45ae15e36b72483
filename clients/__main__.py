"""python -m clients MEMBER --group GROUP: the console client as its own process."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from clients.console import ConsoleOptions, run_console

DEFAULT_SERVER = "localhost:50051"


def parse_args(argv: list[str] | None = None) -> ConsoleOptions:
    parser = argparse.ArgumentParser(prog="python -m clients", description=__doc__)
    parser.add_argument("member")
    parser.add_argument("--group", required=True)
    parser.add_argument(
        "--server",
        default=os.environ.get("CHATROOM_SERVER", DEFAULT_SERVER),
        help="host:port, or several separated by commas (env CHATROOM_SERVER)",
    )
    parser.add_argument("--token-file", type=Path, help="file holding the member token")
    parser.add_argument("--plain", action="store_true", help="line mode even on a terminal")
    args = parser.parse_args(argv)
    token = os.environ.get("CHATROOM_TOKEN")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as error:
            parser.exit(2, f"error: cannot read token file: {error}\n")
    if not token:
        parser.exit(2, "error: no token: pass --token-file or set CHATROOM_TOKEN\n")
    return ConsoleOptions(
        member=args.member,
        group=args.group,
        servers=[server.strip() for server in args.server.split(",") if server.strip()],
        token=token,
        interactive=not args.plain and sys.stdin.isatty() and sys.stdout.isatty(),
    )


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_console(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
