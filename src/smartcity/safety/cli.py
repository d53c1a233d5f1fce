"""`smartcity safety …`: protected persons, devices, guardians' consent, gateway keys, history."""

from __future__ import annotations

import json

import click

from smartcity.core.cli import command_errors, database
from smartcity.settings import get_settings


@click.group("safety")
def cli() -> None:
    """Safety service: protected persons, devices, guardians' consent."""


@cli.command("devices")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device.")
def devices_cmd(as_json: bool) -> None:
    """List registered devices: id, identifier (what the device sends), protocol, person, last fix."""
    from smartcity.safety import service

    with database().session() as s:
        rows = service.devices(s)
        if not rows:
            click.echo("no devices registered")
        for device, person, state in rows:
            last = state.fix_time.isoformat(timespec="seconds") if state and state.fix_time else "-"
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "id": device.id,
                            "identifier": device.identifier,
                            "protocol": device.protocol,
                            "person_id": person.id,
                            "person": person.name,
                            "active": device.active,
                            "last_fix": None if last == "-" else last,
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                state_word = "active" if device.active else "inactive"
                click.echo(
                    f"{device.id}\t{device.identifier}\t{device.protocol}\t{person.id}:{person.name}\t"
                    f"{state_word}\tlast fix {last}"
                )


@cli.command("persons")
def persons_cmd() -> None:
    """List protected persons."""
    from smartcity.safety import service

    with database().session() as s:
        for p in service.persons(s):
            click.echo(f"{p.id}\t{p.kind}\t{p.name}\t{'active' if p.active else 'inactive'}")


