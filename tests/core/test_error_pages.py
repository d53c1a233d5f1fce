"""Error pages speak the page's language and offer a way back; the API keeps its JSON and the protocols their
own formats; /api/docs works with no network beyond the platform."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD, make_user

TEXT = {
    "ko": {
        404: "페이지를 찾을 수 없습니다",
        403: "권한이 없습니다",
        422: "요청을 처리할 수 없습니다",
        500: "문제가 생겼습니다",
        "back": "이전 페이지로 돌아가기",
        "home": "첫 화면으로 가기",
        "sign in": "로그인",
    },
    "en": {
        404: "Page not found",
        403: "Not allowed",
        422: "The request could not be used",
        500: "Something went wrong",
        "back": "Back to the previous page",
        "home": "Go to the home page",
        "sign in": "Sign in",
    },
}


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_error_pages_in_the_pages_language_with_a_way_back(live_app, page, lang):
    words = TEXT[lang]
    base = live_app.url
    if lang != "ko":  # Korean is the city's language: the page fixture's browser has no other choice made
        page.goto(f"{base}/?lang={lang}")

    answer = page.goto(f"{base}/no-such-page", referer=f"{base}/reports?status=open")
    assert answer.status == 404
    assert page.locator("html").get_attribute("lang") == lang
    assert page.get_by_role("heading", level=1).inner_text() == words[404]
    back = page.get_by_role("link", name=words["back"])
    assert back.get_attribute("href") == "/reports?status=open"
    page.get_by_role("link", name=words["home"]).click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/"

    # Another site's page is not offered as the way back: only home.
    page.goto(f"{base}/no-such-page", referer="https://elsewhere.example/phish")
    assert page.get_by_role("link", name=words["back"]).count() == 0
    assert page.get_by_role("link", name=words["home"]).count() == 1

    answer = page.goto(f"{base}/reports?page=first")
    assert answer.status == 422
    assert page.get_by_role("heading", level=1).inner_text() == words[422]

    make_user(live_app.db, "minji", "citizen")
    page.goto(f"{base}/signin")
    page.locator("input[name=username]").fill("minji")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_selector(".who")
    answer = page.goto(f"{base}/admin/users")
    assert answer.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == words[403]

    # A failure of the platform itself: the store loses a table the report pages read.
    with live_app.db.engine.begin() as c:
        c.exec_driver_sql("ALTER TABLE reports RENAME TO reports_elsewhere")
    try:
        answer = page.goto(f"{base}/reports/1")
        assert answer.status == 500
        assert page.get_by_role("heading", level=1).inner_text() == words[500]
        assert "reports" not in page.locator("main").inner_text().lower()  # nothing of the cause is shown
        assert page.get_by_role("link", name=words["home"]).count() == 1
        api = page.request.get(f"{base}/api/reports/1")
        assert api.status == 500 and api.json()["error"]["code"] == "internal_error"
    finally:
        with live_app.db.engine.begin() as c:
            c.exec_driver_sql("ALTER TABLE reports_elsewhere RENAME TO reports")


def test_api_and_protocol_errors_keep_their_own_formats(client):
    html = {"Accept": "text/html"}
    api = client.get("/api/reports/999999", headers=html)
    assert api.status_code == 404 and api.json()["error"]["code"]
    open311 = client.get("/open311/v2/requests/999999.xml", headers=html)
    assert open311.status_code == 404 and open311.text.lstrip().startswith("<?xml")
    page = client.get("/reports/999999?lang=en", headers=html)
    assert page.status_code == 404 and "<h1>Page not found</h1>" in page.text


@pytest.mark.parametrize(
    "referrer",
    ["https://elsewhere.example/reports", "javascript:alert(1)", "http://testserver//elsewhere.example/x", ""],
)
def test_the_way_back_is_only_a_page_of_this_site(client, referrer):
    page = client.get("/no-such-page?lang=en", headers={"Accept": "text/html", "Referer": referrer})
    assert page.status_code == 404
    assert "Back to the previous page" not in page.text and 'href="/">Go to the home page' in page.text


@pytest.mark.browser
def test_api_docs_work_with_nothing_but_the_platform(live_app, page):
    refused: list[str] = []

    def only_the_platform(route):
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_platform)
    page.goto(live_app.url + "/api/docs")
    # Every module's section is listed (collapsed: the whole API drawn at once left all but three out).
    page.wait_for_selector(".opblock-tag", timeout=20000)
    sections = [t.strip() for t in page.locator(".opblock-tag").all_inner_texts()]
    assert {"reports", "safety", "participation", "opendata", "sensing"} <= set(sections), sections
    page.locator(".opblock-tag", has_text="reports").first.click()
    page.wait_for_selector(".opblock", timeout=20000)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/reports" in [o.replace("\u200b", "") for o in operations]
    assert refused == []
