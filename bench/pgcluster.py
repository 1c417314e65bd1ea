"""Throw-away PostgreSQL clusters: the tests that stop or replicate a server, the replica bench."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import free_port

PGBIN = Path(os.environ.get("ONEMAP_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivateCluster:
    """A throw-away PostgreSQL cluster on a free loopback port (trust auth, loopback only)."""

    def __init__(self, database: str, prefix: str = "onemap-cluster-"):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
        self.port = free_port()
        self.database = database
        self.url = f"postgresql://onemap@127.0.0.1:{self.port}/{database}"

    @staticmethod
    def as_owner(*args: str) -> list[str]:
        """The command line of a PostgreSQL program run as the cluster's owner (never root)."""
        cmd = [str(PGBIN / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def pg(self, *args: str, password: str | None = None, timeout: float = 300) -> None:
        """Run a PostgreSQL program as the cluster's owner; its error output when it fails."""
        env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
        done = subprocess.run(self.as_owner(*args), capture_output=True, text=True,
                              timeout=timeout, env=env)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def _own_dir(self) -> None:
        """The data directory belongs to the user the server runs as, mode 700."""
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.dir.chmod(0o700)

    def _configure(self) -> None:
        """Listen on the cluster's own loopback port only."""
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       "unix_socket_directories = ''\nfsync = off\n")  # fmt: skip

    def init(self) -> None:
        """initdb and configure the cluster."""
        self._own_dir()
        self.pg("initdb", "-D", str(self.dir), "-U", "onemap", "--auth=trust", "--encoding=UTF8",
                "--locale=C.UTF-8")  # fmt: skip
        self._configure()

    def create_database(self) -> None:
        """Create the cluster's database."""
        subprocess.run([str(PGBIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                        "onemap", self.database], check=True, timeout=60)  # fmt: skip

    def replicate(self, host: str, port: int, user: str = "onemap", password: str | None = None,
                  timeout: float = 300) -> None:  # fmt: skip
        """Make this cluster a streaming replica of the server at host:port (pg_basebackup -R:
        standby.signal and primary_conninfo are written for us)."""
        self._own_dir()
        self.pg("pg_basebackup", "-h", host, "-p", str(port), "-U", user, "-D", str(self.dir),
                "-R", "-X", "stream", "-c", "fast", password=password, timeout=timeout)  # fmt: skip
        self._configure()

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self.pg("pg_ctl", "-D", str(self.dir), "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop at once (open connections are cut)."""
        self.pg("pg_ctl", "-D", str(self.dir), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop if running and delete the data directory."""
        subprocess.run(self.as_owner("pg_ctl", "-D", str(self.dir), "-m", "immediate", "stop"),
                       capture_output=True, timeout=60)  # not running is fine  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)
