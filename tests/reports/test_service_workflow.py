"""The staff workflow, following up, campaigns and the dashboard, on both stores."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select, update

from smartcity.core import audit, render
from smartcity.core.auth import ANONYMOUS
from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied
from smartcity.core.models import User
from smartcity.core.notify import Notification
from smartcity.reports import service as S
from smartcity.reports.models import Report
from tests.conftest import make_user
from tests.reports.helpers import CITY_HALL, GANGNAM, file_report, new, who


@pytest.fixture
def people(rdb):
    make_user(rdb, "roadie", "staff", department="11020-roads", display_name="Road Staff")
    make_user(rdb, "roadie2", "staff", department="11020-roads")
    make_user(rdb, "streets", "staff", department="11020-streets")
    make_user(rdb, "gangnam", "staff", department="11230-roads")
    make_user(rdb, "boss", "admin")
    make_user(rdb, "minji", "citizen", email="minji@example.org", language="en")
    return {name: who(rdb, name) for name in ("roadie", "roadie2", "streets", "gangnam", "boss", "minji")}


def outbox(db, ref=None):
    with db.session() as s:
        q = select(Notification).order_by(Notification.id)
        if ref:
            q = q.where(Notification.ref == ref)
        return [(n.channel, n.to, n.topic, n.subject, n.body) for n in s.scalars(q)]


def test_a_report_goes_through_the_workflow_and_the_citizen_hears_of_each_step(rdb, people):
    rid = file_report(rdb, contact=S.Contact(phone="010-1234-5678", email="kim@example.org"), language="en")
    staff = people["roadie"]
    with rdb.session() as s:
        S.transition(s, staff, rid, "acknowledged", text="We will look at it.")
        S.add_note(s, staff, rid, "Needs the asphalt crew, not patching.")
        S.transition(s, staff, rid, "in_progress")
        S.transition(s, staff, rid, "fixed", text="Filled on Tuesday.")
    with rdb.session() as s:
        r = S.get_report(s, rid)
        assert r.status == "fixed" and r.acknowledged_at and r.fixed_at
        public = [(u.kind, u.old_value, u.new_value, u.text) for u in S.timeline(s, rid)]
        assert public == [
            ("created", None, "open", ""),
            ("status", "open", "acknowledged", "We will look at it."),
            ("status", "acknowledged", "in_progress", ""),
            ("status", "in_progress", "fixed", "Filled on Tuesday."),
        ]
        internal = [u.text for u in S.timeline(s, rid, include_internal=True) if not u.public]
        assert internal == ["Needs the asphalt crew, not patching."]
        anon_view = S.detail_view(s, r, ANONYMOUS, "en")
        assert "asphalt" not in json.dumps(anon_view) and "has_contact" not in anon_view
        staff_view = S.detail_view(s, r, staff, "en")
        assert "asphalt" in json.dumps(staff_view) and staff_view["has_contact"]
        actions = [e.action for e in audit.entries(s, object_type="report", object_id=rid)]
        assert actions.count("status") == 3 and "note" in actions
    sent = outbox(rdb, f"report:{rid}")
    topics = [(c, t) for c, _, t, _, _ in sent]
    assert topics == [("email", "report.received"), ("sms", "report.received")] + [
        (c, t) for t in ("report.status", "report.status", "report.fixed") for c in ("email", "sms")
    ]
    fixed_mail = sent[-2]
    assert "fixed" in fixed_mail[3] and "Filled on Tuesday." in fixed_mail[4]
    assert f"/reports/{rid}?token=" in fixed_mail[4]  # the link to confirm or reopen


def test_illegal_transitions_are_refused(rdb, people):
    rid = file_report(rdb)
    with rdb.session() as s:
        S.transition(s, people["roadie"], rid, "closed")
    for target in ("acknowledged", "fixed", "closed", "teleported"):
        with pytest.raises(InvalidInput) as caught, rdb.session() as s:
            S.transition(s, people["roadie"], rid, target)
        assert caught.value.code in ("illegal_transition", "invalid_status")
    with pytest.raises(InvalidInput) as caught, rdb.session() as s:
        S.transition(s, people["roadie"], rid, "duplicate")
    assert caught.value.code == "parent_required"
    with rdb.session() as s:
        S.transition(s, people["roadie"], rid, "open")  # reopening is allowed
        assert S.get_report(s, rid).closed_at is None


def test_staff_work_only_their_units_reports(rdb, people):
    rid = file_report(rdb)
    for name in ("streets", "gangnam"):
        with pytest.raises(PermissionDenied), rdb.session() as s:
            S.transition(s, people[name], rid, "acknowledged")
        with pytest.raises(PermissionDenied), rdb.session() as s:
            S.contact_of(s, people[name], rid)
    with pytest.raises(PermissionDenied), rdb.session() as s:
        S.add_note(s, people["minji"], rid, "I am not staff")
    with rdb.session() as s:
        S.transition(s, people["boss"], rid, "acknowledged")  # administrators work every unit
        queue = S.work_queue(s, people["roadie"])
        assert [r.id for r in queue.items] == [rid]
        assert S.work_queue(s, people["gangnam"]).items == []
        with pytest.raises(PermissionDenied):
            S.work_queue(s, people["gangnam"], unit="11020-roads")


def test_assignment_stays_inside_the_unit(rdb, people):
    rid = file_report(rdb)
    with rdb.session() as s:
        roadie2 = s.scalar(select(User.id).where(User.username == "roadie2"))
        gangnam = s.scalar(select(User.id).where(User.username == "gangnam"))
        S.assign(s, people["roadie"], rid, roadie2)
    with pytest.raises(InvalidInput), rdb.session() as s:
        S.assign(s, people["roadie"], rid, gangnam)
    with rdb.session() as s:
        assert S.get_report(s, rid).assignee_id == roadie2
        entry = S.timeline(s, rid, include_internal=True)[-1]
        assert (entry.kind, entry.new_value, entry.public) == ("assign", "roadie2", False)


def test_contacts_are_shown_to_the_unit_and_every_read_is_audited(rdb, people):
    rid = file_report(rdb, contact=S.Contact("Kim", "kim@example.org", "010-1111-2222"))
    with rdb.session() as s:
        c = S.contact_of(s, people["roadie"], rid)
        assert (c.name, c.email, c.phone) == ("Kim", "kim@example.org", "010-1111-2222")
    with rdb.session() as s:
        reads = [e for e in audit.entries(s, object_type="report", object_id=rid) if e.action == "read_contact"]
        assert [e.actor for e in reads] == ["roadie"]


def test_reassigning_keeps_the_history(rdb, people):
    rid = file_report(rdb, category="streets-streetlight")
    with rdb.session() as s:
        assert S.get_report(s, rid).unit.code == "11020-streets"
        S.reassign(s, people["streets"], rid, "11020-roads", reason="It is the road's lamp")
    with pytest.raises(PermissionDenied), rdb.session() as s:
        S.transition(s, people["streets"], rid, "acknowledged")  # no longer theirs
    with rdb.session() as s:
        S.transition(s, people["roadie"], rid, "acknowledged")
        history = [(u.kind, u.old_value, u.new_value) for u in S.timeline(s, rid) if u.kind == "reassign"]
        assert history == [("reassign", "11020-streets", "11020-roads")]
        assert S.get_report(s, rid).unit.code == "11020-roads"


def test_merging_duplicates_moves_supports_to_the_parent(rdb, people):
    parent = file_report(rdb)
    child = file_report(rdb, people["minji"], where=(CITY_HALL[0] + 0.0001, CITY_HALL[1]))
    grandchild = file_report(rdb, where=(CITY_HALL[0] + 0.0002, CITY_HALL[1]))
    with rdb.session() as s:
        S.support(s, ANONYMOUS, child, fingerprint="a")
        S.support(s, ANONYMOUS, child, fingerprint="b")
        S.support(s, ANONYMOUS, parent, fingerprint="a")
        S.transition(s, people["roadie"], grandchild, "duplicate", parent_id=child)
    with rdb.session() as s:
        S.merge(s, people["roadie"], parent, [child], text="Same hole")
    with rdb.session() as s:
        p, c, g = (S.get_report(s, i) for i in (parent, child, grandchild))
        assert (c.status, c.parent_id, g.parent_id) == ("duplicate", parent, parent)
        # a (already on the parent), b, minji (the child's reporter), and the grandchild's anonymous reporter
        assert p.support_count == 4 and c.support_count == 0
        assert S.timeline(s, child)[-1].text == "Same hole"
    assert any(t == "report.duplicate" and to == "minji@example.org" for _, to, t, _, _ in outbox(rdb))
    with pytest.raises(InvalidInput), rdb.session() as s:
        S.merge(s, people["roadie"], child, [parent])  # a duplicate cannot be a parent


def test_the_reporter_confirms_or_reopens_and_rates(rdb, people):
    rid = file_report(rdb)
    mine = file_report(rdb, people["minji"])
    with rdb.session() as s:
        token = S.feedback_token(S.get_report(s, rid))
        for i in (rid, mine):
            S.transition(s, people["roadie"], i, "fixed")
    with pytest.raises(PermissionDenied), rdb.session() as s:
        S.feedback(s, ANONYMOUS, rid, fixed=True, token="wrong")
    with pytest.raises(InvalidInput), rdb.session() as s:
        S.feedback(s, ANONYMOUS, rid, fixed=True, rating=6, token=token)
    with rdb.session() as s:
        S.feedback(s, ANONYMOUS, rid, fixed=True, rating=5, comment="Thanks!", token=token)
        S.feedback(s, people["minji"], mine, fixed=False, comment="Still there")
    with rdb.session() as s:
        confirmed, reopened = S.get_report(s, rid), S.get_report(s, mine)
        assert (confirmed.status, confirmed.rating) == ("closed", 5)
        assert (reopened.status, reopened.fixed_at) == ("open", None)
        assert S.timeline(s, mine)[-1].text == "Still there"
    with pytest.raises(InvalidInput), rdb.session() as s:
        S.feedback(s, ANONYMOUS, rid, fixed=True, token=token)  # already closed


def test_partner_updates_are_idempotent_and_can_close(rdb, people):
    from smartcity.core.auth import Identity

    partner = Identity(via="key", key_id=1, key_name="fixmystreet", key_scope="open311")
    rid = file_report(rdb)
    with rdb.session() as s:
        S.add_update(s, partner, rid, "Inspected", external_id="u1", author="FixMyStreet")
        S.add_update(s, partner, rid, "Inspected", external_id="u1")
        S.add_update(s, partner, rid, "Done", status="CLOSED", external_id="u2")
    with rdb.session() as s:
        assert S.get_report(s, rid).status == "fixed"
        entries = S.updates_since(s, report_id=rid)
        assert [(u.external_id, u.text) for u in entries] == [("u1", "Inspected"), ("u2", "Done")]
    with pytest.raises(PermissionDenied), rdb.session() as s:
        S.add_update(s, people["minji"], rid, "I close it", status="closed")


def test_templates_fill_the_public_answer(rdb, people):
    rid = file_report(rdb, language="en")
    with rdb.session() as s:
        tpl = S.save_template(
            s,
            people["roadie"],
            S.TemplateIn("Patched", "임시 보수했습니다.", "We patched it for now.", "fixed", "11020-roads"),
        )
        tpl_id = tpl.id
    with pytest.raises(PermissionDenied), rdb.session() as s:
        S.save_template(s, people["gangnam"], S.TemplateIn("x", "x", "x", None, "11020-roads"))
    with rdb.session() as s:
        titles = {t.title for t in S.list_templates(s, people["roadie"], report_id=rid)}
        assert "Patched" in titles and "Received" in titles
        assert "Patched" not in {t.title for t in S.list_templates(s, people["gangnam"])}
        S.transition(s, people["roadie"], rid, "fixed", template_id=tpl_id)
    with rdb.session() as s:
        assert S.timeline(s, rid)[-1].text == "We patched it for now."


def test_overdue_reports(rdb, people):
    late, on_time = file_report(rdb), file_report(rdb, category="parks-weeds")
    with rdb.session() as s:
        s.execute(update(Report).where(Report.id == late).values(due_at=utcnow() - timedelta(hours=1)))
    with rdb.session() as s:
        assert [r.id for r in S.overdue(s, people["roadie"])] == [late]
        assert S.overdue(s, people["gangnam"]) == []
        assert on_time not in [r.id for r in S.overdue(s, people["boss"])]


def test_area_subscriptions_get_mail_and_the_feed_lists_new_reports(rdb, people):
    with rdb.session() as s:
        sub = S.subscribe(s, "watcher@example.org", district="11230", language="en")
        S.subscribe(s, "box@example.org", bbox=(126.97, 37.56, 126.99, 37.57))
        with pytest.raises(InvalidInput):
            S.subscribe(s, "x@example.org", bbox=(127.0, 37.5, 126.0, 37.6))
        token = sub.token
    in_gangnam = file_report(rdb, where=GANGNAM, title="Hole <in> Gangnam")
    file_report(rdb, title="Hole at City Hall")
    to = [(t, topic) for _, t, topic, _, _ in outbox(rdb)]
    assert to == [("watcher@example.org", "report.new_in_area"), ("box@example.org", "report.new_in_area")]
    with rdb.session() as s:
        entries = S.feed_entries(s, district="11230", language="en")
        assert [e.id for e in entries] == [in_gangnam]
        xml = render.atom_xml(S.as_feed(entries, "Gangnam"), "https://city.example", "/feed")
        root = ET.fromstring(xml)
        ns = {"a": "http://www.w3.org/2005/Atom"}
        assert root.find("a:entry/a:title", ns).text == "Pothole: Hole <in> Gangnam"
        S.unsubscribe(s, token)
    with pytest.raises(NotFound), rdb.session() as s:
        S.unsubscribe(s, token)


def test_a_campaign_has_its_own_categories_reports_and_exports(rdb, people):
    admin = people["boss"]
    now = utcnow()
    with rdb.session() as s:
        S.save_campaign(
            s,
            admin,
            S.CampaignIn(
                "barrier-free",
                "무장애 길 찾기",
                "Barrier-free routes",
                now - timedelta(days=1),
                now + timedelta(days=30),
            ),
        )
        S.save_campaign(
            s,
            admin,
            S.CampaignIn("old-one", "지난 캠페인", "Past campaign", now - timedelta(days=30), now - timedelta(days=1)),
        )
        S.save_category(
            s,
            admin,
            S.CategoryIn("bf-steps", "other", "계단·턱", "Steps or kerb", campaign="barrier-free", unit_kind="roads"),
        )
        S.save_category(s, admin, S.CategoryIn("old-cat", "other", "옛 항목", "Old item", campaign="old-one"))
        assert [c.code for c in S.list_categories(s, campaign="barrier-free")] == ["bf-steps"]
        assert "bf-steps" not in [c.code for c in S.list_categories(s)]
    inside = file_report(rdb, category="bf-steps", campaign="barrier-free", title="=SUM(A1) step")
    file_report(rdb)  # not part of it
    for kwargs, code in (
        (dict(category="bf-steps"), "unknown_category"),
        (dict(category="roads-pothole", campaign="barrier-free"), "unknown_category"),
        (dict(category="old-cat", campaign="old-one"), "campaign_closed"),
    ):
        with pytest.raises(InvalidInput) as caught, rdb.session() as s:
            S.create_report(s, ANONYMOUS, new(**kwargs))
        assert caught.value.code == code
    with rdb.session() as s:
        points = S.campaign_points(s, "barrier-free", "en")
        geo = render.feature_collection(points)
        assert [f["id"] for f in geo["features"]] == [inside]
        assert geo["features"][0]["geometry"] == {"type": "Point", "coordinates": [CITY_HALL[1], CITY_HALL[0]]}
        rows = list(csv.DictReader(io.StringIO(render.csv_text(points))))
        assert [(r["id"], r["category"], r["title"]) for r in rows] == [(str(inside), "bf-steps", "'=SUM(A1) step")]
        assert "contact_email" not in rows[0]


def test_dashboard_numbers_come_from_what_happened(rdb, people):
    a = file_report(rdb)
    b = file_report(rdb, where=(CITY_HALL[0] + 0.001, CITY_HALL[1]))
    c = file_report(rdb, category="streets-streetlight")
    file_report(rdb, where=GANGNAM)
    with rdb.session() as s:
        S.transition(s, people["roadie"], a, "fixed")
        S.transition(s, people["roadie"], b, "acknowledged")
        s.execute(update(Report).where(Report.id == c).values(due_at=utcnow() - timedelta(days=1)))
        S.reassign(s, people["boss"], c, "11020-roads")
    with rdb.session() as s:
        d = S.dashboard(s, people["boss"])
        assert d.total == 4
        assert d.by_status == {"open": 2, "acknowledged": 1, "fixed": 1}
        assert d.by_category == {"roads-pothole": 3, "streets-streetlight": 1}
        assert d.by_group == {"roads": 3, "streets": 1}
        assert d.by_district == {"11020": 3, "11230": 1}
        assert d.overdue_count == 1 and [r.id for r in d.overdue] == [c]
        assert d.fixed_count == 1 and 0 <= d.median_days_to_fix < 0.01
        assert sum(h["count"] for h in d.heat) == 4 and len(d.heat) == 2
        own = S.dashboard(s, people["gangnam"])  # staff: their unit only
        assert own.total == 1 and own.by_district == {"11230": 1}
        with pytest.raises(PermissionDenied):
            S.dashboard(s, people["minji"])


def test_csv_export_leaves_contacts_out_unless_asked_and_is_audited(rdb, people):
    file_report(rdb, contact=S.Contact("Kim", "kim@example.org"))
    with rdb.session() as s:
        plain = render.csv_text(S.export_table(s, people["roadie"]))
        assert "kim@example.org" not in plain and "contact_email" not in plain
        full = render.csv_text(S.export_table(s, people["roadie"], include_contacts=True))
        assert "kim@example.org" in full
        assert "kim@example.org" not in render.csv_text(S.export_table(s, people["gangnam"], include_contacts=True))
    with rdb.session() as s:
        exports = [e.detail for e in audit.entries(s, object_type="report") if e.action == "export"]
        assert [e["include_contacts"] for e in reversed(exports)] == [False, True, True]


def test_contacts_are_purged_after_the_retention_period(rdb, people):
    old, recent = (
        file_report(rdb, contact=S.Contact(email="a@example.org")),
        file_report(rdb, contact=S.Contact(email="b@example.org")),
    )
    with rdb.session() as s:
        for rid in (old, recent):
            S.transition(s, people["roadie"], rid, "closed")
        s.execute(update(Report).where(Report.id == old).values(closed_at=utcnow() - timedelta(days=400)))
    with rdb.session() as s:
        assert S.purge_contacts(s, days=365) == 1
    with rdb.session() as s:
        assert S.contact_of(s, people["roadie"], old) is None
        assert S.contact_of(s, people["roadie"], recent).email == "b@example.org"
