"""chatctl delivery show: who has received what."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.live import Live
from rich.table import Table

from admin_cli.output import CallFailed, ago, fail, out, print_json, table
from admin_cli.settings import DEFAULT_SERVER, Json, Server

if TYPE_CHECKING:
    from chatroom.v1 import admin_pb2

app = typer.Typer(help="Inspect delivery state.", no_args_is_help=True)

WATCH_INTERVAL_S = 1.0


def delivery_json(response: admin_pb2.ListUnreadResponse) -> dict[str, object]:
    return {
        "group": response.group,
        "head_seq": response.head_seq,
        "members": [
            {
                "member": m.member,
                "last_acked_seq": m.last_acked_seq,
                "unread_count": m.unread_count,
                "online_sessions": m.online_sessions,
                "last_seen": _last_seen(m).isoformat() if m.HasField("last_seen") else None,
            }
            for m in response.members
        ],
    }


def delivery_table(response: admin_pb2.ListUnreadResponse) -> Table:
    rows = [
        (
            m.member,
            m.last_acked_seq,
            m.unread_count,
            m.online_sessions,
            ago(_last_seen(m) if m.HasField("last_seen") else None),
        )
        for m in response.members
    ]
    title = f"{response.group}: head seq {response.head_seq}"
    return table(title, ("MEMBER", "LAST ACKED", "UNREAD", "ONLINE", "LAST SEEN"), rows)


def _last_seen(member: admin_pb2.MemberDelivery) -> datetime:
    return member.last_seen.ToDatetime(tzinfo=UTC)


@app.command(
    epilog="Examples: chatctl delivery show team --watch\n\n"
    "chatctl delivery show team --watch --json | jq .head_seq"
)
def show(
    group: str,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Refresh every second until Ctrl-C; piped, print each refresh (with --json: one"
            " document per line).",
        ),
    ] = False,
    server: Server = DEFAULT_SERVER,
    as_json: Json = False,
) -> None:
    """Each member's last acked seq, unread count, online sessions and last activity."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        if not watch:
            response = api.list_unread(group)
            if as_json:
                print_json(delivery_json(response))
            else:
                out.print(delivery_table(response))
            return
        api.raise_failures = True
        try:
            if as_json or not sys.stdout.isatty():
                _stream(lambda: api.list_unread(group), as_json)
            else:
                _watch_live(lambda: api.list_unread(group))
        except KeyboardInterrupt:
            return
        except CallFailed as failed:
            fail(str(failed))


def _watch_live(fetch: Callable[[], admin_pb2.ListUnreadResponse]) -> None:
    """A table redrawn in place; a failure leaves the last one on screen for the error below it."""
    with Live(delivery_table(fetch()), console=out, auto_refresh=False) as live:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            live.update(delivery_table(fetch()), refresh=True)


def _stream(fetch: Callable[[], admin_pb2.ListUnreadResponse], as_json: bool) -> None:
    """Each refresh printed as it comes, for pipes and logs: a table, or one JSON document a line."""
    try:
        while True:
            response = fetch()
            if as_json:
                sys.stdout.write(json.dumps(delivery_json(response)) + "\n")
            else:
                out.print(delivery_table(response))
            sys.stdout.flush()
            time.sleep(WATCH_INTERVAL_S)
    except BrokenPipeError:  # the reader left (| head): so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the flush at exit
