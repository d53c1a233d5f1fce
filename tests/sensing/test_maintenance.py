"""The maintenance job on crafted series: a silent sensor, a stuck one (flatline), a spike, impossible values
refused at intake, and a healthy sensor that is not listed; the staff's page lists them with since-when and a
link to the sensor's page, and only staff see it (both stores)."""

from __future__ import annotations

import itertools
import random
import statistics
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.sensing import maintenance
from smartcity.sensing.intake import store_now, validate
from tests.conftest import make_key, make_user

STEP = 120


def _series(serial: str, quantity: str, start: int, values: list[float]) -> list[dict]:
    return [
        {"sensor": serial, "quantity": quantity, "time": start + i * STEP, "value": v} for i, v in enumerate(values)
    ]


def test_silent_flat_spiking_and_impossible_sensors_are_found_with_since_when(db, client, sensors):
    rng = random.Random(7)
    now = int(time.time()) // STEP * STEP
    start = now - 2 * 3600
    n = 2 * 3600 // STEP + 1  # up to now
    healthy, silent, flat, spiky, broken = sensors.serials[:5]

    def noisy(k: int, mean: float = 20.0) -> list[float]:
        return [round(mean + rng.gauss(0, 2), 1) for _ in range(k)]

    spike_at = n - 10
    spiky_values = noisy(n)
    spiky_values[spike_at] = 400.0
    flat_from = n - 15
    flat_values = noisy(flat_from) + [17.0] * 15
    readings = (
        _series(healthy, "pm10", start, noisy(n))
        + _series(silent, "pm10", start, noisy(30))  # an hour's readings, then nothing for an hour
        + _series(flat, "pm10", start, flat_values)
        + _series(spiky, "pm10", start, spiky_values)
        + _series(broken, "pm10", start, noisy(n))
        + [{"sensor": broken, "quantity": "pm10", "time": now - 600, "value": 5000}]  # beyond what physics allows
    )
    outcome = store_now(db, validate(db, readings, "http", now=now))
    assert [r.code for r in outcome.refused] == ["out_of_range"]

    assert maintenance.run(db, now=now) == 4
    with db.session() as s:
        found = {(i["serial"], i["kind"]): i for i in maintenance.issues(s)}
    assert set(found) == {
        (silent, "silent"),
        (flat, "flatline"),
        (spiky, "spike"),
        (broken, "out_of_range"),
    }
    assert found[(silent, "silent")]["since"] == start + 29 * STEP
    assert found[(flat, "flatline")]["since"] == start + flat_from * STEP
    assert found[(spiky, "spike")]["since"] == start + spike_at * STEP
    assert found[(broken, "out_of_range")]["since"] == now - 600
    assert found[(flat, "flatline")]["quantity"] == "pm10"

    # A second run replaces the list: the silent sensor speaks again and drops off.
    store_now(db, validate(db, _series(silent, "pm10", now - STEP, [21.0, 20.0]), "http", now=now + STEP))
    maintenance.run(db, now=now + STEP)
    with db.session() as s:
        assert (silent, "silent") not in {(i["serial"], i["kind"]) for i in maintenance.issues(s)}

    make_user(db, "fixer", "staff", department="11230-roads")
    make_user(db, "neighbour", "citizen")
    assert client.get("/staff/sensing/maintenance").status_code == 401
    assert client.get("/staff/sensing/maintenance", headers={"X-API-Key": make_key(db, "neighbour")}).status_code == 403
    page = client.get("/staff/sensing/maintenance?lang=en", headers={"X-API-Key": make_key(db, "fixer")})
    assert page.status_code == 200
    assert f'<a href="/air/sensors/{flat}">{flat}</a>' in page.text
    assert page.text.count('data-kind="spike"') == 1 and "Flatline" in page.text


