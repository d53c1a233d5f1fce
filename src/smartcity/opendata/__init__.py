"""Open Data Plaza: one catalogue of the city's datasets — files publishers load and the platform's own live
data that modules declare (`Module.datasets`) — spoken as CKAN's Action API.

Who may do what (declared in `module` below, checked by `core.auth`):
  - anyone reads the published catalogue and its rows (open data);
  - opendata.publish  data publishers (the core's `publisher` role and `data_publisher`): load files, publish
                      and describe datasets, upload and mask documents;
  - opendata.manage   administrators: everything, organisations.

CLI: `smartcity opendata load FILE --dataset NAME [--resource NAME]`, `smartcity opendata refresh`.
See docs/opendata.md.
"""

from __future__ import annotations

from smartcity.core.i18n import N_
from smartcity.core.jobs import Job
from smartcity.core.module import HomeAction, Module, NavLink, Role
from smartcity.opendata.settings import OpendataSettings


def _seed(session, profile=None):
    """An organisation for each of the city's departments (idempotent)."""
    from smartcity.opendata import catalogue

    return catalogue.seed_organisations(session)


def _refresh(db, settings):
    """Publish the module datasets an event marked, and those not published for a while."""
    from smartcity.opendata import feeds

    if not settings.of(OpendataSettings).live_datasets:
        return []
    return feeds.refresh_all(db, only_due=True)


def _demo(db, profile):
    """The catalogue entries of the module datasets, published by the server's first refresh (feeds.demo)."""
    from smartcity.opendata import feeds

    return feeds.demo(db, profile)


def _setup(app, context) -> None:
    """Listen for the events the declared datasets follow; GET datastore_search goes first in the routes."""
    from smartcity.opendata import ckan, feeds

    feeds.setup(app, context)
    ckan.on_install(app)


def _flush_usage(db, settings):
    """Write the Seoul-style OpenAPI calls counted in memory (opendata/keys.py)."""
    from smartcity.opendata import keys

    return keys.flush_usage(db)


module = Module(
    name="opendata",
    audit="smartcity.opendata.audit_words:WORDS",
    routers=(
        "smartcity.opendata.ckan:router",
        "smartcity.opendata.downloads:router",
        "smartcity.opendata.documents_pages:router",
        "smartcity.opendata.catalogue_pages:router",
        "smartcity.opendata.seoul_api:router",
        "smartcity.opendata.openapi_pages:router",
        "smartcity.opendata.rows:router",
        "smartcity.opendata.dcat:router",
    ),
    nav=(
        NavLink(N_("Open data"), "/opendata"),
        NavLink(N_("Publish data"), "/opendata/publish", "opendata.publish"),
    ),
    home_actions=(HomeAction(N_("Find open data"), "/opendata"),),
    roles=(Role("data_publisher", N_("Data publisher: loads and publishes open datasets")),),
    # The core's `publisher` (the demo's) and our `data_publisher` are one job: both load and publish data.
    permissions={"opendata.publish": ("publisher", "data_publisher"), "opendata.manage": ()},
    jobs=(Job("opendata.refresh", 5, _refresh), Job("opendata.openapi_usage", 5, _flush_usage)),
    error_formats={
        "/api/3/action": "smartcity.opendata.ckan:render_error",
        "/api/action": "smartcity.opendata.ckan:render_error",
        "/openapi/": "smartcity.opendata.seoul_api:render_error",
        "/opendata/rows/": "smartcity.opendata.rows:render_error",
    },
    cli="smartcity.opendata.cli:group",
    seed=_seed,
    demo=_demo,
    setup=_setup,
    models="smartcity.opendata.models",
    settings=OpendataSettings,
)
