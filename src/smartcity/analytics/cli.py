"""`smartcity analytics …`: import demand data, synthesise a night demand set, aggregate, find hot spots."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path

import click

from smartcity.core.cli import city_profile, command_errors, read_file


@click.group("analytics")
def group() -> None:
    """City analytics: demand data on H3 cells, hot spots."""


def _settings():
    from smartcity.settings import get_settings

    return get_settings()


@group.command("import")
@click.argument("kind", type=click.Choice(["phone", "taxi", "boardings"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--stops", type=click.Path(dir_okay=False, path_type=Path), help="Boardings: the stop list (ARS_ID, X좌표, Y좌표)."
)
@click.option(
    "--day", type=click.DateTime(["%Y-%m-%d"]), help="Boardings: the day they describe (else from the file name)."
)
@click.option("--show", default=10, show_default=True, help="Defects to print per reason.")
def import_(kind: str, file: Path, stops: Path | None, day, show: int) -> None:
    """Import a demand file as Parquet partitioned by day; rows that cannot be kept are reported by line."""

    @command_errors
    def run() -> None:
        import re

        from smartcity.analytics.ingest import import_file

        data = read_file(file)
        when: date | None = day.date() if day else None
        if when is None and (m := re.search(r"(\d{4}-\d{2}-\d{2})", file.name)):
            when = date.fromisoformat(m.group(1))
        rows = max(data.count(b"\n") - 1, 1)
        with click.progressbar(length=rows, label=f"{kind} {file.name}", file=sys.stderr) as bar:
            report = import_file(
                _settings(),
                city_profile(),
                kind,
                data,
                stops=read_file(stops) if stops else None,
                day=when,
                progress=bar.update,
            )
        click.echo(report.summary())
        by_reason: dict[str, list] = {}
        for d in report.defects:
            by_reason.setdefault(d.reason, []).append(d.line)
        for reason, lines in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            click.echo(f"  {len(lines)} × {reason}: line(s) {', '.join(map(str, lines[:show]))}")
        if report.empty_hours:
            click.echo(f"  empty hours: {', '.join(report.empty_hours[:show])}")

    run()


@group.command("synthesize")
@click.option("--rows", type=int, required=True, help="Records to generate.")
@click.option("--days", type=int, default=7, show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default="2026-03-02", show_default=True)
@click.option(
    "--stops", type=click.Path(dir_okay=False, path_type=Path), help="Seoul's bus stop list, to shape the demand."
)
@click.option("--stations", type=click.Path(dir_okay=False, path_type=Path), help="Seoul's subway station list.")
@click.option("--seed", type=int, default=0, show_default=True)
def synthesize(rows: int, days: int, start, stops: Path | None, stations: Path | None, seed: int) -> None:
    """Generate a SYNTHETIC late-night phone-activity set (made up) as the `phone` kind's Parquet files."""

    @command_errors
    def run() -> None:
        from smartcity.analytics import synthetic
        from smartcity.analytics.settings import AnalyticsSettings, data_dir

        settings = _settings()
        analytics = settings.of(AnalyticsSettings)
        profile = city_profile()
        hubs = synthetic.hubs_from(
            profile, read_file(stops) if stops else None, read_file(stations) if stations else None, seed
        )
        with click.progressbar(length=rows, label="synthetic phone activity", file=sys.stderr) as bar:
            synthetic.generate(
                hubs,
                rows,
                data_dir(settings, analytics) / "phone",
                start=start.date(),
                days=days,
                res=analytics.h3_resolution,
                seed=seed,
                progress=bar.update,
            )
        click.echo(f"{rows} synthetic rows written")

    run()


@group.command("cells")
@click.option("--kind", "kinds", multiple=True, default=["phone"], show_default=True)
@click.option("--hours", default="0-5", show_default=True, help="Local hours, e.g. 0-5 or 22,23,0.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="CSV or .parquet file; else stdout.")
def cells(kinds: tuple[str, ...], hours: str, output: Path | None) -> None:
    """Demand per cell × hour × day type (cell-hours under k records suppressed)."""

    @command_errors
    def run() -> None:
        from smartcity.analytics.cells import demand

        found = demand(_settings(), kinds, _hours(hours))
        if output and output.suffix == ".parquet":
            found.to_parquet(output, index=False)
        elif output:
            found.to_csv(output, index=False)
        else:
            click.echo(found.to_csv(index=False), nl=False)

    run()


def _hours(text: str) -> list[int]:
    from smartcity.core.errors import InvalidInput

    found: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            found += list(range(int(a), int(b or a) + 1))
    except ValueError:
        raise InvalidInput(f"hours {text!r}: write them as 0-5 or 22,23,0") from None
    if not found or any(h < 0 or h > 23 for h in found):
        raise InvalidInput(f"hours {text!r}: each between 0 and 23")
    return found


def commands() -> list[click.Command]:
    # The night route planner's commands live in their own file (another part of the module); added when present.
    if importlib.util.find_spec("smartcity.analytics.planner_cli") is not None:
        from smartcity.analytics import planner_cli

        for command in planner_cli.commands:
            group.add_command(command)
    return [group]
