"""`peerline export research --out DIR [--key-file F]`: de-identified data for evaluators.

A Typer sub-app of its own, registered by app/cli.py (`cli.add_typer(export_cli,
name="export")`). It does not import app.cli, which imports it: errors are one line on
standard error and exit code 2, as everywhere on the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import fail, fail_unexpected, settings_or_fail
from app.db import make_engine, make_sessionmaker
from app.services import audit, engagement, research
from app.services.audit import Action
from app.services.errors import ServiceError

export_cli = typer.Typer(help="De-identified data for evaluation.", no_args_is_help=True)


@export_cli.command("research")
def export_research(
    out: Annotated[
        Path, typer.Option("--out", help="a new or empty directory for the CSV files (created if missing)")
    ],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="the export key: the same key gives the same research ids in a later export; "
            "made with a random key when the file does not exist. Without it, a new key is used "
            "and not kept, so the ids link to nothing.",
        ),
    ] = None,
) -> None:
    """Write pair_weeks.csv, participants.csv and data-dictionary.csv: no names, numbers or dates."""
    settings = settings_or_fail()
    try:
        research.prepare_out(out, key_file)
        key, made = research.key_from_file(key_file) if key_file is not None else (research.new_key(), False)
    except ServiceError as exc:
        fail(str(exc))
    engine = make_engine(settings.database_url)
    now = datetime.now(UTC)
    try:
        with make_sessionmaker(engine)() as db:
            # read in a snapshot that leaves SQLite's write lock to a serving phone line
            with engagement.reading(db) as snapshot:
                bundle = research.build(
                    snapshot, ids=research.ResearchIds(key), now=now, engaged_when=settings.engaged_when
                )
            written = bundle.write(out)
            audit.record(
                db,
                actor=audit.SYSTEM,
                action=Action.EXPORT_RESEARCH,
                target=f"{bundle.pairs} pairs, {bundle.pair_weeks} pair-weeks",
                client_ip=audit.CLI_ADDRESS,
                at=now,
            )
            db.commit()
    except (ServiceError, OSError) as exc:
        fail(str(exc))
    except Exception as exc:  # a readable line, never a traceback
        fail_unexpected(exc, "export")
    finally:
        engine.dispose()
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(
        f"{bundle.pairs} pairs, {bundle.participants} participants, {bundle.pair_weeks} pair-weeks; "
        + (
            f"research ids under the key in {key_file}" + (" (made now)" if made else "")
            if key_file is not None
            else "research ids under a new key, not kept"
        )
    )
