"""Community Mapping: citizens raise issues on the map; the city routes, works and answers them.

Who may do what (declared here, checked by `core.auth`; the service adds the unit scope):
  - anyone (also anonymous, unless SMARTCITY_REPORTS_ALLOW_ANONYMOUS=false) files and supports reports;
    signed-in users hold reports.create;
  - reports.work      staff: work the reports of their own unit (transition, assign, notes, reassign, merge);
  - reports.dashboard staff: dashboard and CSV export of their own unit;
  - reports.manage    administrators: every unit, the routing table, categories, templates, campaigns.
"""

from __future__ import annotations

import importlib
import importlib.util

from smartcity.core.auth import grant

grant("reports.create", "citizen", "staff", "guardian", "operator", "publisher")
grant("reports.work", "staff")
grant("reports.dashboard", "staff")
grant("reports.manage")
grant("reports.import")  # administrators (and Open311 keys of scope open311:import, in open311.py)


def install(app) -> None:
    """Routes, jobs and settings of the module. open311.py and pages.py join in when they exist: their
    `router` is included and their optional `on_install(app)` called."""
    from smartcity.core.jobs import job
    from smartcity.reports import api, service

    service.configure(app.state.db, app.state.settings)
    app.include_router(api.router)
    for name in ("open311", "pages"):
        if importlib.util.find_spec(f"smartcity.reports.{name}") is not None:
            module = importlib.import_module(f"smartcity.reports.{name}")
            router = getattr(module, "router", None)
            if router is not None:
                app.include_router(router)
            hook = getattr(module, "on_install", None)  # e.g. register_error_format for /open311
            if hook is not None:
                hook(app)

    @job("reports.retention", every=3600)
    def _purge(db, settings):
        with db.session() as s:
            return service.purge_contacts(s, days=settings.reports_contact_retention_days)

    @job("reports.fetch_media", every=30)
    def _fetch_media(db, settings):
        # Off by default: the links partners send are kept and shown as given (see docs/open311.md).
        return service.fetch_media(db, settings) if settings.reports_fetch_media_urls else 0


def demo(db, profile):
    """Demo reports across the districts, in every status (idempotent)."""
    from smartcity.reports.demo_data import demo_reports

    yield from demo_reports(db, profile)


def seed(session, profile=None):
    """The module's seed hook: the taxonomy and default templates (idempotent)."""
    from smartcity.reports import service

    return service.seed(session, profile)


def __getattr__(name):
    # `smartcity reports …` and `smartcity open311 keys …`, imported only when the CLI asks for them.
    if name == "cli":
        from smartcity.reports.open311 import cli as open311_cli

        return [_reports_cli(), open311_cli]
    raise AttributeError(name)


def _reports_cli():
    """`smartcity reports import FILE.csv …`: another 311 system's history."""
    import sys
    from pathlib import Path

    import click

    @click.group("reports")
    def reports() -> None:
        """Community Mapping: import another 311 system's history."""

    @reports.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--map", "mapping", default="", metavar="COLUMN=FIELD,…",
                  help="Which column is which of our fields: external_id, category, lat, lon, title, description, "
                       "address, status, requested_at, updated_at (a column already named so needs none).")
    @click.option("--updates", "updates_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  default=None, help="A second CSV with each request's updates (external_id, at, status, text).")
    @click.option("--updates-map", default="", metavar="COLUMN=FIELD,…", help="Its columns, as --map.")
    @click.option("--encoding", default="utf-8", show_default=True, help="The files' encoding (e.g. cp949).")
    def import_(file: Path, mapping: str, updates_file: Path | None, updates_map: str, encoding: str) -> None:
        """Import FILE.csv, a 311 system's past requests with their original dates, statuses and updates,
        all or nothing: any problem is listed by row and nothing is stored."""
        from smartcity.core.auth import Identity
        from smartcity.core.city import load_profile
        from smartcity.core.db import Database
        from smartcity.core.errors import SmartCityError
        from smartcity.reports import service
        from smartcity.settings import get_settings

        settings = get_settings()
        db = Database(settings.database_url)
        profile = load_profile(settings.city)
        try:
            rows = service.read_csv(file.read_text(encoding=encoding),
                                    service.parse_mapping(mapping, service.IMPORT_FIELDS),
                                    ("external_id", "category", "lat", "lon", "requested_at"))
            updates = service.read_csv(updates_file.read_text(encoding=encoding),
                                       service.parse_mapping(updates_map, service.IMPORT_UPDATE_FIELDS),
                                       ("external_id", "at")) if updates_file else []
            operator = Identity(username="cli", role="admin", via="session")
            with db.session() as s:
                done = service.import_history(s, operator, rows, updates, tz=profile.tz, language=profile.language)
        except (SmartCityError, UnicodeDecodeError) as exc:
            message = exc.message if isinstance(exc, SmartCityError) else f"the file is not {encoding}: {exc}"
            click.secho(f"error: {message}", fg="red", err=True)
            for d in getattr(exc, "details", None) or []:
                where = f"{d['file']} " if d.get("file") else ""
                click.echo(f"  {where}row {d['row']}: {d['field']}: {d['problem']}", err=True)
            sys.exit(2)
        finally:
            db.dispose()
        click.echo(f"imported {done.reports} requests and {done.updates} updates from {file.name}")

    return reports
