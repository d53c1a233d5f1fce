"""A city-wide vote (issue 15, item 3) on SQLite: 1,700,000 verified citizens; ballots cast over HTTP on a
live server — votes per second and p50/p99 latency with wrk, each request a different citizen's API key and
a real cast (voter roll, ballot, chain batch, audit); then the ballot box filled to 1,700,000 ballots (the
casts that did not go over HTTP inserted directly, chained as `seal` chains them); the final tally with its
breakdown by 25 districts and 8 age bands; and the whole hash chain verified.

The server is one uvicorn process (1 worker) on 127.0.0.1, as `smartcity serve` runs it; wrk runs beside it
on the same machine (2 cores), so the load generator's CPU is taken from the server's.
Quick mode (BENCH_QUICK=1): 50,000 citizens and short runs. `BENCH_VOTERS=N` sets the number of citizens.
The store with its citizens is kept under `BENCH_CACHE` (default /work/bench-cache/participation) and copied
from there on the next run (migrated to the code's head), so a run does not spend minutes building 1.7 million
citizens again. `BENCH_CAST_ONLY=1` stops after casting over HTTP (no fill, tally or chain check).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select

from bench.bench_reports_open311 import our_server
from bench.bench_safety_intake import _cpu_seconds
from smartcity.core.city import load_profile
from smartcity.core.db import Database, migrate, sqlite_text, utcnow
from smartcity.core.seed import seed_city
from smartcity.participation import votes_chain, votes_service
from smartcity.participation.voting_models import Vote

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = (1, 8)
QUESTION = {"text": "서울시 전역 심야 버스를 늘릴까요?", "kind": "single", "options": ["찬성", "반대", "잘 모르겠다"]}

LUA = """
local lines = {}
for line in io.lines("%(keys)s") do lines[#lines + 1] = line end
local i = 0
request = function()
  i = i + 1
  local key = lines[(i - 1) %% #lines + 1]
  local body = '{"answers": [[' .. (i %% 3) .. ']]}'
  return wrk.format("POST", "%(path)s", {["X-API-Key"] = key, ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"errors\\": %%d, \\"non2xx\\": %%d, "
    .. "\\"p50_ms\\": %%.2f, \\"p90_ms\\": %%.2f, \\"p99_ms\\": %%.2f, \\"max_ms\\": %%.2f}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def _key(i: int) -> str:
    return f"sc_bench{i:09d}"


def citizens(path: Path, n: int, keys: int, districts: list[str], seed: int = 15) -> float:
    """n citizens, each verified (a random identity hash, a district, a birth year): plain executemany on
    one sqlite3 connection, the first `keys` of them with an API key. Seconds taken."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    now = sqlite_text(utcnow())
    district = rng.integers(0, len(districts), n)
    year = utcnow().year
    born = (year - rng.triangular(14, 45, 95, n)).astype(int)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    with con:
        con.executemany(
            "INSERT INTO users (id, username, display_name, password_hash, role, active, created_at) "
            "VALUES (?, ?, '', 'x', 'citizen', 1, ?)",
            ((100 + i, f"citizen{i}", now) for i in range(n)),
        )
        con.executemany(
            "INSERT INTO participation_verifications (user_id, method, identity_hash, district_code, birth_year, "
            "verified_at) VALUES (?, 'sms', ?, ?, ?, ?)",
            ((100 + i, secrets.token_hex(32), districts[district[i]], int(born[i]), now) for i in range(n)),
        )
        con.executemany(
            "INSERT INTO api_keys (name, prefix, key_hash, user_id, scope, created_at) VALUES (?, ?, ?, ?, 'api', ?)",
            (
                (f"bench {i}", _key(i)[:10], hashlib.sha256(_key(i).encode()).hexdigest(), 100 + i, now)
                for i in range(keys)
            ),
        )
    con.execute("ANALYZE")
    con.close()
    return time.perf_counter() - t0


def wrk(port: int, path: str, keys: list[str], seconds: int, connections: int, workdir: Path) -> dict:
    listed = workdir / f"keys-{connections}.txt"
    listed.write_text("\n".join(keys) + "\n")
    script = workdir / f"wrk-{connections}.lua"
    script.write_text(LUA % {"keys": listed, "path": path})
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
        + [f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout} {out.stderr}")
    r = json.loads(line[7:])
    r["votes_per_second"] = round((r["requests"] - r["non2xx"]) / (r["duration_us"] / 1e6), 1)
    return r


def fill(db: Database, vote_id: int, path: Path, total: int, seed: int = 16) -> tuple[int, float]:
    """Ballots for the citizens who did not vote over HTTP, up to `total`, chained after the vote's head as
    `votes_chain.seal` would (random ids, sorted), written with executemany. (ballots added, seconds)."""
    t0 = time.perf_counter()
    with db.session() as s:
        votes_chain.seal(s, vote_id)
    with db.session() as s:
        vote = s.get(Vote, vote_id)
        head, count = vote.chain_head, vote.ballots
    con = sqlite3.connect(path)
    rows = con.execute(
        "SELECT v.district_code, v.birth_year FROM participation_verifications v "
        "WHERE NOT EXISTS (SELECT 1 FROM participation_voter_roll r WHERE r.vote_id = ? AND r.user_id = v.user_id) "
        "LIMIT ?",
        (vote_id, total - count),
    ).fetchall()
    year = utcnow().year
    rng = np.random.default_rng(seed)
    choice = rng.choice(3, len(rows), p=[0.52, 0.41, 0.07])
    ids = sorted(secrets.token_hex(16) for _ in rows)
    previous = bytes.fromhex(head) if head else votes_chain.genesis(vote_id)
    out = []
    for n, (bid, (district, born)) in enumerate(zip(ids, rows, strict=True)):
        position = count + n + 1
        answers = f"[[{choice[n]}]]"
        band = votes_service.age_band(year - born)
        receipt = hashlib.sha256(bid.encode()).hexdigest()
        previous = votes_chain.link(previous, position, receipt, answers, district, band)
        out.append((bid, vote_id, answers, district, band, receipt, position, previous.hex()))
    con.execute("PRAGMA synchronous=OFF")
    with con:
        con.executemany("INSERT INTO participation_ballots VALUES (?, ?, ?, ?, ?, ?, ?, ?)", out)
        con.execute(
            "UPDATE participation_votes SET ballots = ?, received = ?, chain_head = ? WHERE id = ?",
            (count + len(out), count + len(out), previous.hex(), vote_id),
        )
    con.execute("ANALYZE")
    con.close()
    return len(out), time.perf_counter() - t0


def run(quick: bool = False) -> dict:
    voters = int(os.environ.get("BENCH_VOTERS", 50_000 if quick else 1_700_000))
    seconds = 5 if quick else 15
    keys = min(voters, 20_000 if quick else 60_000)
    profile = load_profile("seoul")
    districts = [d.code for d in profile.districts]
    result: dict = {"citizens": voters, "districts": len(districts), "age_bands": len(votes_service.AGE_BANDS)}
    with tempfile.TemporaryDirectory(prefix="bench-participation-") as tmp:
        workdir = Path(tmp)
        path = workdir / "smartcity.db"
        url = f"sqlite:///{path}"
        cached = Path(os.environ.get("BENCH_CACHE", "/work/bench-cache/participation")) / f"citizens-{voters}-{keys}.db"
        if cached.exists():
            shutil.copyfile(cached, path)
            migrate(url)
            db = Database(url)
            print(f"   {voters:,} verified citizens from {cached}", flush=True)
        else:
            migrate(url)
            db = Database(url)
            with db.session() as s:
                seed_city(s, profile)
            result["citizens_insert_s"] = round(citizens(path, voters, keys, districts), 1)
            print(f"   {voters:,} verified citizens in {result['citizens_insert_s']} s", flush=True)
            db.dispose()
            cached.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(path)
            con.execute("VACUUM INTO ?", (f"{cached}.part",))  # whole and consistent, WAL included
            con.close()
            Path(f"{cached}.part").replace(cached)
            db = Database(url)
        with db.session() as s:
            now = utcnow()
            vote = Vote(
                title="서울시 심야 버스 확대",
                description="",
                questions=[QUESTION | {"max_choices": 1}],
                target={"districts": [], "neighbourhoods": [], "age_bands": [], "point": None},
                opens_at=now - timedelta(minutes=1),
                closes_at=now + timedelta(days=1),
                results_hidden=True,
                created_by=100,  # citizen 0: the bench has no staff account, and the row needs an author
                received=0,
                ballots=0,
                chain_head="",
            )
            s.add(vote)
            s.flush()
            vote_id = vote.id
        cast_path = f"/api/participation/votes/{vote_id}/ballots"
        http: dict = {}
        used = 0
        result["load_average_at_cast"] = [round(x, 2) for x in os.getloadavg()]
        result["cpus"] = os.cpu_count()
        with our_server(url, workdir, 1) as server:
            warm = [_key(i) for i in range(used, used + 500)]
            wrk(server.port, cast_path, warm, 2, 2, workdir)
            used += 500
            for c in CONNECTIONS:
                share = (keys - used) // (len(CONNECTIONS) - CONNECTIONS.index(c))
                cpu = _cpu_seconds([server.proc.pid])
                r = wrk(server.port, cast_path, [_key(i) for i in range(used, used + share)], seconds, c, workdir)
                cpu = _cpu_seconds([server.proc.pid]) - cpu
                used += share
                http[f"c{c}"] = {
                    k: r[k] for k in ("votes_per_second", "p50_ms", "p90_ms", "p99_ms", "max_ms", "requests", "non2xx")
                }
                # The server's own CPU per vote: what one core could cast with the machine to itself.
                http[f"c{c}"]["server_cpu_ms_per_vote"] = round(1000 * cpu / max(1, r["requests"]), 2)
                http[f"c{c}"]["load_average"] = [round(x, 2) for x in os.getloadavg()]
                print(f"   cast over HTTP, {c} connections: {http[f'c{c}']}", flush=True)
        result["cast_http_sqlite_1w"] = http
        with db.session() as s:
            cast = s.scalar(select(Vote.received).where(Vote.id == vote_id))
        result["cast_over_http"] = cast
        if os.environ.get("BENCH_CAST_ONLY"):
            db.dispose()
            return result
        added, took = fill(db, vote_id, path, voters)
        result["ballots"] = cast + added
        result["fill_s"] = round(took, 1)
        print(f"   ballot box filled to {result['ballots']:,} in {took:.1f} s", flush=True)
        db.dispose()
        db = Database(url)
        with db.session() as s:
            vote = s.get(Vote, vote_id)
            t0, c0 = time.perf_counter(), time.process_time()
            tallied = votes_service.tally(s, vote, 10)
            result["tally_s"] = round(time.perf_counter() - t0, 2)
            result["tally_cpu_s"] = round(time.process_time() - c0, 2)
        assert tallied["total"] == result["ballots"]
        result["tally_cells"] = len(tallied["turnout"]["districts"]) * len(tallied["questions"][0]["options"]) + len(
            votes_service.AGE_BANDS
        ) * len(tallied["questions"][0]["options"])
        print(f"   tally in {result['tally_s']} s ({result['tally_cpu_s']} s CPU)", flush=True)
        with db.session() as s:
            t0, c0 = time.perf_counter(), time.process_time()
            chain = votes_chain.verify_chain(s, vote_id)
            result["verify_chain_s"] = round(time.perf_counter() - t0, 2)
            result["verify_chain_cpu_s"] = round(time.process_time() - c0, 2)
        assert chain.ok and chain.ballots == result["ballots"], chain
        print(
            f"   chain of {chain.ballots:,} verified in {result['verify_chain_s']} s "
            f"({result['verify_chain_cpu_s']} s CPU)"
        )
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        db.dispose()
    result["goals"] = {"votes_per_second": 1000, "p99_ms": 50, "tally_s": 2, "verify_chain_s": 10}
    return result
