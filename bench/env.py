"""What a benchmark run ran on: the machine, its load, the versions, and the bench databases."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from settings import PROJECT_ROOT, Settings

LIBRARIES = ("sqlalchemy", "psycopg", "geopandas", "shapely", "pyogrio", "numpy", "pandas",
             "dash", "flask", "gunicorn", "plotly", "scipy", "requests")  # fmt: skip
SCALE_DATABASES = {"small": "onemap_small", "city": "onemap_city", "large": "onemap_large"}
BENCH_VENV = PROJECT_ROOT / "var" / "bench-venv"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())  # fmt: skip


def ram_gib() -> float:
    """Total RAM in GiB."""
    lines = Path("/proc/meminfo").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith("MemTotal")) / 1024**2


def machine() -> str:
    """nproc, RAM and CPU model of this machine, in one line."""
    return (f"{os.cpu_count()} CPUs ({cpu_model()}), {ram_gib():.1f} GiB RAM, "
            f"Python {platform.python_version()}")  # fmt: skip


def machine_facts() -> dict:
    """The machine as JSON: CPUs, RAM, load averages, kernel, date."""
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "ram_gib": round(ram_gib(), 1),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "kernel": platform.release(), "date": datetime.now().astimezone().isoformat()}  # fmt: skip


def versions(url: str) -> dict:
    """Python, PostgreSQL, PostGIS and the key libraries' versions."""
    out = {"python": platform.python_version()}
    engine = create_engine(plain(url).replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        out["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
        # PostGIS as installed on the server: the base database may not have the extension yet
        out["postgis"] = conn.execute(text(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'")).scalar()  # fmt: skip
    engine.dispose()
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    out["tipg"] = bench_venv_version("tipg")
    out["ogr2ogr"] = tool_version(["ogr2ogr", "--version"])
    out["chromium"] = tool_version(["chromium", "--version"])
    return out


def bench_venv_version(package: str) -> str | None:
    """A package's version in the separate benchmark venv (var/bench-venv), if installed."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        return None
    code = f"from importlib.metadata import version; print(version({package!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or None


def tool_version(command: list[str]) -> str | None:
    """The first line a tool prints for its version, or None when it is missing."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else None


def plain(url: str) -> str:
    """The URL as libpq and other tools take it (no SQLAlchemy driver suffix, password shown)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def base_url() -> str:
    """The configured database URL (DATABASE_URL or var/database_url)."""
    return plain(Settings().sqlalchemy_url())


def database_url(name: str) -> str:
    """The URL of another database on the configured server."""
    return make_url(base_url()).set(database=name).render_as_string(hide_password=False)


def database_exists(name: str) -> bool:
    """Whether the server has a database of that name."""
    engine = create_engine(
        database_url("postgres").replace("postgresql://", "postgresql+psycopg://", 1)
    )
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": name})
        exists = found.first() is not None
    engine.dispose()
    return exists


def create_database(name: str) -> None:
    """CREATE DATABASE (the name comes from code, never from input)."""
    engine = create_engine(database_url("postgres").replace("postgresql://", "postgresql+psycopg://", 1),
                           isolation_level="AUTOCOMMIT")  # fmt: skip
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def drop_database(name: str) -> None:
    """DROP DATABASE of a scratch database (never one of the demo databases)."""
    if name in SCALE_DATABASES.values() or name == make_url(base_url()).database:
        raise ValueError(f"refusing to drop {name}")
    engine = create_engine(database_url("postgres").replace("postgresql://", "postgresql+psycopg://", 1),
                           isolation_level="AUTOCOMMIT")  # fmt: skip
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def demo_database(scale: str, log=print) -> str:
    """The URL of the `scale` demo database: reused when it holds data, else built (and migrated)."""
    name = SCALE_DATABASES[scale]
    url = database_url(name)
    env = {**os.environ, "DATABASE_URL": url}
    if not database_exists(name):
        create_database(name)
    built = has_demo(url)
    command = ["migrate"] if built else ["demo", "--scale", scale, "--seed", "1"]
    log(
        f"{'reusing' if built else 'building'} the {scale} demo in {name}: python -m loaders {' '.join(command)}"
    )
    subprocess.run(
        [sys.executable, "-m", "loaders", *command], cwd=PROJECT_ROOT, env=env, check=True
    )
    return url


def has_demo(url: str) -> bool:
    """Whether the database holds a demo city (unit grids and cases)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text(
                "SELECT to_regclass('case_record') IS NOT NULL AND EXISTS (SELECT 1 FROM unit_grid)"
            )).scalar())  # fmt: skip
    except Exception:  # an empty database has no unit_grid table: not built
        return False
    finally:
        engine.dispose()
