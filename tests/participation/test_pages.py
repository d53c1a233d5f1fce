"""The proposal pages in Korean: a citizen proposes through the form (CSRF and all), a script in the title
shows as text, a bad form keeps what was typed and says why; the staff queue lists the department's own."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from smartcity.app import create_app
from smartcity.core import audit
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


def _form(client, path: str, action: str, data: dict, **kw):
    page = client.get(path)
    return client.post(f"{path}/{action}", data={**data, "csrf_token": _token(page.text)}, **kw)


def test_edits_are_kept_and_shown_staff_see_the_diff_and_scripts_stay_text(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, participation_debate_likes=1), db)
    make_user(db, "citizen1", "citizen", language="ko")
    make_user(db, "neighbour", "citizen", language="ko")
    make_user(db, "staff1", "staff", department="city-transport", language="ko")
    script = '<img src=x onerror="alert(1)">'
    with TestClient(app) as client:
        client.cookies.set("lang", "ko")
        signin(client, "citizen1")
        token = _token(client.get("/participation/proposals/new").text)
        idea = {
            "title": "버스 정류장에 온열 의자를 놓아 주세요",
            "body": "겨울 아침 정류장이 너무 춥습니다.\n온열 의자를 놓아 주세요.",
            "category": "transport",
            "csrf_token": token,
        }
        path = client.post("/participation/proposals/new", data=idea, follow_redirects=False).headers["location"]
        again = client.post(
            "/participation/proposals/new", data={**idea, "title": " 버스 정류장에  온열 의자를 놓아 주세요"}
        )
        assert again.status_code == 409 and "같은 제목의 제안이 이미 있습니다" in again.text
        edited = {
            "title": idea["title"],
            "body": f"겨울 아침 정류장이 너무 춥습니다.\n온열 의자와 바람막이를 놓아 주세요. {script}",
        }
        shown = _form(client, path, "edit", edited)
        assert shown.status_code == 200 and "고친 제안: 이전 판" in shown.text
        assert "온열 의자를 놓아 주세요." in shown.text  # the first version stays readable
        assert script not in shown.text and "&lt;img src=x onerror=" in shown.text
        assert 'class="diff"' not in shown.text  # the public sees versions, not diffs
    with TestClient(app) as other:
        other.cookies.set("lang", "ko")
        signin(other, "neighbour")
        refused = _form(other, path, "edit", edited)
        assert refused.status_code == 403 and "제안은 제안한 사람만 고칠 수 있습니다." in refused.text
        _form(other, path, "like", {})
        said = _form(other, path, "comment", {"body": f"찬성합니다 {script}"})
        assert said.status_code == 200 and script not in said.text and "찬성합니다 &lt;img" in said.text
    with TestClient(app) as staff:
        staff.cookies.set("lang", "ko")
        signin(staff, "staff1")
        page = staff.get(path).text
        diff = re.search(r'<pre class="diff">(.*?)</pre>', page, re.S).group(1)
        assert '<span class="removed">-온열 의자를 놓아 주세요.</span>' in diff
        assert '<span class="added">+온열 의자와 바람막이를 놓아 주세요. &lt;img src=x' in diff
    with TestClient(app) as author:
        author.cookies.set("lang", "ko")
        signin(author, "citizen1")
        closed = _form(author, path, "edit", {**edited, "body": edited["body"] + " 다시"})
        assert closed.status_code == 409 and "공감을 모으는 동안에만" in closed.text


def test_moderators_work_the_abuse_queue_with_reasons(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False), db)
    make_user(db, "citizen1", "citizen", language="ko")
    make_user(db, "neighbour", "citizen", language="ko")
    make_user(db, "admin1", "admin", language="ko")
    with TestClient(app) as client:
        client.cookies.set("lang", "ko")
        signin(client, "citizen1")
        token = _token(client.get("/participation/proposals/new").text)
        idea = {
            "title": "무료 쿠폰 <b>받으세요</b>",
            "body": "여기를 누르면 무료 쿠폰을 드립니다. 지금 바로 오세요!",
            "category": "other",
        }
        path = client.post(
            "/participation/proposals/new", data={**idea, "csrf_token": token}, follow_redirects=False
        ).headers["location"]
        assert client.get("/participation/moderation").status_code == 403
        signin(client, "neighbour")
        _form(client, path, "abuse", {"reason": "광고 <script>x</script>"})
    with TestClient(app) as admin:
        admin.cookies.set("lang", "ko")
        signin(admin, "admin1")
        queue = admin.get("/participation/moderation")
        assert queue.status_code == 200 and "신고 1건" in queue.text
        assert "광고 &lt;script&gt;x&lt;/script&gt;" in queue.text and "무료 쿠폰 &lt;b&gt;" in queue.text
        hidden = admin.post(
            f"{path}/hide",
            data={"reason": "상업 광고", "next": "moderation", "csrf_token": _token(queue.text)},
            follow_redirects=False,
        )
        assert hidden.headers["location"] == "/participation/moderation"
        queue = admin.get("/participation/moderation").text
        assert "신고된 제안이 없습니다." in queue and "상업 광고" in queue
        shown = admin.post(f"{path}/unhide", data={"reason": "광고가 아님을 확인", "csrf_token": _token(queue)})
        assert shown.status_code == 200 and 'class="card proposal"' in shown.text  # back on the proposal
        assert "숨긴 제안이 없습니다." in admin.get("/participation/moderation").text
    with db.session() as s:
        done = [(e.action, e.detail) for e in audit.entries(s, object_type="participation.proposal")]
    assert ("hide", {"reason": "상업 광고"}) in done and ("unhide", {"reason": "광고가 아님을 확인"}) in done


def test_a_hidden_comment_shows_a_notice_to_the_public_and_its_text_to_moderators(db, db_url, tmp_path):
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, participation_debate_likes=1), db)
    make_user(db, "author", "citizen")
    make_user(db, "troll", "citizen", display_name="말썽꾼")
    make_user(db, "admin1", "admin", language="ko")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("author", "troll")}
    idea = {
        "title": "도서관 운영 시간을 늘려 주세요",
        "body": "직장인은 평일 저녁에 도서관을 이용하기 어렵습니다. 밤 10시까지 열어 주시기를 제안합니다.",
        "category": "culture",
    }
    with TestClient(app) as client:
        pid = client.post("/api/participation/proposals", json=idea, headers=key["author"]).json()["id"]
        client.put(f"/api/participation/proposals/{pid}/like", headers=key["troll"])
        said = client.post(
            f"/api/participation/proposals/{pid}/comments",
            json={"body": "광고 글입니다 <b>클릭</b>"},
            headers=key["troll"],
        ).json()["comment_id"]
        path = f"/participation/proposals/{pid}"
    with TestClient(app) as admin:
        admin.cookies.set("lang", "ko")
        signin(admin, "admin1")
        page = admin.get(path).text
        assert f'action="{path}/hide-comment"' in page
        hidden = _form(admin, path, "hide-comment", {"comment_id": said, "reason": "광고 댓글"}, follow_redirects=False)
        assert hidden.headers["location"] == f"{path}#comment-{said}"
        page = admin.get(path).text
        assert "광고 글입니다 &lt;b&gt;클릭&lt;/b&gt;" in page and "숨김: 광고 댓글" in page and "말썽꾼" in page
        queue = admin.get("/participation/moderation").text
        assert "숨긴 댓글" in queue and "광고 글입니다 &lt;b&gt;" in queue and "광고 댓글" in queue
    with TestClient(app) as public:
        public.cookies.set("lang", "ko")
        page = public.get(path).text
        assert "운영자가 이 댓글을 숨겼습니다." in page
        assert "광고 글입니다" not in page and "말썽꾼" not in page and "광고 댓글" not in page
    with TestClient(app) as admin:
        signin(admin, "admin1")
        queue = admin.get("/participation/moderation").text
        shown = admin.post(
            f"{path}/unhide-comment",
            data={"comment_id": said, "reason": "광고 아님", "next": "moderation", "csrf_token": _token(queue)},
            follow_redirects=False,
        )
        assert shown.headers["location"] == "/participation/moderation"
    with TestClient(app) as public:
        assert "광고 글입니다" in public.get(path).text
    with db.session() as s:
        done = [(e.action, e.actor) for e in audit.entries(s, object_type="participation.comment")]
    assert sorted(done) == [("hide", "admin1"), ("unhide", "admin1")]
