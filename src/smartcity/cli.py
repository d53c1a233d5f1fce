"""The `smartcity` command: serve, demo, migrate, init, import, user and key management."""

from __future__ import annotations

import os
from pathlib import Path

import click

from smartcity.core import module as modules
from smartcity.core.cli import check_ports, city_profile, command_errors, database, listening_ports, read_file
from smartcity.settings import describe, describe_class, get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smartcity")
def main() -> None:
    """smartcity: an open smart-city platform. Settings come from SMARTCITY_* variables (`smartcity settings`)."""


@main.command()
def settings() -> None:
    """List every setting, the core's and then each module's under its name: its environment variable, default
    and meaning."""
    groups = [("core", describe())]
    groups += [(m.name, describe_class(m.settings, m.env_prefix)) for m in modules.declared() if m.settings]
    for group, listed in groups:
        click.echo(f"[{group}]")
        for name, default, help_text in listed:
            click.echo(f"{name}\n    default: {default or '(empty)'}\n    {help_text}")


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from smartcity.core.db import migrate as run

    run(get_settings().database_url)
    click.echo("schema is up to date")


@main.command()
@command_errors
def init() -> None:
    """Migrate, then put the city profile into the store (units; approximate districts if none)."""
    from smartcity.core.db import migrate as run
    from smartcity.core.push import ensure_vapid_key
    from smartcity.core.seed import seed_city

    run(get_settings().database_url)
    ensure_vapid_key(get_settings())
    db = database()
    with db.session() as s:
        added = seed_city(s, city_profile())
    click.echo(f"city {city_profile().name_en}: {added['units']} units and {added['districts']} districts added")


# What a stop waits for requests still being answered. Live event streams do not count on it: they end as the
# stop begins (core.events.streams_end_on_stop).
GRACEFUL_SHUTDOWN_S = 3.0


