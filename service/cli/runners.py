"""``latbench runners add|list|revoke``: provision device hosts. A credential registers runners
of its device classes only; revoking it (or one runner by id) refuses them from then on, and
their results stop answering requests as cached."""

from __future__ import annotations

from typing import Annotated

import typer

from exporters.formats import DeviceClass
from service.cli._db import server_session
from service.cli.users import checked_name

runners_app = typer.Typer(help="Runner credentials, bound to device classes.", no_args_is_help=True)


@runners_app.command("add")
def add(
    name: Annotated[str, typer.Argument(callback=checked_name, help="e.g. the host's name")],
    device_class: Annotated[
        list[DeviceClass], typer.Option(help="a class it may register as (repeat for more)")
    ],
) -> None:
    """Create credential NAME and print its token once: give it to the host's `latbench runner`
    as LATBENCH_RUNNER_TOKEN or --token-file."""
    from service.db.runners import add_credential

    with server_session() as session:
        token = add_credential(session, name=name, device_classes=[c.value for c in device_class])
    typer.echo(token)
    typer.secho(f"runner credential {name!r} added; the token is not shown again", err=True)


@runners_app.command("list")
def list_() -> None:
    """Every credential (classes, revoked) and every registered runner."""
    from service.db.runners import list_credentials, list_runners

    with server_session() as session:
        credentials, registered = list_credentials(session), list_runners(session)
    for row in credentials:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        typer.echo(f"credential {row.name}\t{','.join(row.device_classes)}\t{state}")
    for row in registered:
        state = "revoked" if row.revoked_at else ("online" if row.online else "offline")
        typer.echo(f"runner {row.id}\t{row.device_class}\t{row.credential or 'shared'}\t{state}")


@runners_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="a credential's name or a runner's id")],
) -> None:
    """Refuse a credential and its runners (or one runner) from now on; their results stay,
    marked, and are measured again when next requested."""
    from service.db.runners import revoke as revoke_runners

    with server_session() as session:
        revoked = revoke_runners(session, name=name)
    typer.echo(f"revoked {name!r}: {len(revoked)} runner(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(runners_app, name="runners")
