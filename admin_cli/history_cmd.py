"""chatctl history: a page of a group's kept notes, as a member reads them."""

from __future__ import annotations

from typing import Annotated

import typer

from admin_cli.output import info, note, print_json
from admin_cli.settings import DEFAULT_SERVER, Json, Server

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_SEQ = 2**64 - 1
"""Seqs are uint64 on the wire."""


def history(
    group: Annotated[str, typer.Argument(help="Group to read.")],
    member: Annotated[
        str, typer.Option("--as", help="Member who reads (its token is in the state directory).")
    ],
    before: Annotated[
        int, typer.Option("--before", min=0, max=MAX_SEQ, help="Notes below this seq (0: up to the newest).")
    ] = 0,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=MAX_LIMIT, help="Notes at most.")
    ] = DEFAULT_LIMIT,
    server: Server = DEFAULT_SERVER,
    as_json: Json = False,
) -> None:
    """Show the notes of a group just below --before, oldest first.

    Example: chatctl history team --as alice --limit 20
    """
    from admin_cli.admin_api import member_call
    from clients.lines import format_note

    page = member_call(server, member, lambda client: client.history(group, before_seq=before, limit=limit))
    if as_json:
        notes = [
            {"seq": n.seq, "sender": n.sender, "text": n.text, "sent_at": n.sent_at.isoformat()}
            for n in page.notes
        ]
        print_json({"group": group, "first_seq": page.first_seq, "has_more": page.has_more, "notes": notes})
        return
    for shown in page.notes:
        info(format_note(shown))
    if not page.notes:
        note(f"no notes of {group} kept below seq {before}" if before else f"no notes kept in {group}")
    elif page.has_more:
        note(f"older notes are kept: chatctl history {group} --as {member} --before {page.notes[0].seq}")
