"""Community Mapping, the domain: one surface over the modules it is made of (as httpx re-exports its
private modules), so callers write `from smartcity.reports import service as S` and need not know where a
function lives. No HTTP here: the JSON API, Open311, the pages and the CLI all call these functions.

    common         statuses, limits, settings, text and link checks
    taxonomy       categories, groups, attributes, the seed
    routing        which unit receives a category's reports in a district
    views          read models of one report
    intake         a new report: every problem at once, then stored
    queries        the report search every surface uses
    workflow       the staff workflow
    responses      response templates
    notifications  the reporter's messages and area subscriptions
    feeds          feed entries
    campaigns      campaigns
    exports        CSV and GeoJSON
    dashboard      the dashboard and the contact purge
    history        importing another 311 system's history


Every function takes the caller's SQLAlchemy session (the caller owns the transaction) and, where a rule
depends on who is asking, the caller's `Identity`. Errors are the platform's (`core.errors`):

    InvalidInput        bad field, unknown category (code "unknown_category"), bad attribute, illegal transition
    OutsideCity         the point is not inside the city
    TooLarge            a photo over the size limit
    NotAuthenticated    anonymous where sign-in is needed
    PermissionDenied    e.g. staff working a report of another unit
    NotFound            no such report, category, campaign, template
    Conflict            a race on an idempotency key
"""

from smartcity.reports.campaigns import CampaignIn, campaign_view, get_campaign, list_campaigns, save_campaign
from smartcity.reports.common import (
    CLOSED_STATUSES,
    DATATYPES,
    H3_RES,
    HEAT_RES,
    MAX_ADDRESS,
    MAX_DESCRIPTION,
    MAX_MEDIA_URL,
    MAX_PAGE_SIZE,
    MAX_TITLE,
    MAX_UPDATE,
    NEARBY_M,
    OPEN_STATUSES,
    SOURCES,
    STATUS_NAMES,
    STATUSES,
    TRANSITIONS,
    _loc,
    open311_status,
    parse_bbox,
    profile_of,
    reports_settings,
    settings_of,
    status_name,
    uploads_root,
)
from smartcity.reports.dashboard import Dashboard, dashboard, dashboard_view, purge_contacts
from smartcity.reports.exports import CSV_FIELDS, campaign_points, export_table
from smartcity.reports.feeds import FeedEntry, as_feed, feed_entries
from smartcity.reports.history import (
    IMPORT_FIELDS,
    IMPORT_STATUSES,
    IMPORT_UPDATE_FIELDS,
    MAX_IMPORT_ROWS,
    ImportedHistory,
    import_history,
    parse_mapping,
    read_csv,
)
from smartcity.reports.intake import (
    IMPORT_KEY_SCOPE,
    PHONE,
    CreatedReport,
    NewReport,
    create_report,
    fetch_media,
    may_import,
    submission_fingerprint,
)
from smartcity.reports.notifications import EMAIL, MESSAGES, feedback_token, subscribe, unsubscribe
from smartcity.reports.photos import Upload
from smartcity.reports.queries import (
    ORDERS,
    Circle,
    MyReports,
    NearbyReport,
    ReportPage,
    ReportQuery,
    my_reports,
    nearby,
    overdue,
    search,
    work_queue,
)
from smartcity.reports.responses import TemplateIn, delete_template, list_templates, save_template, template_view
from smartcity.reports.routing import RouteView, default_unit_code, delete_route, route_for, routing_table, set_route
from smartcity.reports.taxonomy import (
    DEFAULT_TEMPLATES,
    TAXONOMY_FILE,
    CategoryIn,
    attribute_view,
    category_view,
    check_attribute_definitions,
    get_category,
    keywords_in,
    list_categories,
    list_groups,
    save_category,
    seed,
    validate_attributes,
)
from smartcity.reports.updates import UpdateOutcome, add_update, partner_update, status_route, updates_since
from smartcity.reports.views import (
    Contact,
    can_work,
    contact_of,
    detail_view,
    event_data,
    get_report,
    photo_file,
    photo_url,
    photos_of,
    public_view,
    timeline,
    update_view,
)
from smartcity.reports.workflow import (
    MAX_BULK,
    BulkOutcome,
    add_note,
    assign,
    bulk_action,
    feedback,
    is_reporter,
    merge,
    reassign,
    support,
    supporter_key,
    transition,
)

__all__ = [
    "CLOSED_STATUSES",
    "CSV_FIELDS",
    "CampaignIn",
    "CategoryIn",
    "Circle",
    "Contact",
    "CreatedReport",
    "DATATYPES",
    "DEFAULT_TEMPLATES",
    "Dashboard",
    "EMAIL",
    "FeedEntry",
    "H3_RES",
    "HEAT_RES",
    "IMPORT_FIELDS",
    "IMPORT_KEY_SCOPE",
    "IMPORT_STATUSES",
    "IMPORT_UPDATE_FIELDS",
    "ImportedHistory",
    "MAX_ADDRESS",
    "MAX_DESCRIPTION",
    "MAX_IMPORT_ROWS",
    "MAX_MEDIA_URL",
    "MAX_PAGE_SIZE",
    "MAX_TITLE",
    "MAX_UPDATE",
    "MESSAGES",
    "NEARBY_M",
    "NearbyReport",
    "NewReport",
    "OPEN_STATUSES",
    "ORDERS",
    "PHONE",
    "ReportPage",
    "ReportQuery",
    "RouteView",
    "SOURCES",
    "STATUSES",
    "STATUS_NAMES",
    "TAXONOMY_FILE",
    "TRANSITIONS",
    "TemplateIn",
    "UpdateOutcome",
    "Upload",
    "_loc",
    "add_note",
    "add_update",
    "assign",
    "as_feed",
    "attribute_view",
    "campaign_points",
    "campaign_view",
    "can_work",
    "category_view",
    "check_attribute_definitions",
    "contact_of",
    "create_report",
    "dashboard",
    "dashboard_view",
    "default_unit_code",
    "delete_route",
    "delete_template",
    "detail_view",
    "event_data",
    "export_table",
    "feed_entries",
    "feedback",
    "feedback_token",
    "fetch_media",
    "get_campaign",
    "get_category",
    "get_report",
    "import_history",
    "is_reporter",
    "keywords_in",
    "list_campaigns",
    "list_categories",
    "list_groups",
    "list_templates",
    "may_import",
    "merge",
    "bulk_action",
    "BulkOutcome",
    "MAX_BULK",
    "my_reports",
    "MyReports",
    "nearby",
    "open311_status",
    "overdue",
    "parse_bbox",
    "parse_mapping",
    "partner_update",
    "photo_file",
    "photo_url",
    "photos_of",
    "public_view",
    "purge_contacts",
    "read_csv",
    "reassign",
    "route_for",
    "routing_table",
    "save_campaign",
    "save_category",
    "save_template",
    "search",
    "seed",
    "set_route",
    "profile_of",
    "reports_settings",
    "settings_of",
    "status_name",
    "status_route",
    "submission_fingerprint",
    "subscribe",
    "support",
    "supporter_key",
    "template_view",
    "timeline",
    "transition",
    "unsubscribe",
    "update_view",
    "updates_since",
    "uploads_root",
    "validate_attributes",
    "work_queue",
]
