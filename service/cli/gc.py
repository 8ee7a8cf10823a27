"""``latbench gc [--dry-run]``: bring the server's artifact store within LATBENCH_MAX_STORE_BYTES
now, least recently used first, never what an unfinished job needs; says what it frees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from service.cli._db import local_database


def gc(
    dry_run: Annotated[bool, typer.Option(help="say what would be freed; free nothing")] = False,
    limit_bytes: Annotated[
        int | None,
        typer.Option(min=0, help="bound to collect down to (default: LATBENCH_MAX_STORE_BYTES)"),
    ] = None,
) -> None:
    """Free artifacts the store holds past its bound, and prune runner rows silent past
    LATBENCH_RUNNER_RETENTION_S that no job or result names (run on the server host)."""
    from service.retention import collect, prune_runners

    with local_database() as (session, settings):
        freed = collect(session, settings, dry_run=dry_run, limit_bytes=limit_bytes)
        pruned = prune_runners(session, settings, dry_run=dry_run)
    verb = "would free" if dry_run else "freed"
    for item in freed:
        used = datetime.fromtimestamp(item.last_used, UTC).strftime("%Y-%m-%d %H:%M")
        typer.echo(f"{verb} {item.key}\t{item.size_bytes} bytes\tlast used {used} UTC")
    total = sum(item.size_bytes for item in freed)
    typer.echo(f"{verb} {len(freed)} artifact(s), {total} bytes")
    prune = "would prune" if dry_run else "pruned"
    for runner_id in pruned:
        typer.echo(f"{prune} runner {runner_id}")
    typer.echo(f"{prune} {len(pruned)} silent runner row(s)")


def register(app: typer.Typer) -> None:
    app.command()(gc)
