"""Community Mapping: citizens raise issues on the map; the city routes, works and answers them.

Who may do what (declared in `module` below, checked by `core.auth`; the service adds the unit scope):
  - anyone (also anonymous, unless SMARTCITY_REPORTS_ALLOW_ANONYMOUS=false) files and supports reports;
    signed-in users hold reports.create;
  - reports.work      staff: work the reports of their own unit (transition, assign, notes, reassign, merge);
  - reports.dashboard staff: dashboard and CSV export of their own unit;
  - reports.manage    administrators: every unit, the routing table, categories, templates, campaigns.
"""

from __future__ import annotations

from smartcity.core.i18n import N_
from smartcity.core.jobs import Job
from smartcity.core.module import EVERY_ROLE, Dataset, HomeAction, Module, NavLink
from smartcity.reports.settings import ReportsSettings


def _setup(app, context) -> None:
    """The Open311 edge wraps the app (its fast GET route goes first)."""
    from smartcity.reports import open311

    open311.on_install(app)


def _purge_contacts(db, settings):
    from smartcity.reports import service

    with db.session() as s:
        return service.purge_contacts(s, days=settings.of(ReportsSettings).contact_retention_days)


def _fetch_media(db, settings):
    from smartcity.reports import service

    # Off by default: the links partners send are kept and shown as given (see docs/open311.md).
    return service.fetch_media(db, settings) if settings.of(ReportsSettings).fetch_media_urls else 0


def _demo(db, profile):
    """Demo reports across the districts, in every status (idempotent)."""
    from smartcity.reports.demo_data import demo_reports

    yield from demo_reports(db, profile)


def _seed(session, profile=None):
    """The taxonomy and default templates (idempotent)."""
    from smartcity.reports import service

    return service.seed(session, profile)


def _commands() -> list:
    """`smartcity reports …` and `smartcity open311 keys …`."""
    from smartcity.reports.open311_cli import cli as open311_cli

    return [_reports_cli(), open311_cli]


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
    @click.option(
        "--map",
        "mapping",
        default="",
        metavar="COLUMN=FIELD,…",
        help="Which column is which of our fields: external_id, category, lat, lon, title, description, "
        "address, status, requested_at, updated_at (a column already named so needs none).",
    )
    @click.option(
        "--updates",
        "updates_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="A second CSV with each request's updates (external_id, at, status, text).",
    )
    @click.option("--updates-map", default="", metavar="COLUMN=FIELD,…", help="Its columns, as --map.")
    @click.option("--encoding", default="utf-8", show_default=True, help="The files' encoding (e.g. cp949).")
    def import_(file: Path, mapping: str, updates_file: Path | None, updates_map: str, encoding: str) -> None:
        """Import FILE.csv, a 311 system's past requests with their original dates, statuses and updates,
        all or nothing: any problem is listed by row and nothing is stored."""
        from smartcity.core.auth import Identity
        from smartcity.core.cli import city_profile, database
        from smartcity.core.errors import SmartCityError
        from smartcity.reports import service

        db = database()
        profile = city_profile()
        try:
            rows = service.read_csv(
                file.read_text(encoding=encoding),
                service.parse_mapping(mapping, service.IMPORT_FIELDS),
                ("external_id", "category", "lat", "lon", "requested_at"),
            )
            updates = (
                service.read_csv(
                    updates_file.read_text(encoding=encoding),
                    service.parse_mapping(updates_map, service.IMPORT_UPDATE_FIELDS),
                    ("external_id", "at"),
                )
                if updates_file
                else []
            )
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


