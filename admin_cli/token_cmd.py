"""chatctl token issue|show."""

from __future__ import annotations

from typing import Annotated

import typer

from admin_cli.output import info, print_json
from admin_cli.settings import (
    DEFAULT_SERVER,
    Json,
    Server,
    member_token,
    member_token_path,
    save_member_token,
)

app = typer.Typer(help="Issue member tokens, and show the ones kept here.", no_args_is_help=True)


@app.command(epilog="Examples: chatctl token issue doug\n\nchatctl token issue doug --print-token")
def issue(
    member: Annotated[str, typer.Argument(help="Member name; created if new.")],
    print_token: Annotated[
        bool, typer.Option("--print-token", help="Also print the new token (for another machine).")
    ] = False,
    server: Server = DEFAULT_SERVER,
    as_json: Json = False,
) -> None:
    """Issue a new token for a member, replacing (and disconnecting) any older one.

    To see the token kept here without replacing it: chatctl token show MEMBER."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        token = api.issue_token(member)
    path = save_member_token(member, token)
    if as_json:
        print_json({"member": member, "token_file": str(path), **({"token": token} if print_token else {})})
        return
    info(f"token for {member} saved to {path}")
    if print_token:
        info(token)


@app.command(epilog="Example: chatctl token show alice")
def show(
    member: Annotated[str, typer.Argument(help="Member whose saved token to print.")],
    as_json: Json = False,
) -> None:
    """Print the member's token kept in the state directory; asks the server nothing, replaces nothing."""
    token = member_token(member)
    if as_json:
        print_json({"member": member, "token_file": str(member_token_path(member)), "token": token})
    else:
        info(token)
