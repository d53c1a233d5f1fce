"""`smartcity sensing …`: the S-DoT sensor list and raw exports, the roll-up job by hand."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from smartcity.core.cli import command_errors, database, read_file

if TYPE_CHECKING:
    from smartcity.sensing.ngsi_entities import CensusDifference


@click.group("sensing")
def group() -> None:
    """City sensors: the S-DoT list and readings, roll-ups."""


def _defects(problems, show: int) -> None:
    by_reason: dict[str, list] = {}
    for p in problems:
        by_reason.setdefault(p.reason.split(":")[0], []).append(p)
    for reason, found in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        click.echo(f"  {len(found)} × {reason}")
        for p in found[:show]:
            click.echo(f"    line {getattr(p, 'line', None) or getattr(p, 'row', '?')}: {p.reason}")


@group.command("import-sensors")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--show", default=10, show_default=True, help="Rows to print per reason.")
def import_sensors(file: Path, show: int) -> None:
    """Register the sensors of an S-DoT sensor list (시리얼, 위도, 경도) as assets of kind `sensor`."""

    @command_errors
    def run() -> None:
        from smartcity.sensing import service

        report = service.import_sensors(database(), read_file(file))
        click.echo(report.summary())
        _defects(report.skipped, show)

    run()


@group.command("import-readings")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--show", default=10, show_default=True, help="Rows to print per reason.")
def import_readings(file: Path, show: int) -> None:
    """Store the readings of an S-DoT raw export; rows and readings that cannot be kept are reported by line."""

    @command_errors
    def run() -> None:
        from smartcity.sensing import service

        result = service.import_readings(database(), read_file(file))
        click.echo(result.summary())
        _defects(result.defects, show)

    run()


@group.command("import-wifi")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="The list's name (default: public Wi-Fi standard data).")
@click.option("--show", default=10, show_default=True, help="Rows to print per reason.")
def import_wifi(file: Path, source: str | None, show: int) -> None:
    """Register a public Wi-Fi list's access points (latitude, longitude, place, place_detail…) as assets of
    kind `wifi`, each indoor or outdoor by where it is."""

    @command_errors
    def run() -> None:
        from smartcity.sensing import wifi

        result = wifi.import_access_points(database(), read_file(file), source=source or wifi.SOURCE)
        click.echo(result.summary())
        _defects(result.report.skipped, show)

    run()


@group.command("rollup")
def rollup() -> None:
    """Roll the marked hours up now and prune raw readings past the retention period."""

    @command_errors
    def run() -> None:
        from smartcity.sensing import service

        done = service.roll_up(database())
        click.echo(f"{done.hours} hours and {done.days} days rolled up, {done.pruned} raw readings pruned")

    run()


def _difference_line(d: CensusDifference) -> str:
    what = f"{d.type} (entities)" if d.name == "" else f"{d.type} {d.name} {d.kind or '-'}"
    return f"  {what}: census {d.kept}, entities {d.counted}"


@group.command("ngsi-census")
@click.option(
    "--check", "mode", flag_value="check", help="Compare the census with a full count; exit 1 if they differ."
)
@click.option("--repair", "mode", flag_value="repair", help="Recompute the census from the entities (audited).")
def ngsi_census(mode: str | None) -> None:
    """The NGSI-LD broker's census of entity types and attributes (what /types and /attributes answer): check it
    against a full count of the stored entities, or repair it while the broker keeps writing."""
    if mode is None:
        raise click.UsageError("give --check or --repair")

    @command_errors
    def run() -> int:
        from smartcity.core import audit
        from smartcity.sensing import ngsi_entities

        with database().session() as s:
            if mode == "check":
                found = ngsi_entities.census_differences(s)
            else:
                found = ngsi_entities.repair_census(s)
                audit.record(s, "cli", "ngsi.census_repair", "ngsi_census", None, {"rows": len(found)})
        for d in found:
            click.echo(_difference_line(d))
        if mode == "check":
            click.echo(f"{len(found)} census rows differ from the entities" if found else "the census is right")
            return 1 if found else 0
        click.echo(f"{len(found)} census rows repaired" if found else "the census was right; nothing changed")
        return 0

    click.get_current_context().exit(run())


def commands() -> list[click.Command]:
    return [group]
