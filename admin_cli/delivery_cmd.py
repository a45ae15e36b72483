"""chatctl delivery show: who has received what."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.live import Live
from rich.table import Table

from admin_cli.output import ago, out, print_json, table
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


@app.command(epilog="Example: chatctl delivery show team --watch")
def show(
    group: str,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every second until Ctrl-C.")] = False,
    server: Server = DEFAULT_SERVER,
    as_json: Json = False,
) -> None:
    """Each member's last acked seq, unread count, online sessions and last activity."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        if as_json:
            print_json(delivery_json(api.list_unread(group)))
        elif not watch:
            out.print(delivery_table(api.list_unread(group)))
        else:
            with Live(delivery_table(api.list_unread(group)), console=out, auto_refresh=False) as live:
                try:
                    while True:
                        time.sleep(WATCH_INTERVAL_S)
                        live.update(delivery_table(api.list_unread(group)), refresh=True)
                except KeyboardInterrupt:
                    pass
