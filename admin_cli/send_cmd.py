"""chatctl send."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from admin_cli.output import fail, info, print_json
from admin_cli.settings import DEFAULT_SERVER, Json, Server, client_tls, member_token

if TYPE_CHECKING:
    from clients.model import Note

SEND_RETRY_S = 3.0


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
    import asyncio

    from admin_cli.admin_api import explain_status
    from clients import ChatClient, ChatError

    token = member_token(sender)

    async def deliver() -> Note:
        async with ChatClient(server, token, send_retry_s=SEND_RETRY_S, tls=client_tls()) as client:
            return await client.send(group, text)

    try:
        sent = asyncio.run(deliver())
    except ChatError as error:
        fail(explain_status(error.code, error.details, server, member=sender))
    if as_json:
        print_json({"group": sent.group, "seq": sent.seq, "sender": sent.sender, "text": sent.text})
    else:
        info(f"sent #{sent.seq} to {sent.group}")
