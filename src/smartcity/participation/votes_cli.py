"""`smartcity participation …`: check a vote's hash chain, load the residents register."""

from __future__ import annotations

import time
from pathlib import Path

import click

from smartcity.core.cli import command_errors, database, read_file


@click.group("participation")
def group() -> None:
    """Citizen participation: votes' hash chains, the residents register."""


@group.command("verify-chain")
@click.argument("vote", type=int)
def verify_chain(vote: int) -> None:
    """Recompute VOTE's whole hash chain; exit status 1 when a link, the count or the head does not hold."""

    @command_errors
    def run() -> None:
        from smartcity.participation import votes_chain

        db = database()
        started = time.perf_counter()
        with db.session() as s:
            found = votes_chain.verify_chain(s, vote)
        took = time.perf_counter() - started
        if found.ok:
            click.echo(f"vote {vote}: chain intact, {found.ballots} ballots, head {found.head} ({took:.2f} s)")
            if found.waiting:
                click.echo(f"  {found.waiting} ballots wait for their batch to be sealed")
            return
        click.secho(f"vote {vote}: chain BROKEN at ballot {found.broken_at} of {found.ballots}", fg="red", err=True)
        raise SystemExit(1)

    run()


@group.command("load-census")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--show", default=10, show_default=True, help="Skipped rows to print.")
def load_census(file: Path, show: int) -> None:
    """Replace the residents register with FILE.csv (columns: resident_id, or name and birth_date; district;
    neighbourhood; birth_year). Only keyed hashes of the ids and names are stored."""

    @command_errors
    def run() -> None:
        from smartcity.participation import verification

        text = read_file(file).decode("utf-8-sig")
        result = verification.load_census(database(), text)
        click.echo(f"{file.name}: {result.loaded} residents loaded, {len(result.skipped)} rows skipped")
        for line, reason in result.skipped[:show]:
            click.echo(f"  line {line}: {reason}")

    run()


def commands() -> list:
    return [group]
