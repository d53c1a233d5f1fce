"""Safety intake under load, in one run against `smartcity serve` (one uvicorn process, SQLite WAL):

1. OsmAnd positions/s over HTTP on the OsmAnd port (wrk, a Lua script varying devices and positions)
   beside a bare ASGI endpoint that only answers 200, served by the same embedded uvicorn set-up
   (httptools, uvloop), both with the same 256 connections; goal ≥ half the bare rate.
2. Positions/s through the gateway batch endpoint (goal ≥ 50,000/s), and OwnTracks over MQTT stored
   end to end beside a bare subscriber that only counts messages from the same broker (goal ≥ half).
3. SOS → control-room console latency (p50/p99) while (1) runs: an operator of Gangnam's control room
   subscribed to /api/events/stream?topics=safety.incident, from sending alarm=sos to receiving
   safety.incident.opened (goal p99 < 100 ms).
(4, nearest cameras, is bench_assets_nearest.py.)

World: 100,000 devices (2,000 quick), each person with 3 safe zones and a consenting guardian,
110,000 cameras, bulk-inserted. BENCH_SAFETY_ONLY=osmand runs (1) and (3) alone (to iterate on the OsmAnd
path: about a minute). Also runnable as helpers: `python -m bench.bench_safety_intake
bare PORT | publish PORT TOPIC N | count PORT TOPIC N`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GANGNAM = "11230"
BOX = (37.48, 126.90, 37.60, 127.10)  # south, west, north, east: inside Seoul
GANGNAM_POINT = (37.4985, 127.0630)


# --- the world --------------------------------------------------------------------------------------


def build(url: str, devices: int, cameras: int, mqtt_devices: int, sos_devices: int) -> dict:
    from sqlalchemy import insert

    from smartcity.core import accounts
    from smartcity.core.city import load_profile
    from smartcity.core.db import Database, migrate, utcnow
    from smartcity.core.seed import seed_city
    from smartcity.models import load_all
    from smartcity.safety.models import Device, DeviceState, GuardianLink, Person, Zone

    load_all()
    migrate(url)
    db = Database(url)
    rng = random.Random(7)
    now = utcnow()
    with db.session() as s:
        seed_city(s, load_profile("seoul"))
        operator = accounts.create_user(
            s, accounts.NewUser("bench-operator", "bench-password", "operator", department=f"{GANGNAM}-control")
        )
        guardians = [
            accounts.create_user(s, accounts.NewUser(f"bench-guardian-{i}", "bench-password", "guardian"))
            for i in range(20)
        ]
        admin = accounts.create_user(s, accounts.NewUser("bench-admin", "bench-password", "admin"))
        _, operator_key = accounts.create_api_key(s, "bench operator", user=operator)
        _, gateway_key = accounts.create_api_key(s, "bench gateway", user=admin)
        total = devices + sos_devices
        s.execute(
            insert(Person),
            [
                {"id": i + 1, "kind": "child", "name": f"Bench {i}", "notes": "", "active": True, "created_at": now}
                for i in range(total)
            ],
        )
        idents = [f"bench-{i}" for i in range(devices)] + [f"sos-{i}" for i in range(sos_devices)]
        rows = [
            {
                "id": i + 1,
                "identifier": ident,
                "protocol": "any",
                "name": "",
                "person_id": i + 1,
                "active": True,
                "created_at": now,
            }
            for i, ident in enumerate(idents)
        ]
        rows += [
            {
                "id": total + i + 1,
                "identifier": f"mq/d{i}",
                "protocol": "owntracks",
                "name": "",
                "person_id": i + 1,
                "active": True,
                "created_at": now,
            }
            for i in range(mqtt_devices)
        ]
        s.execute(insert(Device), rows)
        s.execute(
            insert(DeviceState),
            [{"device_id": r["id"], "person_id": r["person_id"], "version": 0, "zones": {}, "flags": {}} for r in rows],
        )
        s.execute(
            insert(GuardianLink),
            [
                {
                    "person_id": i + 1,
                    "user_id": guardians[i % 20].id,
                    "relation": "parent",
                    "consent_by": "bench",
                    "consent_basis": "bench",
                    "consent_at": now,
                    "created_at": now,
                }
                for i in range(total)
            ],
        )
        zones = []
        for i in range(total):
            lat, lon = rng.uniform(BOX[0], BOX[2]), rng.uniform(BOX[1], BOX[3])
            for k in range(3):
                zones.append(
                    {
                        "kind": "safe",
                        "person_id": i + 1,
                        "name": f"zone {k}",
                        "lat": lat + 0.01 * k,
                        "lon": lon,
                        "radius_m": 150.0,
                        "geometry": None,
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        for start in range(0, len(zones), 50_000):
            s.execute(insert(Zone), zones[start : start + 50_000])
        try:
            from smartcity.assets.models import Asset

            cams = [
                {
                    "kind": "cctv",
                    "name": f"camera {i}",
                    "lat": rng.uniform(BOX[0], BOX[2]),
                    "lon": rng.uniform(BOX[1], BOX[3]),
                    "district_code": None,
                    "attributes": {},
                    "source": "bench",
                    "external_id": str(i),
                    "key": f"bench:{i}",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(cameras)
            ]
            for start in range(0, len(cams), 50_000):
                s.execute(insert(Asset), cams[start : start + 50_000])
        except ImportError:
            cameras = 0
    db.dispose()
    return {"operator_key": operator_key, "gateway_key": gateway_key, "cameras": cameras}


# --- helpers run as separate processes --------------------------------------------------------------


async def _bare(port: int) -> None:
    from smartcity.safety.osmand import _EmbeddedServer

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    server = _EmbeddedServer(app, "127.0.0.1", port, "warning")
    await server.start()
    await asyncio.Event().wait()


def _client(port: int, name: str):
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    return client


def _publish(port: int, topic: str, n: int) -> None:
    """OwnTracks location messages at QoS 1, as fast as the broker takes them; prints the start time."""
    client = _client(port, "bench-publisher")
    client.loop_start()
    base = int(time.time()) - 5 * 86400
    print(f"start {time.time()}", flush=True)
    infos = []
    for i in range(n):
        msg = {
            "_type": "location",
            "lat": GANGNAM_POINT[0] + (i % 100) * 1e-4,
            "lon": GANGNAM_POINT[1],
            "tst": base + i,
            "acc": 10,
            "vel": 4,
            "batt": 80,
            "tid": "bn",
        }
        infos.append(client.publish(topic.replace("{i}", str(i % 1000)), json.dumps(msg), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    print(f"published {time.time()}", flush=True)
    client.disconnect()


def _count(port: int, topic: str, n: int) -> None:
    """A bare subscriber: counts messages; prints the time of the n-th."""
    client = _client(port, "bench-counter")
    seen = [0]
    done = threading.Event()

    def on_message(_c, _u, _m):
        seen[0] += 1
        if seen[0] == n:
            print(f"last {time.time()}", flush=True)
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.loop_start()
    print("ready", flush=True)
    done.wait(300)
    client.disconnect()


# --- measurements -----------------------------------------------------------------------------------

LUA = """
local n = %(n)d
counter = 0
id = 0
local threads = {}
function setup(thread) thread:set("id", #threads) table.insert(threads, thread) end
function init(args) math.randomseed(%(seed)d + id) end
request = function()
  counter = counter + 1
  local d = math.random(0, n - 1)
  local ts = %(base)d + counter * 2 + id
  local lat = %(s)f + math.random() * %(dlat)f
  local lon = %(w)f + math.random() * %(dlon)f
  return wrk.format("GET", "/?id=bench-" .. d .. "&timestamp=" .. ts .. "&lat=" .. string.format("%%.6f", lat) ..
    "&lon=" .. string.format("%%.6f", lon) .. "&speed=1.0&bearing=90.0&altitude=30.0&accuracy=10.0&batt=80.0")
end
"""


def _osmand_results(main_port: int) -> dict[str, float]:
    """The serving process's count of OsmAnd requests by result (stored, duplicate, each refusal's code)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{main_port}/metrics", timeout=30).text
    found: dict[str, float] = {}
    for code, n in re.findall(r'smartcity_intake_total\{protocol="osmand",result="([^"]+)"\} ([\d.e+]+)', text):
        found[code] = found.get(code, 0) + float(n)
    return found


