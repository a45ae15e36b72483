"""python -m admin_cli: the same as chatctl."""

from admin_cli.main import app

app(prog_name="chatctl")