@cli.command("person-add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["child", "elderly", "dementia"]), required=True)
@click.option("--notes", default="")
def person_add(name: str, kind: str, notes: str) -> None:
    """Register a protected person."""
    from smartcity.safety import service

    @command_errors
    def run():
        with database().session() as s:
            p = service.add_person(s, kind, name, notes)
            click.echo(f"person {p.id} ({p.kind}) {p.name}")

    run()


@cli.command("device-add")
@click.argument("identifier")
@click.option("--person", "person_id", type=int, required=True, help="Id of the protected person.")
@click.option(
    "--protocols",
    "--protocol",
    "protocols",
    default="osmand",
    show_default=True,
    help="Protocols the device may report through, comma-separated: osmand, owntracks (or any).",
)
@click.option("--secret", is_flag=True, help="Give the device a secret (always done for owntracks).")
@click.option("--name", default="")
def device_add(identifier: str, person_id: int, protocols: str, secret: bool, name: str) -> None:
    """Register a device by the identifier it sends (Traccar Client: its device identifier; OwnTracks:
    user/device). A device's secret is printed once: it is the OwnTracks app's HTTP password."""
    from smartcity.safety import service

    @command_errors
    def run():
        with database().session() as s:
            d = service.add_device(s, person_id, identifier, protocols, name, secret=secret)
            click.echo(f"device {d.id} {d.identifier} ({d.protocol}) for person {person_id}")
            if d.issued_secret:
                click.echo(f"secret (shown once; the OwnTracks app's password): {d.issued_secret}")

    run()


@cli.command("device-secret")
@click.argument("device_id", type=int)
def device_secret(device_id: int) -> None:
    """Give a device a new secret (the old one stops working) and print it once."""
    from smartcity.safety import service

    @command_errors
    def run():
        with database().session() as s:
            secret = service.reset_device_secret(s, device_id)
            click.echo(f"secret (shown once; the OwnTracks app's password): {secret}")

    run()


@cli.command("consent")
@click.option("--person", "person_id", type=int, required=True)
@click.option("--guardian", "username", required=True, help="User name of a guardian account.")
@click.option("--given-by", required=True, help="Who consented (the person, a parent, a legal representative).")
@click.option("--basis", required=True, help="On what basis (written consent form no., court order, …).")
def consent_cmd(person_id: int, username: str, given_by: str, basis: str) -> None:
    """Link a guardian to a person and record the consent that allows tracking."""
    from smartcity.core import accounts
    from smartcity.safety import service

    @command_errors
    def run():
        with database().session() as s:
            user = accounts.get_user(s, username)
            link = service.record_consent(s, person_id, user.id, given_by=given_by, basis=basis)
            click.echo(f"consent recorded: {username} → person {person_id} at {link.consent_at:%Y-%m-%d %H:%M} UTC")

    run()


@cli.command("consent-withdraw")
@click.option("--person", "person_id", type=int, required=True)
@click.option(
    "--guardian",
    "username",
    default=None,
    help="Only the consent behind this guardian's link (and the links resting on the same consent).",
)
@click.option("--delete-history", is_flag=True, help="Also delete the person's location history now.")
def consent_withdraw_cmd(person_id: int, username: str | None, delete_history: bool) -> None:
    """Withdraw a consent: intake for the person stops at once (when no consent is left) and the guardian
    links resting on it are closed. The person's history is kept unless --delete-history."""
    from smartcity.core import accounts
    from smartcity.core.models import User
    from smartcity.safety import service

    @command_errors
    def run():
        with database().session() as s:
            user_id = accounts.get_user(s, username).id if username else None
            links = service.withdraw_consent(s, person_id, user_id)
            left = service.guardian_ids(s, person_id)
            deleted = service.delete_history(s, person_id) if delete_history else None

            def names(user_ids) -> str:
                return ", ".join(s.get(User, uid).username for uid in user_ids)

            click.echo(
                f"consent withdrawn for person {person_id}: guardian links closed for "
                f"{names(link.user_id for link in links)}"
            )
            click.echo(f"consent still in force for {names(left)}" if left else "intake stopped: no consent left")
            if deleted is not None:
                click.echo(f"history deleted: {deleted['positions']} positions, {deleted['alerts']} alerts")
            else:
                click.echo(f"the history is kept; to delete it: smartcity safety history-delete {person_id}")

    run()


@cli.command("device-remove")
@click.argument("device")
def device_remove_cmd(device: str) -> None:
    """Remove a device (by id or by the identifier it sends): its positions are refused from now on."""
    from smartcity.safety import service

    @command_errors
    def run():
        with database().session() as s:
            found = service.find_device(s, device)
            service.remove_device(s, found.id)
            click.echo(f"device {found.id} {found.identifier} removed")

    run()


@cli.command("history-delete")
@click.argument("person_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def history_delete_cmd(person_id: int, yes: bool) -> None:
    """Delete a person's location history (positions, alerts, last fixes); audited."""
    from smartcity.safety import service

    if not yes:
        click.confirm(f"Delete every stored position and alert of person {person_id}?", abort=True)

    @command_errors
    def run():
        with database().session() as s:
            counts = service.delete_history(s, person_id)
            click.echo(
                f"history of person {person_id} deleted: {counts['positions']} positions, {counts['alerts']} alerts"
            )

    run()


@cli.command("gateway-key")
@click.argument("name")
def gateway_key_cmd(name: str) -> None:
    """Issue an API key for a gateway posting positions (scope safety.gateway); the key is printed once."""
    from smartcity.core import accounts
    from smartcity.safety.intake_api import GATEWAY_SCOPE

    @command_errors
    def run():
        with database().session() as s:
            row, key = accounts.create_api_key(s, name, scope=GATEWAY_SCOPE)
            click.echo(f"API key {row.id} ({row.name}, scope {GATEWAY_SCOPE}); shown only now, keep it safe:")
            click.echo(key)

    run()


@cli.command("purge")
def purge_cmd() -> None:
    """Delete location history older than the retention period now (the job does it hourly)."""
    from smartcity.safety.service import purge_history

    n = purge_history(database(), get_settings())
    click.echo(f"{n} positions purged")
