"""chatctl health."""

from __future__ import annotations

import typer

from admin_cli.output import out, print_json, table
from admin_cli.settings import DEFAULT_SERVER, Json, Server, client_tls

SERVICES = ("", "chatroom.v1.ChatService", "chatroom.v1.AdminService")


def health(server: Server = DEFAULT_SERVER, as_json: Json = False) -> None:
    """Ask the server's gRPC health service; exit 0 only when it is SERVING.

    Example: chatctl health --server localhost:50051
    """
    from admin_cli.admin_api import health_status

    tls = client_tls()
    statuses = {service or "(server)": health_status(server, service, tls) for service in SERVICES}
    if as_json:
        print_json({"server": server, "services": statuses})
    else:
        out.print(table(None, ("SERVICE", "STATUS"), list(statuses.items())))
    if any(status != "SERVING" for status in statuses.values()):
        raise typer.Exit(1)