def wrk(port: int, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    refused = int(errors.group(1)) if errors else 0
    # Answers other than 2xx (a refusal under backpressure is a 503) stored nothing: the rate that counts is the
    # accepted answers'.
    span_s = float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[total.group(3)] if total else 0
    accepted = round((int(total.group(1)) - refused) / span_s) if total and span_s else round(rate)
    return {
        "requests_per_second": round(rate),
        "accepted_per_second": accepted,
        "non_2xx": refused,
        "latency_p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
    }


def sos_latency(
    main_port: int, osmand_port: int, key: str, sos_devices: int, seconds: float, first_person: int
) -> list[float]:
    """Alarm=sos from distinct persons in Gangnam; time until the operator's stream shows the incident."""
    import httpx

    sent: dict[int, float] = {}
    acked: dict[int, float] = {}  # the OsmAnd answer: after the writer's commit
    wall: dict[int, float] = {}  # time.time() at sending, to compare with the writer's stored times
    got: dict[int, float] = {}
    ready = threading.Event()
    stop = threading.Event()

    def listen():
        with (
            httpx.Client(timeout=None) as http,
            http.stream(
                "GET",
                f"http://127.0.0.1:{main_port}/api/events/stream?topics=safety.incident",
                headers={"X-API-Key": key},
            ) as r,
        ):
            event = None
            for line in r.iter_lines():
                if not ready.is_set():
                    ready.set()
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "safety.incident.opened":
                    got.setdefault(json.loads(line[6:])["person_id"], time.perf_counter())
                if stop.is_set():
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    with httpx.Client(timeout=10) as http:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline and i < sos_devices:
            ts = int(time.time()) - 1
            wall_t0, t0 = time.time(), time.perf_counter()
            r = http.get(
                f"http://127.0.0.1:{osmand_port}/?id=sos-{i}&timestamp={ts}&lat={GANGNAM_POINT[0]}"
                f"&lon={GANGNAM_POINT[1]}&accuracy=8&alarm=sos"
            )
            if r.status_code == 200:
                sent[i], acked[i], wall[i] = t0, time.perf_counter(), wall_t0
            i += 1
            time.sleep(0.1)
    time.sleep(1)
    stop.set()
    # The persons of the sos-{i} devices are numbered after the ordinary devices' persons.
    latencies = sorted((got[pid] - sent[i]) * 1000 for i in sent if (pid := first_person + i + 1) in got)
    SOS_TRACE.extend(
        (i, first_person + i + 1, wall[i], (acked[i] - sent[i]) * 1000, (got[pid] - sent[i]) * 1000)
        for i in sent
        if (pid := first_person + i + 1) in got
    )
    return latencies


# (sos index, person id, sent at (epoch s), ms to the OsmAnd answer, ms to the console) of the last run
SOS_TRACE: list[tuple] = []


def sos_stages(url: str) -> dict:
    """Where an SOS's time goes, from the run's traces and what the writer stored: sent → taken from the
    socket and validated by the writer (the position's received_at) → incident opened in the batch's
    transaction (opened_at) → the OsmAnd answer (after the commit) → on the console's stream."""
    import sqlalchemy as sa

    if not SOS_TRACE:
        return {}
    engine = sa.create_engine(url)
    stages: dict[str, list[float]] = {"to_writer": [], "writer_to_opened": [], "opened_to_answer": []}
    stages["answer_to_console"] = []
    with engine.connect() as conn:
        for i, person_id, sent_at, answer_ms, console_ms in SOS_TRACE:
            received = conn.exec_driver_sql(
                "SELECT received_at FROM safety_positions p JOIN safety_devices d ON d.id = p.device_id "
                "WHERE d.identifier = ? UNION ALL SELECT received_at FROM safety_positions_recent p "
                "JOIN safety_devices d ON d.id = p.device_id WHERE d.identifier = ?",
                (f"sos-{i}", f"sos-{i}"),
            ).scalar()
            opened = conn.exec_driver_sql(
                "SELECT opened_at FROM safety_incidents WHERE person_id = ? ORDER BY id LIMIT 1", (person_id,)
            ).scalar()
            if received is None or opened is None:
                continue
            opened_dt = opened if isinstance(opened, datetime) else datetime.fromisoformat(str(opened))
            opened_s = (opened_dt if opened_dt.tzinfo else opened_dt.replace(tzinfo=UTC)).timestamp()
            to_writer = received / 1000 - sent_at
            stages["to_writer"].append(to_writer * 1000)
            stages["writer_to_opened"].append((opened_s - received / 1000) * 1000)
            stages["opened_to_answer"].append(answer_ms - (opened_s - sent_at) * 1000)
            stages["answer_to_console"].append(console_ms - answer_ms)
    engine.dispose()
    out = {}
    for name, values in stages.items():
        values.sort()
        if values:
            out[name] = {
                "p50": round(values[len(values) // 2], 1),
                "p99": round(values[min(len(values) - 1, int(len(values) * 0.99))], 1),
                "max": round(values[-1], 1),
            }
    return out


def run(quick: bool = False) -> dict:
    from tests.servers import MosquittoServer, free_port, wait_for_port

    n = 2_000 if quick else 100_000
    cameras = 2_000 if quick else 110_000
    mqtt_devices = 1_000
    sos_devices = 60 if quick else 200
    seconds = 4 if quick else 15
    tmp = Path(tempfile.mkdtemp(prefix="bench-safety-"))
    url = f"sqlite:///{tmp}/bench.db"
    t0 = time.perf_counter()
    world = build(url, n, cameras, mqtt_devices, sos_devices)
    build_s = time.perf_counter() - t0
    broker = MosquittoServer().start()
    main_port, osmand_port, bare_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "SMARTCITY_DATABASE_URL": url,
        "SMARTCITY_PORT": str(main_port),
        "SMARTCITY_OSMAND_PORT": str(osmand_port),
        "SMARTCITY_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "SMARTCITY_VAR_DIR": str(tmp / "var"),
        "SMARTCITY_SECRET_KEY": "bench",
        "SMARTCITY_LOG_LEVEL": "warning",
        "SMARTCITY_RUN_JOBS": "false",
        "SMARTCITY_TILE_URL": "",
        "PYTHONPATH": str(ROOT / "src"),
    }
    procs = []
    try:
        t0 = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-c", "from smartcity.cli import main; main()", "serve"], env=env, cwd=tmp
        )
        procs.append(server)
        bare = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_safety_intake", "bare", str(bare_port)],
            cwd=ROOT,
            env={**env, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"},
        )
        procs.append(bare)
        wait_for_port(main_port, 300)
        wait_for_port(osmand_port, 60)
        wait_for_port(bare_port, 60)
        startup_s = time.perf_counter() - t0
        import httpx

        httpx.get(f"http://127.0.0.1:{osmand_port}/?id=bench-0&lat=37.5&lon=127.0", timeout=60)  # warm-up
        if os.environ.get("BENCH_SAFETY_ONLY") == "batch":  # (2)'s batch endpoint and its raw stores alone
            result = {"devices": n, "build_seconds": round(build_s, 1), "server_startup_seconds": round(startup_s, 1)}
            result["batch"] = _batch_with_cpu(server.pid, main_port, world["gateway_key"], n, quick)
            server.terminate()
            server.wait(60)
            _raw_stores(result, url, n, quick)
            result["load_average"] = os.getloadavg()
            return result
        script = tmp / "osmand.lua"
        s, w, north, e = BOX
        script.write_text(
            LUA
            % {
                "n": n,
                "seed": 11,
                # Each thread's fixes step 2 s from 10 days ago (thread 1 on the odd seconds): 432,000 requests a
                # thread before they reach the present. With a step of 8 they passed the server's clock (plus
                # SAFETY_FUTURE_TOLERANCE_S) after ~108,000, ~10 s into a quiet run, and every request after that
                # was refused as a future fix, counted in the non-2xx answers: sessions 21-23's "503s".
                "base": int(time.time()) - 10 * 86400,
                "s": s,
                "w": w,
                "dlat": north - s,
                "dlon": e - w,
            }
        )
        connections = 256  # the same for both: each OsmAnd request waits for its batch's commit
        bare_result = wrk(bare_port, script, seconds, connections)
        latencies: list[float] = []
        sos_thread = threading.Thread(
            target=lambda: latencies.extend(
                sos_latency(main_port, osmand_port, world["operator_key"], sos_devices, seconds - 1, n)
            )
        )
        sos_thread.start()
        writer_pids = _children(server.pid)
        before = (_cpu_seconds([server.pid]), _cpu_seconds(writer_pids))
        results_before = _osmand_results(main_port)
        osmand_result = wrk(osmand_port, script, seconds, connections)
        after = (_cpu_seconds([server.pid]), _cpu_seconds(writer_pids))
        results_after = _osmand_results(main_port)
        # What the server answered, by its own count (smartcity_intake_total{protocol="osmand"}): a refusal's code
        # says whether the intake pushed back (backlogged, overloaded) or the request was wrong.
        osmand_result["results"] = {
            code: round(n - results_before.get(code, 0))
            for code, n in sorted(results_after.items())
            if n - results_before.get(code, 0) > 0
        }
        sos_thread.join()
        osmand_result["cpu_us_per_request"] = {
            name: round((a - b) * 1e6 / max(osmand_result["requests_per_second"] * seconds, 1), 1)
            for name, a, b in zip(("serving_process", "writer"), after, before, strict=True)
        }
        result = {
            "devices": n,
            "zones": 3 * n,
            "cameras": world["cameras"],
            "store": "sqlite",
            "writer": "process (SMARTCITY_SAFETY_WRITER default)",
            "build_seconds": round(build_s, 1),
            "server_startup_seconds": round(startup_s, 1),
            "osmand_http": {
                "bare_asgi": bare_result,
                "osmand": osmand_result,
                "connections": connections,
                "seconds": seconds,
                "ratio": round(osmand_result["accepted_per_second"] / bare_result["accepted_per_second"], 3),
                "goal": "ratio >= 0.5 (accepted answers per second)",
            },
        }
        result["sos_latency_ms"] = _sos_summary(latencies, n)
        result["sos_latency_ms"]["stages"] = sos_stages(url)
        result["load_average"] = os.getloadavg()  # the machine may be shared: what else ran
        if os.environ.get("BENCH_SAFETY_ONLY") == "osmand":
            return result
        # The OsmAnd step leaves ~300,000 positions staged; the writer's mover moves them into the history when
        # they pass its threshold or a minute. Measured during that move, the batch case would count the OsmAnd
        # step's rows too (49,925/s with the move, 57,304/s without, in two quiet runs of session 24): it waits.
        drained = _staging_drained(url)
        result["batch"] = _batch_with_cpu(server.pid, main_port, world["gateway_key"], n, quick)
        result["batch"]["waited_for_staging_s"] = drained
        result["mqtt"] = _mqtt(broker.port, main_port, 5_000 if quick else 50_000, tmp)
        server.terminate()
        server.wait(60)
        _raw_stores(result, url, n, quick)
        # OsmAnd's shape: a transaction per batch of about half the connections (two batches in flight), staged as
        # the writer process stages them: the store's ceiling for (1), beside what (1) stored.
        raw = result["osmand_http"]["raw_store"] = _raw_store(url, n, quick, per_request=connections // 2, staging=True)
        raw["osmand_share"] = round(osmand_result["requests_per_second"] / raw["rows_per_second"], 3)
        result["staged_reads_ms"] = _staged_reads(url, n)
        result["postgresql_batch"] = _postgres_batch(quick, env)
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _sos_summary(latencies: list[float], n: int) -> dict:
    if not latencies:
        return {"samples": 0}
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "samples": len(latencies),
        "p50": round(statistics.median(latencies), 1),
        "p99": round(q[98], 1),
        "max": round(max(latencies), 1),
        "goal": "p99 < 100 ms",
        "while": "the OsmAnd wrk load runs",
    }


def _staged_reads(url: str, n: int, samples: int = 100) -> dict:
    """A guardian's reads of one device with the staging table as full as a mover keeping up lets it get (its
    threshold, 3 × the devices; topped up with fixes of random devices, the server stopped). The staging table
    is keyed by time first, so a device's staged fixes are read by time range: the newest fix
    (`registry.newest_fixes`, from the device's checkpointed state on) and a track whose range holds every
    staged fix (the `all_positions` union, as `service.track` reads it, without its audit)."""
    from sqlalchemy import func, select

    from smartcity.core.batchstore import batch_store
    from smartcity.core.db import Database
    from smartcity.safety.models import DeviceState, RecentPositionRow, all_positions
    from smartcity.safety.registry import newest_fixes

    db = Database(url)
    store = batch_store(db, staging=True)
    rng = random.Random(5)
    newest, track = [], []
    try:
        with db.session() as s:
            staged = s.execute(select(func.count()).select_from(RecentPositionRow)).scalar()
        more = max(0, 3 * n - staged)
        cols = _positions(n, more, 9, 7)  # one a second from nine days ago
        for start in range(0, more, 10_000):
            with db.engine.begin() as conn:
                store.prepare(conn)
                chunk = {k: v[start : start + 10_000] for k, v in cols.items()}
                store.insert_new(conn, "safety_positions", chunk, ("device_id", "fix_time"), maybe_present=False)
        with db.session() as s:
            staged = s.execute(select(func.count()).select_from(RecentPositionRow)).scalar()
            ids = list(s.scalars(select(DeviceState.device_id)))
            since = datetime.now(UTC) - timedelta(days=11)  # every staged fix is younger
            positions = all_positions()
            for device_id in rng.sample(ids, min(samples, len(ids))):
                state = s.get(DeviceState, device_id)
                t0 = time.perf_counter()
                newest_fixes(s, [device_id], state.fix_time)
                newest.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                q = select(positions).where(positions.c.device_id == device_id, positions.c.fix_time >= since)
                s.execute(q.order_by(positions.c.fix_time)).all()
                track.append((time.perf_counter() - t0) * 1000)
    finally:
        db.dispose()

    def summary(ms: list[float]) -> dict:
        q = statistics.quantiles(ms, n=100, method="inclusive")
        return {"p50": round(statistics.median(ms), 2), "p99": round(q[98], 2), "max": round(max(ms), 2)}

    return {"staged_rows": staged, "newest_fix": summary(newest), "track": summary(track), "samples": len(newest)}


def _staging_drained(url: str, timeout: float = 300) -> float:
    """Wait until the SQLite staging table is empty (the writer's mover has moved what earlier steps staged);
    the seconds waited."""
    import sqlite3

    started = time.perf_counter()
    look = sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=30)
    try:
        while time.perf_counter() - started < timeout:
            if not look.execute("SELECT 1 FROM safety_positions_recent LIMIT 1").fetchone():
                break
            time.sleep(1)
    finally:
        look.close()
    return round(time.perf_counter() - started, 1)


