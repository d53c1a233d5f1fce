"""Real servers the suite starts for itself: a throwaway PostgreSQL and a Mosquitto broker, on free ports.

PostgreSQL refuses to run as root, so as root its commands run as the `postgres` user in a directory
that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something listens on `port`; given the process that is to listen, fail at once if it ends.
    A new `smartcity serve` took 25 s to listen at load 12 on two cores, and two started at once over 60 s:
    the timeout is for a server that never comes, not a measure of how quick it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = getattr(proc, "log", None)  # tests.helpers.serve keeps what the process said in a file
            said = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"the server ended (exit {proc.returncode}) before listening on port {port}: {said}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise RuntimeError(f"PostgreSQL's {name} is not installed (scripts/system-deps.sh installs it)")


class PostgresServer:
    """initdb + pg_ctl in a temporary directory; trust authentication on 127.0.0.1 only."""

    def __init__(self, port: int | None = None, root: str | None = None):
        """A new server (started by `start`), or, given its port and folder, one another process started."""
        self.port = port or free_port()
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="smartcity-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0

    def shared(self) -> dict:
        """What another process needs to use this running server: `PostgresServer(**server.shared())`."""
        return {"port": self.port, "root": str(self.root)}

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class MosquittoServer:
    """A Mosquitto broker on its own port, loopback only: anonymous, or with the configuration `config` (its
    "{port}" and "{root}" — a folder of the server's own for persistence and password files — filled in)."""

    def __init__(self, config: str | None = None):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="smartcity-mqtt-"))
        self.proc: subprocess.Popen | None = None
        self.config = config

    def start(self) -> MosquittoServer:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            raise RuntimeError("mosquitto is not installed (scripts/system-deps.sh installs it)")
        conf = self.root / "mosquitto.conf"
        if self.config is None:
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n"
            )
        else:
            conf.write_text(self.config.replace("{port}", str(self.port)).replace("{root}", str(self.root)))
            if os.geteuid() == 0:  # Mosquitto started as root runs as `mosquitto`: its files must be that user's
                for path in [self.root, *self.root.iterdir()]:
                    with contextlib.suppress(LookupError):
                        shutil.chown(path, "mosquitto", "mosquitto")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)
        return self

    def stop(self, keep_files: bool = False) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file first); `keep_files` to start it again."""
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)


class PushService:
    """A web push service (RFC 8030) of the test's own, on a free loopback port: it records every message
    POSTed to an endpoint (headers and encrypted body) and answers 201, or the status set for that endpoint
    in `answers` (410 for a subscription that has expired)."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        # (path, headers: an http.client.HTTPMessage, whose look-ups ignore case as HTTP does, body)
        self.received: list[tuple[str, Any, bytes]] = []
        self.answers: dict[str, int] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                service.received.append((self.path, self.headers, body))
                self.send_response(service.answers.get(self.path, 201))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> PushService:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"


class BrowserPush:
    """What a browser keeps for one push subscription (RFC 8291): a P-256 key pair and a 16-byte auth
    secret; `subscription()` is the JSON `PushSubscription.toJSON()` gives, `decrypt` opens a message."""

    def __init__(self, endpoint: str):
        import base64

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.endpoint = endpoint
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
        self.keys = {"p256dh": b64(raw), "auth": b64(self.auth)}

    def subscription(self) -> dict:
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": dict(self.keys)}

    def decrypt(self, body: bytes) -> bytes:
        import http_ece

        return http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm")


def vapid_claims(authorization: str, public_key: str) -> dict:
    """The claims of a VAPID Authorization header (RFC 8292 `vapid t=<JWT>,k=<key>`), once its key is found to
    be `public_key` and its ES256 signature checked with that key; raises if either fails."""
    import base64
    import json

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", authorization
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == public_key, "signed with another key than the one pages are given"
    header, claims, signature = parts["t"].split(".")
    assert json.loads(unb64(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(public_key))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(unb64(claims))
