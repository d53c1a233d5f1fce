"""`smartcity opendata …`: load files into the catalogue, refresh the platform's datasets."""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.core.cli import command_errors, database, read_file


@click.group("opendata")
def group() -> None:
    """Open Data Plaza: the catalogue of the city's datasets."""


@group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_name", required=True, help="The dataset's name (made if it does not exist).")
@click.option("--resource", "resource_name", default=None, help="The resource's name (default: the file's name).")
@click.option("--title", default=None, help="A new dataset's Korean title (default: its name).")
@click.option("--organisation", default=None, help="A new dataset's organisation (its name).")
@click.option("--key", default=None, help="The column identifying a row across versions (else whole rows compare).")
@click.option("--type", "types", multiple=True, metavar="COLUMN=TYPE", help="Declare a column's type.")
@click.option("--show", default=10, show_default=True, help="How many problems to print.")
def load(
    file: Path,
    dataset_name: str,
    resource_name: str | None,
    title: str | None,
    organisation: str | None,
    key: str | None,
    types: tuple[str, ...],
    show: int,
) -> None:
    """Load a CSV, XLSX, JSON, GeoJSON or Parquet FILE as a resource of a dataset: typed columns, one
    publication (a new version if the resource exists), all or nothing. Values that do not fit their
    column are listed by line."""

    @command_errors
    def run() -> None:
        from smartcity.core.auth import Identity
        from smartcity.core.errors import SmartCityError
        from smartcity.opendata import load_progress, loading, publishing
        from smartcity.opendata.models import Dataset

        declared = dict(t.split("=", 1) for t in types if "=" in t)
        data = read_file(file)
        db = database()
        name = resource_name or file.stem
        # The load is a row like a page's: the publishers' pages follow it from any process.
        tracker = load_progress.start(
            db, dataset=dataset_name, resource=name, filename=file.name, size=len(data), owner="cli", via="cli"
        )
        click.echo(f"load {tracker.id} (/opendata/publish/loads/{tracker.id})")
        who = Identity(username="cli", role="admin", via="session")
        try:
            loaded = loading.load_bytes(data, file.name, declared)
            tracker.typed(len(loaded.rows), loaded.problem_count)
            click.echo(
                f"{file.name}: {loaded.encoding}, {len(loaded.rows)} rows, "
                + ", ".join(f"{c.id} {c.type}" for c in loaded.columns)
            )
            with db.session() as s, click.progressbar(length=len(loaded.rows), label="publishing") as bar:

                def stored(rows: int) -> None:
                    bar.update(rows)
                    tracker(rows)

                dataset = s.query(Dataset).filter_by(name=dataset_name).one_or_none()
                if dataset is None:
                    info = publishing.DatasetInfo(
                        dataset_name, title_ko=title or dataset_name, organisation=organisation
                    )
                    dataset = publishing.save_dataset(s, who, info)
                fmt = loading.format_of(file.name)
                done = publishing.publish_loaded(
                    s, who, dataset, name, loaded, data, file.name, fmt=fmt, key=key, progress=stored
                )
            tracker.done(done)
        except SmartCityError as exc:
            tracker.failed(exc)
            raise
        except BaseException:
            tracker.failed(SmartCityError(load_progress.STOPPED))
            raise
        finally:
            db.dispose()
        click.echo(
            f"published {done.dataset}/{done.resource} version {done.version}: {done.rows} rows "
            f"(+{done.added} -{done.removed} ~{done.changed}), {done.problem_count} problems"
        )
        for p in done.problems[:show]:
            click.echo(f"  line {p['line']}: {p['column'] or ''} {p['value']!r}: {p['problem']}")

    run()


@group.command("refresh")
def refresh() -> None:
    """Publish every platform dataset the modules declare, now."""
    from smartcity.opendata import feeds

    db = database()
    try:
        for line in feeds.refresh_all(db):
            click.echo(line)
    finally:
        db.dispose()
