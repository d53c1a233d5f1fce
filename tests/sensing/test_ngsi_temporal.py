"""The NGSI-LD temporal API over readings that came in by the sensing module's HTTP batch: instances in a
window, lastN, temporalValues, aggregated hourly values from the roll-ups (avg/min/max/sum/totalCount)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from smartcity.sensing.rollup import roll_up

ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def test_history_and_hourly_aggregates_of_a_sensor(db, sensors, sender_key, client):
    serial = sensors.serials[0]
    hour = (int(time.time()) // 3600 - 5) * 3600
    # pm10 every 10 minutes over two hours: 10, 11, … 21; humidity 40 % then 60 %.
    sent = [{"sensor": serial, "quantity": "pm10", "time": hour + 600 * i, "value": 10 + i} for i in range(12)]
    sent += [
        {"sensor": serial, "quantity": "humidity", "time": hour, "value": 40},
        {"sensor": serial, "quantity": "humidity", "time": hour + 60, "value": 60},
    ]
    r = client.post("/api/sensing/readings", json=sent, headers={"X-API-Key": sender_key})
    assert r.json()["stored"] == 14
    roll_up(db)
    url = f"/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:AirQualityObserved:{serial}"

    window = {"timerel": "between", "timeAt": iso(hour + 600), "endTimeAt": iso(hour + 3600), "attrs": "pm10"}
    got = client.get(url, params=window).json()
    assert [i["value"] for i in got["pm10"]] == [11, 12, 13, 14, 15]
    assert got["pm10"][0] == {"type": "Property", "value": 11, "observedAt": iso(hour + 600)}
    assert set(got) == {"id", "type", "pm10"}

    before = client.get(url, params={"timerel": "before", "timeAt": iso(hour + 1200), "attrs": "pm10"}).json()
    assert [i["value"] for i in before["pm10"]] == [10, 11]
    last = client.get(url, params={"timerel": "after", "timeAt": iso(hour), "attrs": "pm10", "lastN": "3"}).json()
    assert [i["value"] for i in last["pm10"]] == [19, 20, 21]
    simple = client.get(url, params={**window, "options": "temporalValues"}).json()
    assert simple["pm10"]["values"][0] == [11, iso(hour + 600)]
    humidity = client.get(url, params={"timerel": "after", "timeAt": iso(hour - 1), "attrs": "relativeHumidity"})
    assert [i["value"] for i in humidity.json()["relativeHumidity"]] == [0.4, 0.6]

    aggregated = client.get(
        url,
        params={
            "timerel": "between",
            "timeAt": iso(hour),
            "endTimeAt": iso(hour + 7200),
            "attrs": "pm10",
            "options": "aggregatedValues",
            "aggrMethods": "avg,min,max,sum,totalCount",
            "aggrPeriodDuration": "PT1H",
        },
    ).json()["pm10"]
    assert aggregated["totalCount"] == [[6, iso(hour), iso(hour + 3600)], [6, iso(hour + 3600), iso(hour + 7200)]]
    assert [a[0] for a in aggregated["avg"]] == [12.5, 18.5]
    assert [a[0] for a in aggregated["min"]] == [10, 16]
    assert [a[0] for a in aggregated["max"]] == [15, 21]
    assert [a[0] for a in aggregated["sum"]] == [75, 111]

    for params, status in (
        ({"timerel": "between", "timeAt": iso(hour)}, 400),
        ({"timerel": "whenever", "timeAt": iso(hour)}, 400),
        ({"timerel": "before", "timeAt": "yesterday"}, 400),
        ({"timerel": "after", "timeAt": iso(hour), "lastN": "0"}, 400),
        ({"timerel": "after", "timeAt": iso(hour), "options": "aggregatedValues", "aggrMethods": "median"}, 400),
    ):
        answer = client.get(url, params=params)
        assert (answer.status_code, answer.json()["type"]) == (status, ERR + "BadRequestData"), params
    unknown = client.get("/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:AirQualityObserved:V02Q0000000")
    assert (unknown.status_code, unknown.json()["type"]) == (404, ERR + "ResourceNotFound")
    assert (
        client.get("/ngsi-ld/v1/temporal/entities", params={"timerel": "after", "timeAt": iso(hour)}).status_code == 400
    )