def _batch_with_cpu(server_pid: int, port: int, key: str, n: int, quick: bool) -> dict:
    """(2)'s batch endpoint, with the CPU per position of the serving process and its writers."""
    writer_pids = _children(server_pid)
    before = (_cpu_seconds([server_pid]), _cpu_seconds(writer_pids))
    found = _batch(port, key, n, quick)
    after = (_cpu_seconds([server_pid]), _cpu_seconds(writer_pids))
    found["cpu_us_per_position"] = {
        name: round((a - b) * 1e6 / found["acknowledged"], 1)
        for name, a, b in zip(("serving_process", "writer"), after, before, strict=True)
    }
    return found


def _raw_stores(result: dict, url: str, n: int, quick: bool) -> None:
    """The same rows as the batch case through the batch store alone, on the same database (the server
    stopped): the store's ceiling, into the keyed table as a thread writer stores and into the staging table as
    the SQLite writer process does (the mover's later work not counted: it is off the intake's path)."""
    result["raw_store"] = _raw_store(url, n, quick)
    result["raw_store_staged"] = _raw_store(url, n, quick, staging=True, days_ago=4)
    best = max(result["raw_store"]["rows_per_second"], result["raw_store_staged"]["rows_per_second"])
    result["batch"]["share_of_raw_store"] = round(result["batch"]["positions_per_second"] / best, 3)


