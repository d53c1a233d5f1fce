"""The reports service works in the city its app was given: the profile read once into the store's context,
its languages deciding what is accepted (not a ko/en pair, not the profile file read again per report)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

import smartcity
from smartcity.core.auth import ANONYMOUS
from smartcity.core.context import attach
from smartcity.core.notify import Notification
from smartcity.reports import service as S
from tests.conftest import make_settings
from tests.reports.helpers import new

SEOUL = Path(smartcity.__file__).parent / "cities" / "seoul.toml"


def _city(tmp_path: Path, **changes: str) -> Path:
    """Seoul's profile with some lines changed (name = 'value' lines), as a file of its own."""
    text = SEOUL.read_text(encoding="utf-8")
    for name, value in changes.items():
        line = next(line for line in text.splitlines() if line.startswith(f"{name} = "))
        text = text.replace(line, f"{name} = {value}")
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_filing_and_telling_use_the_profile_read_once_not_the_file_again(db, tmp_path):
    """Regression: filing a report and the reporter's message read the city's TOML file again each time."""
    city = _city(tmp_path, name_en='"Testville"')
    attach(db, make_settings(db.url, tmp_path, city=str(city)))
    city.unlink()  # read when the context was made; a service reading it again now fails
    with db.session() as s:
        done = S.create_report(s, ANONYMOUS, new(contact=S.Contact("Kim", "kim@example.org", None), language="en"))
        rid = done.report.id
    with db.session() as s:
        subjects = s.scalars(select(Notification.subject).where(Notification.ref == f"report:{rid}")).all()
        sub = S.subscribe(s, "lee@example.org", bbox=(126.97, 37.56, 126.98, 37.57), language="en")
        assert sub.language == "en"
    assert subjects == [f"[Testville] Report #{rid} received"]


def test_the_profiles_languages_decide_a_reports_language(db, tmp_path):
    """A city speaking English only: a report in Korean (or in no language given) is kept in English."""
    attach(db, make_settings(db.url, tmp_path, city=str(_city(tmp_path, language='"en"', languages='["en"]'))))
    with db.session() as s:
        korean = S.create_report(s, ANONYMOUS, new(language="ko")).report
        unsaid = S.create_report(s, ANONYMOUS, new(language=None)).report
        subscription = S.subscribe(s, "lee@example.org", bbox=(126.97, 37.56, 126.98, 37.57), language="ko")
        assert (korean.language, unsaid.language, subscription.language) == ("en", "en", "en")


def test_a_categorys_keywords_are_told_apart_by_their_script():
    mixed = "포트홀,파임, pothole ,hole"
    assert S.keywords_in(mixed, "ko") == ["포트홀", "파임"]
    assert S.keywords_in(mixed, "en") == S.keywords_in(mixed, "fr") == ["pothole", "hole"]
