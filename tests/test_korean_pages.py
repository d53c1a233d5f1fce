"""The main pages of every role, in Korean, in Debian's chromium on a phone: what a person reads has no
romanised demo names or places, no raw attribute codes, no role codes and no Korean sentence pieced together
("을(를)", "#12(", "(최대 6, 10 MB 까지(장당))").

The demo is loaded on each store (as `smartcity demo` loads it); the citizen files a report with answers
to its category's questions, and each role walks its pages as it would: the main page, then the first link
to a ward, an incident or a report it is shown. The text checked is the page's visible text
(`innerText`), so markup, data attributes and codes kept for scripts do not count.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from sqlalchemy import select

from smartcity.core.auth import identity_of_user
from smartcity.core.city import load_profile
from smartcity.core.db import Database
from smartcity.core.demo import DEMO_PASSWORD, load_demo
from smartcity.core.models import Department, User
from smartcity.reports import service as S
from smartcity.reports.taxonomy import TAXONOMY_FILE
from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
GANGNAM = (37.49596, 127.05850)  # the demo's district (11230), where the staff account's unit works

# A Korean sentence assembled from pieces: a particle pair left unsettled, a bracket glued to a number, the
# photo limits of old ("(최대 6, 10 MB 까지(장당))"), a placeholder never filled in, a counter word set
# apart from its number ("36 건" for 36건).
PIECED = re.compile(
    r"이\(가\)|을\(를\)|은\(는\)|과\(와\)|\(으\)로|\(이\)라|\(이\)나|\(최대|까지\(장당\)|\(장당\)|#\d+\("
    r"|%\([a-z_]+\)[sd]|\{[a-z_]+(?:![rs])?\}|\d+ (?:건|개|장|명)(?![가-힣])"
)
# Romanised Korean people (a common surname and a given name) and Seoul's places (Gangnam-gu, Daechi-dong).
SURNAMES = "Kim|Lee|Yi|Park|Pak|Choi|Jung|Jeong|Kang|Cho|Jo|Yoon|Yun|Jang|Lim|Han|Oh|Seo|Shin|Kwon|Hwang|Ahn|Song"
ROMANISED = re.compile(
    rf"\b(?:{SURNAMES})[ -][A-Z][a-z]+(?:[ -]?[a-z]+)?\b"
    r"|\b[A-Z][a-z]+-(?:gu|dong|ro|gil|si|eup|myeon)\b"
    r"|\b(?:Gangnam|Seocho|Jongno|Mapo|Songpa|Daechi|Yeoksam|Gwanghwamun|Myeongdong|Hangang)\b"
)


def attribute_codes() -> set[str]:
    """Every code a category's questions and answers are stored under: what a page must not show."""
    data = json.loads(TAXONOMY_FILE.read_text(encoding="utf-8"))
    codes: set[str] = set()
    for group in data["groups"]:
        for item in group["items"]:
            for attr in item.get("attributes", []):
                codes.add(attr["code"])
                codes.update(str(v["key"]) for v in attr.get("values", []))
    return codes


