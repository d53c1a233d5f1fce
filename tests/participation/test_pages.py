"""The proposal pages in Korean: a citizen proposes through the form (CSRF and all), a script in the title
shows as text, a bad form keeps what was typed and says why; the staff queue lists the department's own."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from smartcity.app import create_app
from tests.conftest import make_key, make_settings, make_user, signin


def _token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_a_citizen_proposes_and_likes_through_the_korean_pages(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, participation_debate_likes=1), db)
    make_user(db, "citizen1", "citizen", language="ko")
    make_user(db, "staff1", "staff", department="city-transport", language="ko")
    with TestClient(app) as client:
        client.cookies.set("lang", "ko")
        signin(client, "citizen1")
        form = client.get("/participation/proposals/new")
        assert form.status_code == 200 and "제안 쓰기" in form.text and "시 전체" in form.text
        token = _token(form.text)
        short = {"title": "<script>x</script>", "body": "짧다", "category": "transport", "csrf_token": token}
        refused = client.post("/participation/proposals/new", data=short)
        assert refused.status_code == 422
        assert "글이 너무 짧습니다. 20자 이상 써 주세요." in refused.text
        assert "&lt;script&gt;x&lt;/script&gt;" in refused.text and "<script>x</script>" not in refused.text
        idea = {**short, "body": "지하철역 앞 자전거 거치대를 두 배로 늘려 주세요. 출근 시간에 자리가 없습니다."}
        made = client.post("/participation/proposals/new", data=idea, follow_redirects=False)
        assert made.status_code == 303
        page = client.get(made.headers["location"])
        assert "&lt;script&gt;x&lt;/script&gt;" in page.text and "공감 모으는 중" in page.text
        liked = client.post(made.headers["location"] + "/like", data={"csrf_token": _token(page.text)})
        assert "공개 토론" in liked.text and 'data-status="debate"' in liked.text
        listed = client.get("/participation/proposals")
        assert "공감 1개" in listed.text
    with TestClient(app) as staff:
        staff.cookies.set("lang", "ko")
        signin(staff, "staff1")
        queue = staff.get("/participation/queue")
        assert queue.status_code == 200 and "&lt;script&gt;x&lt;/script&gt;" in queue.text
    with TestClient(app) as other:
        headers = {"X-API-Key": make_key(db, "citizen1")}
        assert other.get("/api/participation/queue", headers=headers).status_code == 403
