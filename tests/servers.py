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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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

    def __init__(self):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="smartcity-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0

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
