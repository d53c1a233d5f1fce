"""Every setting of the platform, declared once as data and read from SMARTCITY_* environment variables.

A setting has a name, a type, a default and help text; `smartcity settings` prints them all.
A module declares its own settings the same way (a dataclass of `setting(...)` fields, read from
SMARTCITY_<MODULE>_<NAME> by `read_env`). The app reads them once and hands them to the services
(`core.context.AppContext`); nothing else reads the environment.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def setting(default, help: str, *, env: str | None = None, choices: tuple[str, ...] = (), listens: bool = False):
    """A setting's declaration: its default and what it means; `choices`: the only values allowed; `env`: its
    variable's name where it is not the module's prefix + FIELD (a name operators already use); `listens`: a
    port the serving process opens (0: none), checked before `smartcity serve` starts."""
    metadata: dict[str, Any] = {"help": help}
    if env:
        metadata["env"] = env
    if listens:
        metadata["listens"] = True
    if choices:
        metadata["choices"] = choices
    return field(default=default, metadata=metadata)


def _declared(cls) -> list[Field]:
    return [f for f in fields(cls) if "help" in f.metadata]


def variable(f: Field, prefix: str) -> str:
    """The environment variable a settings field is read from."""
    return f.metadata.get("env") or prefix + f.name.upper()


def _parse(name: str, kind: Any, raw: str) -> Any:
    if kind in ("bool", bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    for number in (int, float):
        if kind in (number.__name__, number):
            try:
                return number(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number ({number.__name__}), not {raw!r}") from None
    return raw


def read_env(cls: type[T], prefix: str, env: Mapping[str, str] | None = None) -> T:
    """An instance of the settings dataclass `cls` from the environment variables `prefix` + FIELD."""
    env = os.environ if env is None else env
    values = {}
    for f in _declared(cls):
        name = variable(f, prefix)
        raw = env.get(name)
        if raw is None:
            continue
        values[f.name] = _parse(name, f.type, raw)
        allowed = f.metadata.get("choices")
        if allowed and values[f.name] not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return cls(**values)


def describe_class(cls, prefix: str) -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every field of the settings dataclass `cls`."""
    return [(variable(f, prefix), str(f.default), f.metadata["help"]) for f in _declared(cls)]


@dataclass(frozen=True)
class Settings:
    database_url: str = setting(
        "sqlite:///var/smartcity.db",
        "SQLAlchemy URL of the store. SQLite (WAL) is the embedded default; "
        "postgresql+psycopg://user@host/db for a city that outgrows one machine.",
    )
    city: str = setting("seoul", "City profile: a bundled name (seoul) or the path of a profile TOML file.")
    secret_key: str = setting("", "Key that signs session cookies. Empty: one is generated and kept in var/secret_key.")
    host: str = setting("127.0.0.1", "Address `smartcity serve` listens on.")
    port: int = setting(8000, "Port of the web server.", listens=True)
    tile_url: str = setting(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "Base-map tile URL template; empty for no base map (district outlines still show).",
    )
    geocoder: str = setting(
        "smartcity.core.places:Gazetteer",
        "Place search and reverse geocoding: the class (package.module:Class, built with the app's context); "
        "the default is the city's own gazetteer (smartcity import places).",
    )
    tile_attribution: str = setting("© OpenStreetMap contributors", "Attribution shown for the base map.")
    var_dir: str = setting("var", "Folder for the embedded database, uploads and generated secrets.")
    session_max_age: int = setting(14 * 24 * 3600, "Seconds a sign-in lasts.")
    secure_cookies: bool = setting(False, "Mark cookies Secure (set behind HTTPS).")
    log_level: str = setting("info", "Log level of the server.")
    email_channel: str = setting("log", "How email notifications leave: log (kept in the outbox only) or smtp.")
    smtp_host: str = setting("127.0.0.1", "SMTP server for email notifications.")
    smtp_port: int = setting(25, "SMTP port.")
    smtp_user: str = setting("", "SMTP user name (empty: no authentication).")
    smtp_password: str = setting("", "SMTP password.")
    smtp_starttls: bool = setting(False, "Use STARTTLS with the SMTP server.")
    mail_from: str = setting("smartcity@localhost", "Sender address of notification emails.")
    sms_gateway_url: str = setting(
        "", "SMS gateway endpoint: a JSON POST {to, text} per message. Empty: SMS are kept in the outbox only."
    )
    sms_gateway_token: str = setting("", "Bearer token for the SMS gateway.")
    vapid_private_key: str = setting(
        "",
        "Web push (VAPID, RFC 8292) private key: PEM, or the base64url raw or DER key. Empty: one is generated at "
        "set-up and kept in var/vapid_private_key.pem. Changing it ends every browser's subscription.",
    )
    vapid_subject: str = setting(
        "", "Contact in the VAPID token push services read (mailto: or https:). Empty: mailto: + SMARTCITY_MAIL_FROM."
    )
    push_http_endpoints: bool = setting(
        False, "Accept plain http:// web push endpoints (a push service of one's own on a closed network; tests)."
    )
    modules: str = setting(
        "",
        "Modules to load, comma-separated import paths (package, or package:attribute of its Module "
        "declaration). Empty: every module bundled in the smartcity package and every one installed under the "
        "smartcity.modules entry-point group.",
    )
    run_jobs: bool = setting(True, "Run scheduled jobs (notification delivery, retention purges) in this process.")

    # The SMARTCITY_* variables these settings were read from: the modules' settings are read from them too
    # (`of`), so one environment, or the one a test makes, configures the core and every module alike.
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    _modules: dict[type, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        own = {k: v for k, v in env.items() if k.startswith("SMARTCITY_")}
        return replace(read_env(cls, "SMARTCITY_", own), env=own)

    def of(self, cls: type[T], prefix: str | None = None) -> T:
        """The settings of the module whose settings class is `cls`, from `env` (read once per instance);
        `prefix` defaults to that of the declared module with this settings class."""
        found = self._modules.get(cls)
        if found is None:
            if prefix is None:
                from smartcity.core.module import settings_prefix

                prefix = settings_prefix(cls)
            found = self._modules[cls] = read_env(cls, prefix, self.env)
        return found

    def with_env(self, **variables: str) -> Settings:
        """These settings with some variables of `env` replaced (a module's setting changed for one use)."""
        return replace(self, env={**self.env, **variables})

    @property
    def site_url(self) -> str:
        """The site as served (SMARTCITY_HOST, SMARTCITY_PORT): the base of absolute links when no public URL
        is set. A wildcard address names no host a reader can use, so it becomes localhost."""
        host = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def signing_key(self) -> str:
        """The session signing key: the configured one, or one generated once and kept in var/."""
        if self.secret_key:
            return self.secret_key
        path = Path(self.var_dir) / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting of the core."""
    return describe_class(Settings, "SMARTCITY_")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