def test_series_checks_on_their_own():
    assert maintenance.interval_of([0, 120, 240, 600]) == 120
    assert maintenance.silent(1000, 120, 1000 + 5 * 120) is None
    assert maintenance.silent(1000, 120, 1000 + 5 * 120 + 1).since == 1000
    steady = [(i * 60, 10.0 + (i % 3)) for i in range(40)]
    assert maintenance.flatline(steady) is None and maintenance.spike(steady, 0) is None
    assert maintenance.spike([*steady, (2400, 11.5)], 0) is None  # within the usual spread
    assert maintenance.spike([*steady, (2400, 60.0)], 0).since == 2400
    assert maintenance.flatline([*steady, *((2400 + i, 3.0) for i in range(9))]) is None  # nine: not yet
    assert maintenance.flatline([*steady, *((2400 + i, 3.0) for i in range(10))]).since == 2400


# --- the vectorised checks against the rules written plainly, one series at a time ---------------------------


def _plain_flatline(series):
    value, run = series[-1][1], 0
    for _, v in reversed(series):
        if v != value:
            break
        run += 1
    return (series[-run][0], run) if run >= maintenance.FLATLINE_K else None


def _plain_spike(series, since):
    for i, (t, v) in enumerate(series):
        if t < since or i < maintenance.SPIKE_WINDOW // 2:
            continue
        before = [x for _, x in series[max(0, i - maintenance.SPIKE_WINDOW) : i]]
        median = statistics.median(before)
        mad = statistics.median(abs(x - median) for x in before)
        if mad and abs(0.6745 * (v - median) / mad) > maintenance.SPIKE_Z:
            return t
    return None


def _plain_interval(times):
    gaps = [b - a for a, b in itertools.pairwise(sorted(set(times)))]
    return int(statistics.median(gaps)) if gaps else None


series_of = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from([1.0, 2.0, 3.0, 10.0, 60.0, 400.0]), st.integers(0, 3)),
    min_size=1,
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(series_of, min_size=0, max_size=6), st.integers(0, 6000))
def test_all_series_at_once_find_what_each_series_alone_does(drawn, since):
    """Several series (gaps, repeated values, spikes and runs drawn by hypothesis) checked together as arrays
    find, per series, exactly what the rules written for one series find."""
    keys, times, values, plain = [], [], [], {}
    for key, steps in enumerate(drawn):
        t, series = 0, []
        for gap, value, repeat in steps:
            for _ in range(repeat + 1):
                t += gap * 60
                series.append((t, value))
        plain[key] = series
        keys += [key] * len(series)
        times += [p[0] for p in series]
        values += [p[1] for p in series]
    order = list(range(len(keys)))
    random.Random(since).shuffle(order)  # the store's order is not the series' order
    runs = maintenance.Runs(
        np.array([keys[i] for i in order], np.int64),
        np.array([times[i] for i in order], np.int64),
        np.array([values[i] for i in order], float),
    )
    assert {k: (since_, run) for k, since_, run, _ in runs.flatlines()} == {
        k: found for k, s in plain.items() if (found := _plain_flatline(s))
    }
    assert {k: t for k, t, *_ in runs.spikes(since)} == {
        k: found for k, s in plain.items() if (found := _plain_spike(s, since)) is not None
    }
    assert runs.intervals() == {
        k: found for k, s in plain.items() if (found := _plain_interval([t for t, _ in s])) is not None
    }
    assert runs.last() == {k: s[-1][0] for k, s in plain.items()}
    assert len(runs.starts) == len(runs.ends) == len(plain)


def test_a_run_with_no_reading_in_the_lookback_finds_the_silent_sensors(db, sensors):
    """The state of a freshly served city: sensors registered, some heard long ago, none in the lookback (an
    empty window once failed every run in Runs.last: one series' end without a start)."""
    now = int(time.time()) // STEP * STEP
    assert maintenance.run(db, now=now) == 0  # registered, never heard: nothing to visit yet

    heard, never = sensors.serials[:2]
    yesterday = now - 86400
    store_now(db, validate(db, _series(heard, "pm10", yesterday, [20.0, 21.0, 19.0]), "http", now=yesterday))
    assert maintenance.run(db, now=now) == 1
    with db.session() as s:
        found = maintenance.issues(s)
    assert [(i["serial"], i["kind"], i["since"]) for i in found] == [(heard, "silent", yesterday + 2 * STEP)]
    assert never not in {i["serial"] for i in found}