@main.command()
@click.option("--host", default=None, help="Address to listen on (SMARTCITY_HOST).")
@click.option("--port", default=None, type=int, help="Port to listen on (SMARTCITY_PORT).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the platform over HTTP."""
    import uvicorn

    # The options become the settings the app reads (in every worker): links built from the served address
    # then carry the port actually served.
    if host:
        os.environ["SMARTCITY_HOST"] = host
    if port:
        os.environ["SMARTCITY_PORT"] = str(port)
    get_settings.cache_clear()
    s = get_settings()
    check_ports(s.host, listening_ports(s))
    uvicorn.run(
        "smartcity.app:create_app",
        factory=True,
        host=s.host,
        port=s.port,
        workers=workers,
        log_level=s.log_level,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


@main.command()
@click.option("--serve/--no-serve", "then_serve", default=True, help="Start the server afterwards.")
@click.pass_context
@command_errors
def demo(ctx: click.Context, then_serve: bool) -> None:
    """Set up the embedded database with the city profile, demo accounts and demo data, then serve."""
    from smartcity.core.demo import load_demo

    if then_serve:  # a taken port said before the demo is loaded, not after
        check_ports(get_settings().host, listening_ports(get_settings()))
    ctx.invoke(init)
    for line in load_demo(database(), city_profile()):
        click.echo(line)
    if then_serve:
        # The demo's pages are alive: simulated devices move (safety); an explicit setting still wins.
        os.environ.setdefault("SMARTCITY_SAFETY_SIMULATE", "true")
        get_settings.cache_clear()
        s = get_settings()
        click.echo(f"serving on http://{s.host}:{s.port}")
        ctx.invoke(serve)


# --- import ---------------------------------------------------------------------------------------


@main.group("import")
def import_() -> None:
    """Load official data into the platform."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None


def _import_areas(kind: str, path: Path) -> None:
    from smartcity.core import geo
    from smartcity.core.events import publish

    profile = city_profile()
    areas = geo.parse_boundaries(read_file(path), profile)
    db = database()
    index = geo.geo_index(db) if kind == "neighbourhoods" else None
    with db.session() as s, click.progressbar(length=len(areas), label=f"importing {kind}") as bar:
        if kind == "districts":
            result = geo.import_districts(s, areas, source=path.name, progress=bar.update)
        else:
            result = geo.import_neighbourhoods(s, areas, source=path.name, index=index, progress=bar.update)
        publish(s, "geo.changed", {kind: len(areas)})
    click.echo(f"{kind}: {result.created} added, {result.updated} updated, {result.removed} removed")


@import_.command("districts")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@command_errors
def import_districts(file: Path) -> None:
    """Load district boundaries from a GeoJSON FeatureCollection (properties: code, name, name_eng)."""
    _import_areas("districts", file)


@import_.command("neighbourhoods")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@command_errors
def import_neighbourhoods(file: Path) -> None:
    """Load neighbourhood boundaries from a GeoJSON FeatureCollection; each is tied to its district."""
    _import_areas("neighbourhoods", file)


@import_.command("places")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    default=None,
    help="What the places are (bus_stop, subway_station, landmark, …); by default the list's own kind.",
)
@command_errors
def import_places(file: Path, kind: str | None) -> None:
    """Load a gazetteer: Seoul's bus-stop list (정류소명, X좌표, Y좌표), its subway-station list (역명, 위도, 경도)
    or a list of name_ko, name_en, lat, lon. The layout is read from the header (UTF-8 or CP949); rows that
    cannot be used are listed with their line and skipped; importing the same file again changes nothing."""
    from smartcity.core import geo, places_import

    parsed = places_import.parse_places(read_file(file), city_profile(), kind=kind)
    for problem in parsed.problems:
        click.echo(f"  line {problem['line']}: {problem['problem']} ({problem['value']})", err=True)
    db = database()
    index = geo.geo_index(db)
    with db.session() as s, click.progressbar(length=len(parsed.places), label=f"importing {parsed.layout}") as bar:
        result = places_import.import_places(s, parsed.places, source=file.name, geo=index, progress=bar.update)
    merged = f", {parsed.merged} rows were other lines of a station" if parsed.merged else ""
    click.echo(
        f"places ({parsed.layout}): {result.created} added, {result.updated} updated, {result.unchanged} unchanged, "
        f"{len(parsed.problems)} rows skipped{merged}"
    )


# --- users and keys -------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Manage accounts."""


@user.command("create")
@click.argument("username")
@click.option("--role", required=True, help="citizen, staff, publisher, admin, or a role a module adds.")
@click.option("--department", default=None, help="Unit code, for a role that belongs to a unit (staff: a department).")
@click.option("--email", default=None)
@click.option("--phone", default=None)
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--language", default=None, type=click.Choice(["ko", "en"]))
@click.option(
    "--password",
    default=None,
    help="Password; asked for when omitted. SMARTCITY_PASSWORD works too.",
    envvar="SMARTCITY_PASSWORD",
)
@command_errors
def user_create(username, role, department, email, phone, display_name, language, password) -> None:
    """Create an account."""
    from smartcity.core import accounts

    if password is None:
        password = click.prompt("password", hide_input=True)
    with database().session() as s:
        u = accounts.create_user(
            s,
            accounts.NewUser(
                username=username,
                password=password,
                role=role,
                display_name=display_name,
                email=email,
                phone=phone,
                department=department,
                language=language,
            ),
        )
        click.echo(f"created {u.username} ({u.role}) id={u.id}")


@user.command("list")
@click.option("--role", default=None)
def user_list(role) -> None:
    """List accounts."""
    from smartcity.core import accounts

    with database().session() as s:
        for u in accounts.list_users(s, role):
            unit = u.department.code if u.department else ""
            click.echo(f"{u.id}\t{u.username}\t{u.role}\t{unit}\t{'active' if u.active else 'disabled'}")


@user.command("set-password")
@click.argument("username")
@click.option("--password", default=None, envvar="SMARTCITY_PASSWORD")
@command_errors
def user_set_password(username, password) -> None:
    """Set a user's password."""
    from smartcity.core import accounts

    if password is None:
        password = click.prompt("new password", hide_input=True)
    with database().session() as s:
        accounts.set_password(s, username, password)
    click.echo("password changed")


@main.group()
def apikey() -> None:
    """Manage API keys of machine clients."""


@apikey.command("create")
@click.argument("name")
@click.option("--user", "username", default=None, help="Act as this user (the key carries the user's role).")
@command_errors
def apikey_create(name, username) -> None:
    """Issue a key; it is printed once and only its hash is kept."""
    from smartcity.core import accounts

    with database().session() as s:
        owner = accounts.get_user(s, username) if username else None
        row, key = accounts.create_api_key(s, name, user=owner)
    click.echo(key)
    click.echo(f"(key id {row.id}; keep it now, it cannot be shown again)", err=True)


@apikey.command("list")
def apikey_list() -> None:
    """List keys (never the keys themselves)."""
    from smartcity.core import accounts

    with database().session() as s:
        for k in accounts.list_api_keys(s):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            click.echo(f"{k.id}\t{k.name}\t{k.scope}\t{k.prefix}…\t{state}")


@apikey.command("revoke")
@click.argument("key_id", type=int)
@command_errors
def apikey_revoke(key_id) -> None:
    """Revoke a key by its id."""
    from smartcity.core import accounts

    with database().session() as s:
        accounts.revoke_api_key(s, key_id)
    click.echo(f"key {key_id} revoked")


def _add_module_commands() -> None:
    """Each module's commands; a group named as one of ours (`import`) adds its commands to ours."""
    for command in modules.commands(modules.declared()):
        mine = main.commands.get(command.name or "")
        if isinstance(mine, click.Group) and isinstance(command, click.Group):
            for name, sub in command.commands.items():
                mine.add_command(sub, name)
        else:
            main.add_command(command)


_add_module_commands()


if __name__ == "__main__":
    main()
