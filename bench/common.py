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


class Server:
    """`python app.py` (gunicorn) on a free local port; stopped by its PID."""

    def __init__(self, database_url: str, **extra: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            "w+", prefix="bench-server-", suffix=".log", delete=False
        )
        env = {**os.environ, "DATABASE_URL": database_url, "ONEMAP_PORT": str(self.port),
               "ONEMAP_HOST": "127.0.0.1", "ONEMAP_DEBUG": "false", **extra}  # fmt: skip
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip

    def __enter__(self) -> Server:
        try:
            self._wait_ready()
        except BaseException as exc:
            self.__exit__(type(exc))
            raise
        return self

    def _wait_ready(self) -> None:
        """Until the public sign-in page answers 200 (every other route needs sign-in)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read())
            try:
                if requests.get(self.base + "/login", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.3)
        raise TimeoutError("server did not start")

    def __exit__(self, exc_type, *exc) -> None:
        """Stop the server by its PID; keep its log if something failed."""
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()
        if exc_type is None:
            os.unlink(self.log.name)
        else:
            print(f"server log kept: {self.log.name}", file=sys.stderr)


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
