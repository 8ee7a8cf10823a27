"""``latbench users add|list|revoke``: the people who may use this server, managed on the server
host against its database (the server's LATBENCH_* settings). A token is printed once, at
``add``; the database keeps only its SHA-256."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from service.cli._db import server_session

users_app = typer.Typer(help="Users of this server and their tokens.", no_args_is_help=True)

NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"


def checked_name(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """``name`` if it is 1-64 of A-Z a-z 0-9 _ . - and not ``reserved``; BadParameter else."""
    if not re.fullmatch(NAME_PATTERN, name) or name in reserved:
        taken = f", and not {' or '.join(sorted(reserved))}" if reserved else ""
        raise typer.BadParameter(f"{name!r}: 1-64 of A-Z a-z 0-9 _ . -{taken}")
    return name


def _name(name: str) -> str:
    from service.db.owners import RESERVED

    return checked_name(name, RESERVED)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(callback=_name, help="the user's name, as jobs show it")],
    admin: Annotated[bool, typer.Option(help="may see and manage everything")] = False,
) -> None:
    """Add NAME and print their token, once: send it to them over a private channel."""
    from service.db.users import add_user

    with server_session() as session:
        token = add_user(session, name=name, admin=admin)
    typer.echo(token)
    typer.secho(f"user {name!r} added; the token above is not shown again", err=True)


@users_app.command("list")
def list_() -> None:
    """Every user: name, role, added, revoked."""
    from service.db.users import list_users

    with server_session() as session:
        rows = list_users(session)
    for row in rows:
        role = "admin" if row.admin else "user"
        revoked = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        typer.echo(f"{row.name}\t{role}\tadded {row.created_at:%Y-%m-%d %H:%M}\t{revoked}")


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the user to lock out")]) -> None:
    """Refuse NAME's token from now on; what they own stays theirs."""
    from service.db.users import revoke_user

    with server_session() as session:
        revoke_user(session, name=name)
    typer.echo(f"user {name!r} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
