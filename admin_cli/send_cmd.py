"""chatctl send."""

from __future__ import annotations

from typing import Annotated

import typer

from admin_cli.output import info, print_json
from admin_cli.settings import DEFAULT_SERVER, Json, Server


def send(
    text: Annotated[str, typer.Argument(help="The note to send.")],
    sender: Annotated[
        str, typer.Option("--as", help="Member who sends (its token is in the state directory).")
    ],
    group: Annotated[str, typer.Option("--group", "-g", help="Group to send to.")],
    server: Server = DEFAULT_SERVER,
    as_json: Json = False,
) -> None:
    """Send one note as a member.

    Example: chatctl send --as alice --group team "hello"
    """
    from admin_cli.admin_api import member_call

    sent = member_call(server, sender, lambda client: client.send(group, text))
    if as_json:
        print_json({"group": sent.group, "seq": sent.seq, "sender": sent.sender, "text": sent.text})
    else:
        info(f"sent #{sent.seq} to {sent.group}")
