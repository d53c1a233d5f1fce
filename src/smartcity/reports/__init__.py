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
    # `smartcity open311 keys …` (the package's click group), imported only when the CLI asks for it.
    if name == "cli":
        from smartcity.reports.open311 import cli

        return cli
    raise AttributeError(name)
