"""`smartcity assets …` and `smartcity import assets FILE.csv`: the official lists, nearest assets."""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.core.cli import command_errors, database, read_file


@click.command("assets")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", required=True, help="cctv, wifi, air_sensor, noise_sensor, sensor, streetlight, other.")
@click.option(
    "--format",
    "fmt",
    default=None,
    help="national-cctv, seoul-safety-cctv, wifi, sdot or generic; detected from the header if omitted.",
)
@click.option("--source", default=None, help="Name of the source list (default: the file name).")
@click.option("--show", "show", default=10, show_default=True, help="Skipped/warned rows to print per reason.")
def import_assets(file: Path, kind: str, fmt: str | None, source: str | None, show: int) -> None:
    """Load assets from a CSV list. Bad rows are skipped and reported with their reasons; re-importing the
    same file adds nothing."""

    @command_errors
    def run() -> None:
        from smartcity.assets import service

        data = read_file(file)
        db = database()
        chosen, rows = service.read_rows(data, fmt)
        click.echo(f"{file.name}: format {chosen.name} ({chosen.description}), {len(rows)} rows")
        with db.session() as s, click.progressbar(length=len(rows), label=f"importing {kind}") as bar:
            report = service.import_csv(s, data, kind, source=source or file.name, fmt=chosen.name, progress=bar.update)
        click.echo(report.summary())
        for title, problems in (("skipped", report.skipped), ("warnings", report.warnings)):
            for reason, count in report.reasons(problems).most_common():
                click.echo(f"  {title}: {count} × {reason}")
                examples = [p for p in problems if p.reason.split(":")[0] == reason][:show]
                for p in examples:
                    click.echo(f"    line {p.row}: {p.reason}")

    run()


@click.group("assets")
def group() -> None:
    """City assets: cameras, Wi-Fi access points, sensors."""


group.add_command(import_assets, "import")


@group.command("nearest")
@click.option("--kind", default="cctv", show_default=True)
@click.option("-k", default=5, show_default=True)
@click.argument("lat", type=float)
@click.argument("lon", type=float)
def nearest_cmd(kind: str, k: int, lat: float, lon: float) -> None:
    """The K assets of a kind nearest a point."""
    from smartcity.assets import service

    @command_errors
    def run() -> None:
        for ref, d in service.nearest(database(), kind, lat, lon, k):
            click.echo(f"{d:8.1f} m\t{ref.id}\t{ref.name}\t{ref.lat:.6f},{ref.lon:.6f}")

    run()


def commands() -> list[click.Command]:
    """`smartcity assets …`, and `assets` in the core's `smartcity import` group."""
    return [group, click.Group("import", commands={"assets": import_assets})]
