"""`smartcity analytics plan-routes`: night bus routes from the imported late-night demand."""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.core.cli import city_profile, command_errors, read_file


@click.command("plan-routes")
@click.option("--routes", type=int, default=9, show_default=True, help="Number of night routes.")
@click.option("--max-km", type=float, help="Longest route, one way (km).")
@click.option("--max-round-trip", type=float, help="Longest round trip, layover included (minutes).")
@click.option("--headway", type=int, default=40, show_default=True, help="Minutes between buses (30–50).")
@click.option("--fleet", type=int, required=True, help="Buses available for the whole night network.")
@click.option(
    "--stops", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The city's bus stop list (CSV)."
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Current night routes: lines 'N26: stop stop …' or a route,stop CSV.",
)
@click.option("--kind", "kinds", multiple=True, default=["phone"], show_default=True, help="Demand kinds to use.")
@click.option("--hot-cells", type=int, default=1250, show_default=True, help="Hottest cells the routes may serve.")
@click.option("--seconds", type=float, help="Route search time limit (default: the planner_seconds setting).")
@click.option("--agency-url", default="", help="The GTFS agency's web address (default: this site's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the outputs.")
def plan_routes(
    routes: int,
    max_km: float | None,
    max_round_trip: float | None,
    headway: int,
    fleet: int,
    stops: Path,
    baseline: Path | None,
    kinds: tuple[str, ...],
    hot_cells: int,
    seconds: float | None,
    agency_url: str,
    out: Path,
) -> None:
    """Plan night bus routes serving the most late-night demand (hours 0–5); write routes.geojson, routes.parquet,
    comparison.csv and gtfs.zip to OUT. An impossible constraint is named and nothing is written."""

    @command_errors
    def run() -> None:
        from smartcity.analytics.planner import Constraints
        from smartcity.analytics.planner_run import agency_of, demand_of, make_plan, options_from, write_outputs
        from smartcity.analytics.settings import AnalyticsSettings
        from smartcity.settings import get_settings

        settings = get_settings()
        profile = city_profile()
        constraints = Constraints(
            routes=routes, headway_min=headway, fleet=fleet, max_km=max_km, max_round_trip_min=max_round_trip
        )
        overrides: dict = {"hot_cells": hot_cells}
        if seconds is not None:
            overrides["time_limit_s"] = seconds
        options = options_from(settings.of(AnalyticsSettings), **overrides)
        stops_file, baseline_file = read_file(stops), read_file(baseline) if baseline else None
        night = make_plan(demand_of(settings, kinds), stops_file, profile, constraints, options, baseline_file)
        written = write_outputs(night, agency_of(profile, agency_url or settings.site_url), out)
        for route in night.plan.routes:
            click.echo(
                f"{route.name}: {len(route.stops)} stops, {route.km:.1f} km, "
                f"round trip {route.round_trip_min:.0f} min, {route.buses} buses, "
                f"demand {route.demand:,.0f}, riders ~{route.riders:,.0f}"
            )
        for row in night.comparison:
            click.echo(
                f"{row.network}: {row.routes} routes, {row.km:.1f} km, {row.buses} buses, "
                f"demand covered {row.demand_covered:,.0f} ({row.share:.1%})"
            )
        click.echo("written: " + ", ".join(str(p) for p in written))

    run()


commands = [plan_routes]
