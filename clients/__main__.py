"""python -m clients MEMBER --group GROUP: the console client as its own process."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

# gRPC core's own log lines (GOAWAYs, reconnects) would interleave with the
# console's; it reports connection trouble itself. GRPC_VERBOSITY=info brings them back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from clients.channel import DEFAULT_KEEPALIVE_S, KEEPALIVE_ENV, ClientTls, unsendable_token  # noqa: E402
from clients.console import ConsoleOptions, run_console  # noqa: E402
from clients.lines import last_shown  # noqa: E402

DEFAULT_SERVER = "localhost:50051"


def _path_from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def parse_args(argv: list[str] | None = None) -> ConsoleOptions:
    parser = argparse.ArgumentParser(prog="python -m clients", description=__doc__)
    parser.add_argument("member")
    parser.add_argument("--group", required=True)
    parser.add_argument(
        "--server",
        default=os.environ.get("CHATROOM_SERVER", DEFAULT_SERVER),
        help="host:port, or several separated by commas (env CHATROOM_SERVER)",
    )
    parser.add_argument("--token-file", type=Path, help="file holding the member token (else CHATROOM_TOKEN)")
    parser.add_argument(
        "--keepalive",
        type=float,
        default=os.environ.get(KEEPALIVE_ENV, DEFAULT_KEEPALIVE_S),
        help=f"seconds between pings on a quiet connection (env {KEEPALIVE_ENV}, default %(default)s)",
    )
    parser.add_argument("--plain", action="store_true", help="line mode even on a terminal")
    parser.add_argument("--resume-log", type=Path, help="skip the notes this log shows were already shown")
    tls = parser.add_argument_group("TLS (plaintext unless one is given)")
    tls.add_argument(
        "--tls-ca", type=Path, default=_path_from_env("CHATROOM_TLS_CA"), help="CA of the server"
    )
    tls.add_argument("--tls-client-cert", type=Path, default=_path_from_env("CHATROOM_TLS_CLIENT_CERT"))
    tls.add_argument("--tls-client-key", type=Path, default=_path_from_env("CHATROOM_TLS_CLIENT_KEY"))
    args = parser.parse_args(argv)
    try:
        token = args.token_file.read_text().strip() if args.token_file else os.environ.get("CHATROOM_TOKEN")
        tls_files = (args.tls_ca, args.tls_client_cert, args.tls_client_key)
        client_tls = ClientTls.from_files(*tls_files) if any(tls_files) else None
        if args.keepalive <= 0:
            raise ValueError(f"--keepalive must be a positive number of seconds, not {args.keepalive:g}")
    except (OSError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    if not token:
        parser.exit(2, "error: no token: pass --token-file or set CHATROOM_TOKEN\n")
    if (problem := unsendable_token(token, str(args.token_file or "CHATROOM_TOKEN"))) is not None:
        parser.exit(2, f"error: {problem}\n")
    return ConsoleOptions(
        member=args.member,
        group=args.group,
        servers=[server.strip() for server in args.server.split(",") if server.strip()],
        token=token,
        interactive=not args.plain and sys.stdin.isatty() and sys.stdout.isatty(),
        tls=client_tls,
        after_seq=last_shown(args.resume_log, args.group) if args.resume_log else 0,
        keepalive_s=args.keepalive,
        token_source=str(args.token_file) if args.token_file else "CHATROOM_TOKEN",
    )


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_console(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