module = Module(
    name="reports",
    audit="smartcity.reports.audit_words:WORDS",
    routers=(
        "smartcity.reports.api:router",
        "smartcity.reports.open311:router",
        "smartcity.reports.pages:router",
        "smartcity.reports.pages_staff:router",
    ),
    permissions={
        "reports.create": (EVERY_ROLE,),
        "reports.work": ("staff",),
        "reports.dashboard": ("staff",),
        "reports.manage": (),
        "reports.import": (),  # administrators (and Open311 keys of scope open311:import, in open311.py)
    },
    nav=(
        NavLink(N_("Report a problem"), "/reports/new"),
        NavLink(N_("Reports"), "/reports"),
        NavLink(N_("Campaigns"), "/campaigns"),
        NavLink(N_("My reports"), "/reports/mine", "reports.create"),
        NavLink(N_("Work queue"), "/staff/reports", "reports.work"),
        NavLink(N_("Dashboard"), "/staff/dashboard", "reports.dashboard"),
        NavLink(N_("Routing"), "/admin/reports/routes", "reports.manage"),
    ),
    home_actions=(
        HomeAction(N_("Report a problem"), "/reports/new", primary=True),
        HomeAction(N_("See reports"), "/reports"),
    ),
    home_pins=("/reports.geojson?limit=100",),  # the newest unresolved reports
    jobs=(Job("reports.retention", 3600, _purge_contacts), Job("reports.fetch_media", 30, _fetch_media)),
    error_formats={"/open311": "smartcity.reports.open311_wire:render_error"},
    renderers=(
        ("smartcity.reports.queries:ReportPage", "json", "smartcity.reports.renderers:page_json_response"),
        ("smartcity.reports.queries:ReportPage", "geojson", "smartcity.reports.renderers:page_geojson"),
        ("smartcity.reports.views:ReportPoints", "geojson", "smartcity.reports.renderers:points_geojson"),
        ("smartcity.reports.dashboard:Dashboard", "json", "smartcity.reports.renderers:dashboard_json"),
        # The pages' read models: HTML through a template, and their data twins.
        ("smartcity.reports.pages_common:ReportView", "html", "smartcity.reports.pages_common:report_html"),
        ("smartcity.reports.pages_common:ReportView", "json", "smartcity.reports.pages_common:report_json"),
        ("smartcity.reports.pages_common:ReportsMap", "html", "smartcity.reports.pages_common:reports_map_html"),
        ("smartcity.reports.pages_common:ReportsMap", "json", "smartcity.reports.pages_common:reports_map_json"),
        ("smartcity.reports.pages_common:ReportsMap", "geojson", "smartcity.reports.pages_common:reports_map_geojson"),
        ("smartcity.reports.pages_common:QueuePage", "html", "smartcity.reports.pages_common:queue_html"),
        ("smartcity.reports.pages_common:QueuePage", "json", "smartcity.reports.pages_common:queue_json"),
        ("smartcity.reports.pages_common:QueuePage", "geojson", "smartcity.reports.pages_common:queue_geojson"),
        ("smartcity.reports.pages_common:MyReportsPage", "html", "smartcity.reports.pages_common:my_reports_html"),
        ("smartcity.reports.pages_common:MyReportsPage", "json", "smartcity.reports.pages_common:my_reports_json"),
        ("smartcity.reports.pages_common:CampaignList", "html", "smartcity.reports.pages_common:campaigns_html"),
        ("smartcity.reports.pages_common:CampaignList", "json", "smartcity.reports.pages_common:campaigns_json"),
        ("smartcity.reports.pages_common:CampaignPage", "html", "smartcity.reports.pages_common:campaign_html"),
        ("smartcity.reports.pages_common:CampaignPage", "json", "smartcity.reports.pages_common:campaign_json"),
        ("smartcity.reports.pages_common:CampaignPage", "geojson", "smartcity.reports.pages_common:campaign_geojson"),
        ("smartcity.reports.pages_common:CampaignPage", "csv", "smartcity.reports.pages_common:campaign_csv"),
        ("smartcity.reports.pages_common:DashboardPage", "html", "smartcity.reports.pages_common:dashboard_html"),
        ("smartcity.reports.pages_common:DashboardPage", "json", "smartcity.reports.pages_common:dashboard_page_json"),
    ),
    settings=ReportsSettings,
    setup=_setup,
    cli=_commands,
    seed=_seed,
    demo=_demo,
    models="smartcity.reports.models",
    datasets=(
        Dataset(
            "reports",
            "커뮤니티 매핑 시민 신고",
            "smartcity.reports.opendata_rows:public_reports",
            "시민이 올린 신고입니다. 연락처는 담지 않고, 민감한 분류의 위치는 약 100 m 단위로 반올림합니다.",
            events=("report.",),
            key="id",
            rows_by_key="smartcity.reports.opendata_rows:public_reports_by_id",
            title_en="Community Mapping reports",
            description_en=(
                "Citizens' reports without contact data; sensitive categories' locations rounded to about 100 m."
            ),
            tags=("reports", "civic"),
            theme="society",
        ),
        Dataset(
            "daily-counts",
            "자치구별 일일 신고 건수",
            "smartcity.reports.opendata_rows:daily_counts",
            "자치구별·일별로 접수된 신고 건수입니다.",
            events=("report.created", "report.imported"),
            key="key",
            title_en="Reports per district and day",
            description_en="Reports filed per district and day.",
            tags=("reports", "statistics"),
            theme="society",
        ),
    ),
)