def role_codes() -> set[str]:
    """The roles the platform's own modules offer (a test module may have declared others in this process)."""
    from smartcity.core import accounts
    from smartcity.core.module import discover, ensure_declared

    ensure_declared()
    return set(accounts.roles_for(discover()))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def demo_site(request, tmp_path_factory):
    """A live site with the demo loaded and one report a citizen filed with answers to its questions."""
    from smartcity.app import create_app

    folder = tmp_path_factory.mktemp("korean")
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), folder / "smartcity.db")
        url = f"sqlite:///{folder / 'smartcity.db'}"
    else:
        postgres = request.getfixturevalue("postgres")
        template = request.getfixturevalue("postgres_template")
        name = f"korean_pages_{os.getpid()}"
        postgres.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        request.addfinalizer(lambda: postgres.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        url = postgres.url(name)
    db = Database(url)
    app = create_app(make_settings(url, folder), db)
    for _ in load_demo(db, load_profile("seoul")):
        pass
    with db.session() as s:
        citizen = s.scalar(select(User).where(User.username == "citizen"))
        filed = S.create_report(
            s,
            identity_of_user(citizen, "session"),
            S.NewReport(
                category="roads-pothole",
                lat=GANGNAM[0],
                lon=GANGNAM[1],
                title="횡단보도 앞 포트홀",
                description="비가 온 뒤로 더 깊어졌습니다.",
                attributes={"size": "large", "depth_cm": 12},
            ),
        ).report
        staff = s.scalar(select(User).where(User.username == "staff"))
        assert filed.unit_id == staff.department_id, "the report must reach the staff account's unit"
        assert s.get(Department, staff.department_id) is not None
        report_id = filed.id
    with LiveServer(app) as server:
        server.report_id = report_id
        yield server
    db.dispose()


def sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/signin?lang=ko")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(DEMO_PASSWORD)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    page.wait_for_selector(".who")


def visible_text(page, base: str, path: str) -> str:
    response = page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang=ko")
    assert response is not None and response.status == 200, f"{path}: {response and response.status}"
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # the live pages' first rendering
    assert page.locator("html").get_attribute("lang") == "ko"
    return page.inner_text("body")


def first_link(page, pattern: str) -> str:
    hrefs = page.eval_on_selector_all("a[href^='/']", "as => as.map(a => a.getAttribute('href'))")
    found = [h for h in hrefs if re.fullmatch(pattern, h.split("?")[0])]
    assert found, f"no link like {pattern} on {page.url}"
    return found[0]


def problems_in(text: str, where: str, codes: set[str]) -> list[str]:
    out = [f"{where}: pieced-together Korean {m.group()!r}" for m in PIECED.finditer(text)]
    out += [f"{where}: romanised name or place {m.group()!r}" for m in ROMANISED.finditer(text)]
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9_]*", text))
    out += [f"{where}: attribute code {code!r}" for code in sorted(codes & words)]
    return out


ROLE_PAGES = {
    "citizen": ["/reports/new", "/reports/mine", "REPORT"],
    "staff": ["/staff/reports", "WORK"],
    "admin": ["/admin/users", r"/admin/users/\d+", "/admin/reports/routes", "/admin/audit"],
    "guardian": ["/safety/guardian", r"/safety/guardian/\d+"],
    "operator": ["/safety/console", r"/safety/console/\d+"],
}


@pytest.mark.parametrize("role", list(ROLE_PAGES))
def test_the_main_pages_of_every_role_read_as_korean(demo_site, browser, role):
    context = browser.new_context(locale="ko-KR", viewport=PHONE)
    page = context.new_page()
    base, rid = demo_site.url, demo_site.report_id
    sign_in(page, base, role)
    codes = attribute_codes()
    failures: list[str] = []
    seen: dict[str, str] = {}
    for step in ROLE_PAGES[role]:
        path = {"REPORT": f"/reports/{rid}", "WORK": f"/staff/reports/{rid}"}.get(step, step)
        if "\\d" in path:
            path = first_link(page, path)
        seen[path] = visible_text(page, base, path)
        failures += problems_in(seen[path], path, codes)
        if role == "admin" and path.startswith("/admin/users"):
            failures += role_problems(page, path)
        if path == "/admin/audit":
            failures += audit_problems(page)
        if path == "/admin/reports/routes":
            failures += routing_problems(page)
        if path == "/reports/new":
            # A category's questions show once it is chosen: the pothole's size and its answers' names.
            page.select_option("select[name=category]", "roads-pothole")
            fieldset = page.locator("fieldset.attributes[data-category='roads-pothole']")
            fieldset.wait_for(state="visible")
            asked = fieldset.inner_text()
            assert "크기" in asked and "큼 (차로 절반 이상)" in asked, asked
            failures += problems_in(page.inner_text("body"), "/reports/new (pothole chosen)", codes)
    context.close()

    if role in ("citizen", "staff"):
        report_page = seen[f"/reports/{rid}" if role == "citizen" else f"/staff/reports/{rid}"]
        assert "크기" in report_page and "큼 (차로 절반 이상)" in report_page and "깊이 (cm)" in report_page
    if role == "staff":
        work = seen[f"/staff/reports/{rid}"]
        for english in ("Received", "Work scheduled", "Not ours"):
            if english in work:
                failures.append(f"/staff/reports/{rid}: response template title {english!r}")
        assert "접수 안내" in work
    if role == "guardian":
        for path, text in seen.items():
            # A device's app by its name (Traccar Client, OwnTracks), not the protocol's code.
            failures += [f"{path}: protocol {c!r}" for c in ("osmand", "owntracks") if re.search(rf"\b{c}\b", text)]
    if role == "operator":
        incident = next(text for path, text in seen.items() if re.fullmatch(r"/safety/console/\d+", path))
        for relation in ("(parent)", "(child)"):
            if relation in incident:
                failures.append(f"operator's incident: a guardian's relation as a code {relation!r}")
    assert len(seen) == len(ROLE_PAGES[role])
    assert not failures, f"{role} in Korean:\n" + "\n".join(failures)


