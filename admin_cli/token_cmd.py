"""chatctl token issue."""

from __future__ import annotations

from typing import Annotated

import typer

from admin_cli.output import info, print_json
from admin_cli.settings import DEFAULT_SERVER, Json, Server, save_member_token

app = typer.Typer(help="Issue member tokens.", no_args_is_help=True)


@app.command(epilog="Example: chatctl token issue doug")
def issue(
    member: Annotated[str, typer.Argument(help="Member name; created if new.")],
    show: Annotated[bool, typer.Option("--show", help="Also print the token itself.")] = False,
    server: Server = DEFAULT_SERVER,
    as_json: Json = False,
) -> None:
    """Issue a new token for a member, replacing (and disconnecting) any older one."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        token = api.issue_token(member)
    path = save_member_token(member, token)
    if as_json:
        print_json({"member": member, "token_file": str(path), **({"token": token} if show else {})})
        return
    info(f"token for {member} saved to {path}")
    if show:
        info(token)
