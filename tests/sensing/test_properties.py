"""Properties of the decoders: every reading sent is either in the batch to store or refused with a reason
(nothing dropped unseen, whatever the JSON), and S-DoT times read back as the minute written."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartcity.sensing.intake import validate
from smartcity.sensing.sdot import parse_time

SEOUL = ZoneInfo("Asia/Seoul")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


NOW = int(time.time()) // 86400 * 86400  # fixed for the run: hypothesis replays what it drew


def readings(serials: list[str]):
    now = NOW
    field = {
        "sensor": st.sampled_from([*serials[:3], "V02Q0000000", ""]) | json_values,
        "quantity": st.sampled_from(["pm10", "PM2.5", "noise", "uv", "radon"]) | json_values,
        "time": st.integers(now - 40 * 86400, now + 86400) | st.floats() | json_values,
        "value": st.floats(-1e6, 1e6) | st.floats() | json_values,
    }
    return st.lists(st.fixed_dictionaries({}, optional=field) | json_values, max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_reading_is_kept_or_refused_with_a_reason(db, sensors, data):
    sent = data.draw(readings(sensors.serials))
    batch = validate(db, sent, "http", now=NOW)
    refused = [r.index for r in batch.refused]
    assert len(refused) == len(set(refused))
    assert batch.columns.n + len(refused) == len(sent)
    assert all(r.code and r.detail for r in batch.refused)
    kept = sorted(set(range(len(sent))) - set(refused))
    for i, sensor_id in zip(kept, batch.columns["sensor_id"].tolist(), strict=True):
        assert sent[i]["sensor"] in sensors.serials and sensor_id > 0


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_sdot_times_are_the_minute_written_in_seoul(when):
    minute = when.replace(second=0, microsecond=0)
    epoch = parse_time(minute.strftime("%Y%m%d%H%M"), SEOUL)
    assert datetime.fromtimestamp(epoch, SEOUL).replace(tzinfo=None) == minute
