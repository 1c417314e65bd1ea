"""Shared by the benchmarks: the server under test and the throw-away signed-in user."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import requests
from sqlalchemy import text

from auth import accounts
from settings import PROJECT_ROOT

# Debian Chromium, headless, with nothing reaching for the network (tests and benchmarks).
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
]


class BenchUser(NamedTuple):
    """The throw-away account: its name, password and (if asked for) API token."""

    name: str
    password: str
    token: str | None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_user(engine, *, with_token: bool = False) -> BenchUser:
    """Create the throw-away leader account (and a token) in one transaction."""
    name, password = f"bench_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    with engine.begin() as conn:
        accounts.add_user(conn, name, "leader", password, display_name="性能测试（临时）")
        token = accounts.create_token(conn, name, "benchmark", 1)[1] if with_token else None
    return BenchUser(name, password, token)


def drop_user(engine, name: str) -> None:
    """Delete the throw-away account; its tokens cascade (its audit_log rows stay)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM app_user WHERE username = :u"), {"u": name})


def token_session(token: str) -> requests.Session:
    """An HTTP session that sends `Authorization: Bearer <token>` on every request."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


class Service:
    """A server process on a free local port, ready once `probe` answers 200; stopped by its PID.
    Its output goes to a temporary log, kept (and named) only when something failed."""

    probe = "/"
    ready_s = 90.0

    def __init__(self, command: list[str], env: dict[str, str], cwd, port: int, prefix: str):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            "w+", prefix=prefix, suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)  # fmt: skip

    def __enter__(self):
        try:
            self._wait_ready()
        except BaseException as exc:
            self.__exit__(type(exc))
            raise
        return self

    def _wait_ready(self) -> None:
        """Until the probe answers 200 (or the process dies, with its log as the error)."""
        deadline = time.monotonic() + self.ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read())
            try:
                if requests.get(self.base + self.probe, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.3)
        raise TimeoutError(f"{type(self).__name__} did not start")

    def __exit__(self, exc_type, *exc) -> None:
        """Stop the process by its PID; keep its log if something failed."""
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()
        if exc_type is None:
            os.unlink(self.log.name)
        else:
            print(f"log kept: {self.log.name}", file=sys.stderr)


class Server(Service):
    """`python app.py` (gunicorn) on a free local port; ready when the public sign-in page
    answers (every other route needs sign-in)."""

    probe = "/login"

    def __init__(self, database_url: str, **extra: str):
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "ONEMAP_PORT": str(port),
               "ONEMAP_HOST": "127.0.0.1", "ONEMAP_DEBUG": "false", **extra}  # fmt: skip
        super().__init__([sys.executable, "app.py"], env, PROJECT_ROOT, port, "bench-server-")


def write_section(name: str, heading: str, markdown: str) -> None:
    """Replace the `name` section of docs/PERFORMANCE.md between its bench markers (appended
    under `heading` the first time)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    path = PROJECT_ROOT / "docs" / "PERFORMANCE.md"
    doc = path.read_text(encoding="utf-8")
    block = f"{start}\n{markdown}\n{end}"
    if start in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc += f"\n## {heading}\n\n{block}\n"
    path.write_text(doc, encoding="utf-8")


def targets_table(preface: str, rows, digits: int = 2) -> str:
    """A markdown table of (case, seconds, target or None, note) rows under a preface line."""
    lines = [preface, "", "| case | seconds | target | met | note |",
             "| --- | ---: | ---: | --- | --- |"]  # fmt: skip
    for case, secs, target, note in rows:
        met = "—" if target is None else ("yes" if secs < target else "**no**")
        shown = "" if target is None else f"< {target:g}"
        lines.append(f"| {case} | {secs:.{digits}f} | {shown} | {met} | {note} |")
    return "\n".join(lines)
