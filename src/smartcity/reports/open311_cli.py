"""`smartcity open311 keys …`: the API keys of Open311 partner systems (core API keys of scope "open311", or
"open311:import" for a partner moving its history over)."""

from __future__ import annotations

import click

from smartcity.core import accounts
from smartcity.core.cli import command_errors, database
from smartcity.core.errors import NotFound
from smartcity.reports import service as S
from smartcity.reports.open311_wire import KEY_SCOPES


@click.group("open311")
def cli() -> None:
    """Open311 GeoReport v2 at /open311/v2: keys of partner systems."""


@cli.group("keys")
def keys() -> None:
    """API keys for Open311 clients (POST requests and servicerequestupdates)."""


@keys.command("create")
@click.argument("name")
@click.option("--user", "username", default=None, help="Act as this user (reports are filed in their name).")
@click.option(
    "--import",
    "for_import",
    is_flag=True,
    help="The key may also give requested_datetime (a partner moving its past requests over).",
)
@command_errors
def keys_create(name: str, username: str | None, for_import: bool) -> None:
    """Issue a key for NAME; it is printed once and only its hash is kept."""
    db = database()
    with db.session() as s:
        owner = accounts.get_user(s, username) if username else None
        row, key = accounts.create_api_key(s, name, user=owner, scope=S.IMPORT_KEY_SCOPE if for_import else "open311")
    click.echo(key)
    click.echo(f"(Open311 key id {row.id}; keep it now, it cannot be shown again)", err=True)
    db.dispose()


def _open311_keys(session) -> list:
    return [k for scope in KEY_SCOPES for k in accounts.list_api_keys(session, scope=scope)]


@keys.command("list")
def keys_list() -> None:
    """List Open311 keys (never the keys themselves)."""
    db = database()
    with db.session() as s:
        for k in _open311_keys(s):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            kind = "\timport" if k.scope == S.IMPORT_KEY_SCOPE else ""
            click.echo(f"{k.id}\t{k.name}\t{k.prefix}…\t{k.created_at:%Y-%m-%d}\t{state}{kind}")
    db.dispose()


@keys.command("revoke")
@click.argument("key_id", type=int)
@command_errors
def keys_revoke(key_id: int) -> None:
    """Revoke an Open311 key by its id; its client is refused from then on."""
    db = database()
    with db.session() as s:
        if key_id not in {k.id for k in _open311_keys(s)}:
            raise NotFound(f"no Open311 key {key_id}")
        accounts.revoke_api_key(s, key_id)
    click.echo(f"Open311 key {key_id} revoked")
    db.dispose()