HANGUL = re.compile("[\uac00-\ud7a3]")


def role_problems(page, path: str) -> list[str]:
    """The accounts table and an account's page name each role in Korean, never by its code."""
    codes = role_codes()
    if path == "/admin/users":
        shown = page.locator("td[data-role]").all_inner_texts()
        assert len(shown) >= 5, shown  # every demo account is listed
    else:
        shown = page.locator("select[name=role] option").all_inner_texts()
        assert len(shown) == len(codes), shown
    return [f"{path}: role shown as {text!r}" for text in shown if text.strip() in codes or not HANGUL.search(text)]


def audit_problems(page) -> list[str]:
    """Each audit entry is told in Korean: no object type or action code in its sentence, every detail named
    in Korean, no True/False; the raw codes stay in attributes for auditors."""
    entries = page.locator("li.audit-entry")
    assert entries.count() >= 10, "the demo's entries are listed"
    out = []
    for i in range(entries.count()):
        entry = entries.nth(i)
        told = entry.locator(".audit-sentence").inner_text()
        codes = [entry.get_attribute("data-object-type"), entry.get_attribute("data-action")]
        for code in codes:
            words = code.replace("_", " ").replace(".", " ")
            if words in told or code in told:
                out.append(f"/admin/audit: {told!r} shows the code {code!r}")
        if not HANGUL.search(told):
            out.append(f"/admin/audit: sentence not in Korean {told!r}")
        # Latin letters only in a user name or a quoted name (a dataset's, a category's code): no system
        # actor or kind of thing left in English.
        rest = re.sub(r"‘[^’]*’", "", told.replace(entry.get_attribute("data-actor"), ""))
        out += [f"/admin/audit: English {w!r} in {told!r}" for w in re.findall(r"[A-Za-z]{2,}", rest)]
        for term in entry.locator(".audit-detail dt").all_inner_texts():
            if not HANGUL.search(term):
                out.append(f"/admin/audit: detail named {term!r} in {told!r}")
        for value in entry.locator(".audit-detail dd").all_inner_texts():
            if value.strip() in ("True", "False", "true", "false", "None"):
                out.append(f"/admin/audit: detail value {value!r} in {told!r}")
    return out


def routing_problems(page) -> list[str]:
    """The routing table names each department in Korean; its code ("11130-roads") is not shown."""
    shown = page.locator("table#routes tr td:nth-child(2)").all_inner_texts()
    assert len(shown) >= 10, "every district is routed"
    return [
        f"/admin/reports/routes: department shown as {text!r}"
        for text in shown
        if re.search(r"[A-Za-z]", text) or not HANGUL.search(text)
    ]
