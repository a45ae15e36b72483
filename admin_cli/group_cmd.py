"""chatctl group create|list|show|add-members|remove-members|delete."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from admin_cli.output import fail, info, note, out, print_json, table
from admin_cli.settings import DEFAULT_SERVER, Json, Server, save_member_token, state_dir

if TYPE_CHECKING:
    from chatroom.v1 import admin_pb2

app = typer.Typer(help="Create, inspect and change groups.", no_args_is_help=True)

Members = Annotated[
    list[str],
    typer.Option("--members", "-m", help="Member names, comma-separated or repeated."),
]


def split_members(values: Sequence[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def group_json(group: admin_pb2.Group) -> dict[str, object]:
    return {
        "group": group.group,
        "members": list(group.members),
        "head_seq": group.head_seq,
        "first_seq": group.first_seq,
    }


def _print_groups(groups: Sequence[admin_pb2.Group]) -> None:
    rows = [(g.group, ", ".join(g.members), g.head_seq) for g in groups]
    out.print(table(None, ("GROUP", "MEMBERS", "HEAD SEQ"), rows))


def _save_credentials(credentials: Sequence[admin_pb2.MemberCredential]) -> list[str]:
    for credential in credentials:
        save_member_token(credential.member, credential.token)
    return [credential.member for credential in credentials]


def _report(verb: str, group: admin_pb2.Group, saved: list[str], as_json: bool) -> None:
    if as_json:
        print_json({**group_json(group), "tokens_saved": saved})
        return
    members = ", ".join(group.members) or "no members"
    info(f"{verb} group {group.group}: {members} (head seq {group.head_seq})")
    if saved:
        note(f"saved new tokens for {', '.join(saved)} in {state_dir() / 'tokens'}")


@app.command(epilog="Example: chatctl group create team --members alice,bob,chad")
def create(
    group: Annotated[str, typer.Argument(help="Name of the new group.")],
    members: Members,
    server: Server = DEFAULT_SERVER,
    as_json: Json = False,
) -> None:
    """Create a group; members without a token get one, saved in the state directory."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        response = api.create_group(group, split_members(members))
    _report("created", response.group, _save_credentials(response.credentials), as_json)


@app.command("list", epilog="Example: chatctl group list --json")
def list_groups(server: Server = DEFAULT_SERVER, as_json: Json = False) -> None:
    """List every group with its members and head seq."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        groups = api.list_groups()
    if as_json:
        print_json([group_json(group) for group in groups])
        return
    if not groups:
        info("no groups yet: create one with 'chatctl group create NAME --members a,b'")
        return
    _print_groups(groups)


@app.command(epilog="Example: chatctl group show team")
def show(group: str, server: Server = DEFAULT_SERVER, as_json: Json = False) -> None:
    """Show one group's members, its newest seq and its oldest kept one (retention deletes before it)."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        found = api.get_group(group)
    if as_json:
        print_json(group_json(found))
        return
    row = (found.group, ", ".join(found.members), found.first_seq, found.head_seq)
    out.print(table(None, ("GROUP", "MEMBERS", "FIRST SEQ", "HEAD SEQ"), [row]))


@app.command("add-members", epilog="Example: chatctl group add-members team --members doug")
def add_members(group: str, members: Members, server: Server = DEFAULT_SERVER, as_json: Json = False) -> None:
    """Add members; each starts reading at the group's current head."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        response = api.add_members(group, split_members(members))
    _report("updated", response.group, _save_credentials(response.credentials), as_json)


@app.command("remove-members", epilog="Example: chatctl group remove-members team --members doug")
def remove_members(
    group: str, members: Members, server: Server = DEFAULT_SERVER, as_json: Json = False
) -> None:
    """Remove members; their open streams end at once."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        updated = api.remove_members(group, split_members(members))
    _report("updated", updated, [], as_json)


@app.command(epilog="Example: chatctl group delete team --yes")
def delete(
    group: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Delete a group and all its notes."""
    if not yes:
        if not sys.stdin.isatty():
            fail(f"deleting {group!r} removes all its notes: pass --yes to confirm")
        typer.confirm(f"Delete group {group!r} and all its notes?", abort=True)
    from admin_cli.admin_api import connect_admin

    with connect_admin(server) as api:
        api.delete_group(group)
    info(f"deleted group {group}")
