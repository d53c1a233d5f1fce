"""Fixtures the sensing tests share: registered sensors (the synthetic S-DoT list), a sender's API key."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pytest

from tests import synthetic
from tests.conftest import make_key, make_user


@dataclass(frozen=True)
class Registered:
    serials: list[str]  # the list's serials that the import kept (in file order)


@pytest.fixture
def sensors(db) -> Registered:
    """The synthetic S-DoT sensor list, imported through the sensing module."""
    from smartcity.sensing import service

    planted = synthetic.sdot()
    report = service.import_sensors(db, planted.data)
    assert report.created == planted.imported
    rows = list(csv.reader(io.StringIO(planted.data.decode("utf-8"))))[1:]
    kept = [r[0] for line, r in enumerate(rows, start=2) if line not in planted.skipped]
    return Registered(kept)


@pytest.fixture
def sender_key(db) -> str:
    """An API key of a staff account: what a sensor gateway sends with."""
    make_user(db, "gateway", "staff", department="11230-roads")
    return make_key(db, "gateway")


# The S-DoT raw export's header, as the city's field list names the fields (sdot_sensor_fields.csv).
SDOT_HEADER = [
    "모델명",
    "시리얼",
    "미세먼지2.5(초미세먼지)",
    "미세먼지10(미세먼지)",
    "기온",
    "상대습도",
    "풍향",
    "풍속",
    "조도",
    "자외선",
    "소음",
    "진동(x)",
    "진동(y)",
    "진동(z)",
    "측정시간",
]


def sdot_export(rows: list[dict], encoding: str = "utf-8") -> bytes:
    """A raw export with the given cells (by field name; missing cells empty), in the export's scaled units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SDOT_HEADER)
    for row in rows:
        writer.writerow([row.get(name, "") for name in SDOT_HEADER])
    return out.getvalue().encode(encoding)


class NotificationReceiver:
    """A real HTTP endpoint on a free port that keeps the JSON it is POSTed (NGSI-LD notifications)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from tests.servers import free_port

        self.received: list[dict] = []
        received = self.received

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                length = int(self.headers.get("Content-Length", 0))
                received.append({"body": json.loads(self.rfile.read(length)), "type": self.headers["Content-Type"]})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 20.0) -> list[dict]:
        import time

        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


@pytest.fixture
def receiver():
    """A notification endpoint for NGSI-LD subscriptions, stopped after the test."""
    endpoint = NotificationReceiver()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()
