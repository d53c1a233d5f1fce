"""Community Mapping's settings: SMARTCITY_REPORTS_<FIELD> (the Open311 CORS list keeps its name,
SMARTCITY_OPEN311_CORS_ORIGINS). Declared in `smartcity.reports.module`; the service reads them from its
store's context (`common.reports_settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.settings import Settings, setting


@dataclass(frozen=True)
class ReportsSettings:
    public_url: str = setting(
        "",
        "Public base URL of the site, for links in report notifications, feeds and Open311. Empty: the address "
        "it is served at (http://SMARTCITY_HOST:SMARTCITY_PORT); set it behind a proxy or a public name.",
    )
    allow_anonymous: bool = setting(
        True, "Let people report without signing in (as FixMyStreet does); contact details stay optional."
    )
    max_photos: int = setting(6, "Most photos one report may carry.")
    max_photo_bytes: int = setting(10 * 1024 * 1024, "Largest photo upload accepted, in bytes.")
    fetch_media_urls: bool = setting(
        False,
        "Fetch the photos behind a partner's Open311 media_url in the background (public addresses only, "
        "images only, at most SMARTCITY_REPORTS_MAX_PHOTO_BYTES). Off: the links are kept and shown as given.",
    )
    fetch_media_allow: str = setting(
        "",
        "Networks (comma-separated CIDR, e.g. 10.20.0.0/16) a media_url may be fetched from although private: "
        "a partner FixMyStreet on the city's own network. Empty: public addresses only.",
    )
    fallback_unit: str = setting(
        "",
        "Unit that receives reports no routing rule or district unit covers. Empty: the city profile's "
        "fallback_unit; with neither, such a report is refused (no_unit) and nothing is stored.",
    )
    # Named as before the module had settings of its own: partners' deployments already set it.
    open311_cors_origins: str = setting(
        "*",
        "Origins whose browser apps may call the Open311 API (comma-separated, * for any; empty: none). "
        "No cookies cross origins: reads are public and POST carries its api_key.",
        env="SMARTCITY_OPEN311_CORS_ORIGINS",
    )
    contact_retention_days: int = setting(
        365, "Days after a report is closed before the reporter's contact details are deleted."
    )


def public_url(settings: Settings) -> str:
    """The base of the site's absolute links, without a trailing slash: the setting, else as served."""
    return (settings.of(ReportsSettings).public_url or settings.site_url).rstrip("/")
