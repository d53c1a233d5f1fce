"""The demo's moving devices: the demo child and elder walk their routes through Gangnam, reporting
through the real intake engine as a phone would, so the guardian and control-room pages are alive.

* `Simulation.tick(at)` moves every walker one step and submits its position (deterministic: tests
  drive it with their own clock).
* With `SMARTCITY_SAFETY_SIMULATE=true` (`smartcity demo` sets it) a serving process runs `tick` every
  few seconds as a background task. The elder's route crosses the demo danger zone (a construction
  site), so every lap opens a "danger" incident for Gangnam's control room; the child presses the
  emergency button now and then. Incidents stay open for the operator (a second one of the same kind
  joins the open one, so nothing piles up). Run it in one serving process only.
* `demo(db, profile)` (from the module's demo hook) walks each device through the last minutes before
  now, so the pages show a path (and one open emergency) from the first moment — screenshots too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from smartcity.core.db import utcnow
from smartcity.core.errors import SmartCityError
from smartcity.core.geo import haversine_m
from smartcity.safety import service
from smartcity.safety.engine import get_engine
from smartcity.safety.settings import SafetySettings

log = logging.getLogger(__name__)

TICK_SECONDS = 2.0  # how often the background task moves the walkers
SPEED_M_S = 6.0  # brisker than walking, so the map visibly moves in a demo
SOS_EVERY = 150  # ticks between the child's emergency presses (5 minutes at 2 s)
SOS_DEVICE = "demo-child-1"


def demo_routes() -> dict[str, list[tuple[float, float]]]:
    """The service's demo routes, the elder's taken straight through the danger zone's centre (the route
    only grazes its edge, and a zone entry needs several confirming fixes)."""
    routes = {k: list(v) for k, v in service.DEMO_ROUTES.items()}
    elder = routes.get("demo-elder-1")
    if elder:
        closest = min(range(len(elder)), key=lambda i: haversine_m(*elder[i], *service.DEMO_DANGER))
        elder.insert(closest + 1, service.DEMO_DANGER)
    return routes


@dataclass
class Walker:
    """One simulated device going round its route (closed into a loop) at a steady speed."""

    identifier: str
    route: list[tuple[float, float]]
    speed: float = SPEED_M_S
    step_s: float = TICK_SECONDS
    battery: float = 95.0
    laps: int = 0
    _points: Iterator = field(default=None, repr=False)

    def next_point(self) -> tuple[float, float]:
        while True:
            if self._points is None:
                loop = self.route + ([self.route[0]] if self.route[0] != self.route[-1] else [])
                self._points = service.walk(loop, speed_m_s=self.speed, interval_s=self.step_s)
            try:
                _t, lat, lon = next(self._points)
                return lat, lon
            except StopIteration:
                self._points = None
                self.laps += 1

    def drain(self) -> float:
        """A slowly emptying battery that is recharged once low (so a low-battery alert now and then)."""
        self.battery = 95.0 if self.battery <= 12 else self.battery - 0.05
        return round(self.battery, 1)


class Simulation:
    """Moves the demo devices (`demo_routes()`) one step per tick through the engine."""

    def __init__(
        self,
        db,
        settings=None,
        profile=None,
        *,
        speed: float = SPEED_M_S,
        step_s: float = TICK_SECONDS,
        sos_every: int = SOS_EVERY,
        routes: dict | None = None,
    ):
        self.db, self.settings, self.profile = db, settings, profile
        self.walkers = [Walker(k, list(v), speed, step_s) for k, v in (routes or demo_routes()).items()]
        self.sos_every = sos_every
        self.ticks = 0
        self.running = False
        self._unknown: set[str] = set()

    def tick(self, at: datetime | None = None) -> list:
        """Move every walker one step and submit its position timed `at` (default: now). Returns the
        engine's futures (or the error that refused a position)."""
        at = at or utcnow()
        self.ticks += 1
        engine = get_engine(self.db, self.settings, self.profile)
        results = []
        for w in self.walkers:
            lat, lon = w.next_point()
            extra = {"battery": w.drain(), "speed": w.speed}
            if w.identifier == SOS_DEVICE and self.sos_every and self.ticks % self.sos_every == 0:
                extra["alarm"] = "sos"
            try:
                results.append(engine.submit(service.simulated_position(w.identifier, at, lat, lon, **extra)))
            except SmartCityError as exc:  # e.g. the demo data is not loaded: say so once, keep going
                if w.identifier not in self._unknown:
                    self._unknown.add(w.identifier)
                    log.warning("simulation: %s refused: %s", w.identifier, exc.message)
                results.append(exc)
        return results

    async def run(self, interval: float = TICK_SECONDS) -> None:
        """Tick forever, every `interval` seconds (the background task of a serving process)."""
        self.running = True
        try:
            while True:
                try:
                    await asyncio.to_thread(self.tick)
                except Exception:  # noqa: BLE001 - a demo aid must never take the server down
                    log.exception("simulation tick failed")
                await asyncio.sleep(interval)
        finally:
            self.running = False


def install(app) -> None:
    """Run the simulation in this serving process when SMARTCITY_SAFETY_SIMULATE is on."""
    if not app.state.settings.of(SafetySettings).simulate:
        return

    async def start(app) -> None:
        sim = Simulation(app.state.db, app.state.settings, app.state.profile)
        app.state.safety_simulation = sim
        task = asyncio.create_task(sim.run())

        async def stop(app) -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        # Registered now, after every module's hooks: shutdown runs in reverse, so the simulation stops
        # before the engine it feeds is flushed and stopped.
        app.state.shutdown.append(stop)

    app.state.startup.append(start)


def demo(db, profile, minutes: int = 20, now: datetime | None = None) -> Iterator[str]:
    """Give the demo devices a recent past: `minutes` of walking up to now (today's path on the guardian
    page), ending with the child's emergency press, which opens an incident for Gangnam's control room.
    Skipped when the devices have reported in the last `minutes` (re-running `make demo`)."""
    from smartcity.core.context import context_of

    now = now or utcnow()
    since = now - timedelta(minutes=minutes)
    with db.session() as s:
        states = {d.identifier: st for d, _p, st in service.devices(s) if d.identifier in service.DEMO_ROUTES}
    if not states:
        yield "safety simulation: no demo devices registered"
        return
    if any(st is not None and st.fix_time is not None and st.fix_time >= since for st in states.values()):
        yield "safety simulation: the demo devices already have a recent path"
        return
    step = 10.0
    settings = context_of(db).settings.with_env(SMARTCITY_SAFETY_WRITER="thread")  # a one-off: no writer process
    sim = Simulation(db, settings, profile, speed=1.4 * 3, step_s=step, sos_every=0)
    engine = get_engine(db, settings, profile)
    futures = []
    try:
        t = since
        while t < now - timedelta(seconds=step):
            futures += [f for f in sim.tick(t) if not isinstance(f, SmartCityError)]
            t += timedelta(seconds=step)
        child = next(w for w in sim.walkers if w.identifier == SOS_DEVICE)
        lat, lon = child.next_point()
        futures.append(
            engine.submit(service.simulated_position(SOS_DEVICE, now, lat, lon, alarm="sos", battery=child.drain()))
        )
        for f in futures:
            f.result(30)
    finally:
        from smartcity.safety.engine import stop_engine

        stop_engine(db)
    yield (
        f"safety simulation: {len(futures)} positions over the last {minutes} minutes; "
        f"{SOS_DEVICE} pressed SOS (an open incident for the control room)"
    )
