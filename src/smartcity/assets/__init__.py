"""City asset registry (u-Seoul Net): CCTV cameras, Wi-Fi access points, sensors — kind, position,
district, attributes — with CSV import, a public JSON/GeoJSON API and an exported `nearest()`.

CLI: `smartcity import assets FILE.csv --kind cctv` (also `smartcity assets import …`). See docs/assets.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.core.auth import grant

grant("assets.manage")  # administrators only; reading is public (open data)


def install(app) -> None:
    from smartcity.assets.api import router

    app.include_router(router)


# --- CLI ------------------------------------------------------------------------------------------


@click.command("assets")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", required=True, help="cctv, wifi, air_sensor, noise_sensor, sensor, streetlight, other.")
@click.option("--format", "fmt", default=None,
              help="national-cctv, seoul-safety-cctv, wifi, sdot or generic; detected from the header if omitted.")
@click.option("--source", default=None, help="Name of the source list (default: the file name).")
@click.option("--show", "show", default=10, show_default=True, help="Skipped/warned rows to print per reason.")
def import_assets(file: Path, kind: str, fmt: str | None, source: str | None, show: int) -> None:
    """Load assets from a CSV list. Bad rows are skipped and reported with their reasons; re-importing the
    same file adds nothing."""
    from smartcity.cli import _db, _read, reports_errors

    @reports_errors
    def run() -> None:
        from smartcity.assets import service

        data = _read(file)
        db = _db()
        chosen, rows = service.read_rows(data, fmt)
        click.echo(f"{file.name}: format {chosen.name} ({chosen.description}), {len(rows)} rows")
        with db.session() as s, click.progressbar(length=len(rows), label=f"importing {kind}") as bar:
            report = service.import_csv(s, data, kind, source=source or file.name, fmt=chosen.name,
                                        progress=bar.update)
        click.echo(report.summary())
        for title, problems in (("skipped", report.skipped), ("warnings", report.warnings)):
            for reason, count in report.reasons(problems).most_common():
                click.echo(f"  {title}: {count} × {reason}")
                examples = [p for p in problems if p.reason.split(":")[0] == reason][:show]
                for p in examples:
                    click.echo(f"    line {p.row}: {p.reason}")

    run()


@click.group("assets")
def _group() -> None:
    """City assets: cameras, Wi-Fi access points, sensors."""


_group.add_command(import_assets, "import")


@_group.command("nearest")
@click.option("--kind", default="cctv", show_default=True)
@click.option("-k", default=5, show_default=True)
@click.argument("lat", type=float)
@click.argument("lon", type=float)
def nearest_cmd(kind: str, k: int, lat: float, lon: float) -> None:
    """The K assets of a kind nearest a point."""
    from smartcity.assets import service
    from smartcity.cli import _db, reports_errors

    @reports_errors
    def run() -> None:
        for ref, d in service.nearest(_db(), kind, lat, lon, k):
            click.echo(f"{d:8.1f} m\t{ref.id}\t{ref.name}\t{ref.lat:.6f},{ref.lon:.6f}")

    run()


def __getattr__(name: str):
    # `smartcity.cli` looks up each module's `cli` group once, while its own `import` group exists: that
    # is the moment to add `smartcity import assets` beside `import districts`, whichever module was
    # imported first. (PEP 562 module __getattr__: runs only because `cli` is not a plain attribute.)
    if name == "cli":
        import sys

        main_cli = sys.modules.get("smartcity.cli")
        group = getattr(main_cli, "import_", None)
        if isinstance(group, click.Group) and "assets" not in group.commands:
            group.add_command(import_assets, "assets")
        return _group
    raise AttributeError(name)


def demo(db, profile):
    """Synthetic cameras and Wi-Fi points in every district, denser in Gangnam (idempotent). Made up:
    the demo ships no official lists; import the real ones with `smartcity import assets`."""
    from smartcity.assets.service import demo_assets

    yield demo_assets(db)