def _batch(port: int, key: str, n: int, quick: bool, days_ago: int = 8) -> dict:
    import httpx

    per_request = 2_000 if quick else 10_000
    requests = 4 if quick else 12
    rng = random.Random(3)
    base = int(time.time()) - days_ago * 86400
    bodies = []
    for r in range(requests):
        items = [
            {
                "device": f"bench-{rng.randrange(n)}",
                "time": base + r * per_request + i,
                "lat": rng.uniform(BOX[0], BOX[2]),
                "lon": rng.uniform(BOX[1], BOX[3]),
                "speed": 1.0,
                "accuracy": 10,
                "battery": 80,
            }
            for i in range(per_request)
        ]
        bodies.append(json.dumps({"positions": items}).encode())
    stored = [0]
    lock = threading.Lock()

    def post(chunk):
        with httpx.Client(timeout=120, headers={"X-API-Key": key, "content-type": "application/json"}) as http:
            for body in chunk:
                doc = http.post(f"http://127.0.0.1:{port}/api/safety/positions", content=body).json()
                with lock:
                    stored[0] += doc["stored"] + doc["duplicates"]

    t0 = time.perf_counter()
    threads = [threading.Thread(target=post, args=(bodies[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "positions": requests * per_request,
        "acknowledged": stored[0],
        "per_request": per_request,
        "positions_per_second": round(stored[0] / elapsed),
        "goal": ">= 50000/s",
    }


def _positions(n: int, rows: int, days_ago: int, seed: int) -> dict:
    """The batch case's rows as the pipeline's columns (devices 1…n as in `build`)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    device = rng.integers(1, n + 1, rows)
    now_ms = int(time.time() * 1000)
    return {
        "device_id": device,
        "person_id": device,
        "fix_time": now_ms - days_ago * 86_400_000 + np.arange(rows) * 1000,
        "received_at": np.full(rows, now_ms),
        "lat": rng.uniform(BOX[0], BOX[2], rows),
        "lon": rng.uniform(BOX[1], BOX[3], rows),
        "speed": np.full(rows, 1.0),
        "bearing": np.full(rows, np.nan),
        "altitude": np.full(rows, np.nan),
        "accuracy": np.full(rows, 10.0),
        "battery": np.full(rows, 80.0),
        "alarm": np.full(rows, None, dtype=object),
        "protocol": np.full(rows, "batch", dtype=object),
        "outside_city": np.zeros(rows, dtype=bool),
        "attributes": np.full(rows, None, dtype=object),
        "valid": np.ones(rows, dtype=bool),
    }


def _raw_store(
    url: str, n: int, quick: bool, per_request: int | None = None, staging: bool = False, days_ago: int | None = None
) -> dict:
    """Rows/s of the batch store alone (core.batchstore: SQLite executemany / PostgreSQL COPY), in transactions
    of the batch case's request size (or `per_request`; `staging`: into the staging table as the SQLite writer
    process writes, every fix new), with no decoding, validation or rules: what the intake could reach."""
    from sqlalchemy import event

    from smartcity.core.batchstore import WalCheckpointer, batch_store
    from smartcity.core.db import Database

    per_request = per_request or (2_000 if quick else 10_000)
    rows = per_request * (4 if quick else 12) if per_request >= 1000 else per_request * (50 if quick else 200)
    cols = _positions(n, rows, days_ago or (5 if staging else 6), 6 if staging else 5)
    db = Database(url)
    checkpointer = None
    if not db.is_postgres:  # as the writer process does: WAL checkpoints from a thread, none in the commits
        event.listen(db.engine, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA wal_autocheckpoint = 0"))
        checkpointer = WalCheckpointer(db.engine.url.database).start()
    store = batch_store(db, background_checkpoints=checkpointer is not None, staging=staging)
    try:
        t0 = time.perf_counter()
        for start in range(0, rows, per_request):
            chunk = {k: v[start : start + per_request] for k, v in cols.items()}
            with db.engine.begin() as conn:
                store.prepare(conn)
                key = ("device_id", "fix_time")
                stored = store.insert_new(conn, "safety_positions", chunk, key, maybe_present=not staging)
                assert stored.all()
        elapsed = time.perf_counter() - t0
    finally:
        if checkpointer is not None:
            checkpointer.stop()
        db.dispose()
    return {"rows": rows, "per_transaction": per_request, "rows_per_second": round(rows / elapsed)}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _children(pid: int) -> list[int]:
    return [
        int(p)
        for p in os.listdir("/proc")
        if p.isdigit() and Path(f"/proc/{p}/stat").exists() and _parent(int(p)) == pid
    ]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _postgres_batch(quick: bool, env: dict) -> dict:
    """The gateway batch endpoint on PostgreSQL with 1 and then 2 writer processes (SMARTCITY_SAFETY_WRITERS;
    devices split between them by a stable hash), the same world, new fixes each time; and the raw store there."""
    from tests.servers import PostgresServer, free_port, wait_for_port

    n = 2_000 if quick else 100_000
    pg = PostgresServer().start()
    out: dict = {"devices": n, "store": "postgresql"}
    try:
        pg.execute("CREATE DATABASE bench")
        url = pg.url("bench")
        t0 = time.perf_counter()
        world = build(url, n, 0, 0, 0)
        out["build_seconds"] = round(time.perf_counter() - t0, 1)
        for writers, days_ago in ((1, 8), (2, 7)):
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, "-c", "from smartcity.cli import main; main()", "serve"],
                env={
                    **env,
                    "SMARTCITY_DATABASE_URL": url,
                    "SMARTCITY_PORT": str(port),
                    "SMARTCITY_OSMAND_PORT": str(free_port()),
                    "SMARTCITY_MQTT_URL": "",
                    "SMARTCITY_SAFETY_WRITERS": str(writers),
                },
                cwd=env["SMARTCITY_VAR_DIR"].rsplit("/", 1)[0],
            )
            try:
                wait_for_port(port, 300)
                _batch(port, world["gateway_key"], n, True, days_ago=days_ago + 1)  # warm-up: writers started
                # CPU per stored position, by process: what more cores would multiply.
                writer_pids = _children(server.pid)
                postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
                pg_pids = [postmaster, *_children(postmaster)]
                before = (_cpu_seconds([server.pid]), _cpu_seconds(writer_pids), _cpu_seconds(pg_pids))
                result = _batch(port, world["gateway_key"], n, quick, days_ago=days_ago)
                pg_pids = [postmaster, *_children(postmaster)]
                after = (_cpu_seconds([server.pid]), _cpu_seconds(writer_pids), _cpu_seconds(pg_pids))
                stored = result["acknowledged"]
                result["cpu_us_per_position"] = {
                    name: round((a - b) * 1e6 / stored, 1)
                    for name, a, b in zip(("serving_process", "writers", "postgresql"), after, before, strict=True)
                }
                out[f"writers_{writers}"] = result
            finally:
                server.terminate()
                server.wait(60)
        out["raw_store"] = _raw_store(url, n, quick)
        one, two = out["writers_1"]["positions_per_second"], out["writers_2"]["positions_per_second"]
        out["speed_up_with_2_writers"] = round(two / one, 2)
    finally:
        pg.stop()
    return out


def _helper(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.bench_safety_intake", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env
    )


def _stamp(proc: subprocess.Popen, word: str) -> float:
    for line in proc.stdout:
        if line.startswith(word):
            return float(line.split()[1]) if " " in line.strip() else time.time()
    raise RuntimeError(f"helper ended without {word!r}")


def _mqtt(broker_port: int, main_port: int, n: int, tmp: Path) -> dict:
    import httpx

    counter = _helper("count", str(broker_port), "bare/+/+", str(n))
    _stamp(counter, "ready")
    time.sleep(0.5)
    publisher = _helper("publish", str(broker_port), "bare/u/{i}", str(n))
    start = _stamp(publisher, "start")
    last = _stamp(counter, "last")
    publisher.wait(60)
    counter.wait(60)
    bare_rate = n / (last - start)

    def stored() -> float:
        text = httpx.get(f"http://127.0.0.1:{main_port}/metrics", timeout=30).text
        return sum(
            float(m)
            for m in re.findall(
                r'smartcity_intake_total\{protocol="mqtt",result="(?:stored|duplicate)"\} ([\d.e+]+)', text
            )
        )

    before = stored()
    publisher = _helper("publish", str(broker_port), "owntracks/mq/d{i}", str(n))
    start = _stamp(publisher, "start")
    deadline = time.time() + 300
    while stored() - before < n and time.time() < deadline:
        time.sleep(0.05)
    done = time.time()
    publisher.wait(60)
    got = stored() - before
    rate = got / (done - start)
    return {
        "messages": n,
        "stored": int(got),
        "bare_subscriber_per_second": round(bare_rate),
        "stored_per_second": round(rate),
        "ratio": round(rate / bare_rate, 3),
        "goal": "ratio >= 0.5",
        "qos": 1,
    }


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "bare":
        import uvloop  # the serving process runs on uvloop (uvicorn's "auto"): so does the bare endpoint

        uvloop.run(_bare(int(rest[0])))
    elif command == "publish":
        _publish(int(rest[0]), rest[1], int(rest[2]))
    elif command == "count":
        _count(int(rest[0]), rest[1], int(rest[2]))
    else:
        print(json.dumps(run(os.environ.get("BENCH_QUICK") == "1"), indent=2))
