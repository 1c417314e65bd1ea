"""`make bench`: run the benchmark suites, write bench/results.json and docs/PERFORMANCE.md.

    .venv/bin/python -m bench                      # every suite
    .venv/bin/python -m bench --suite tiles,cases  # some (make bench SUITE=tiles)

Each suite is its own `python -m bench.<suite>` process (so each keeps working alone) with
DATABASE_URL set to the database it measures: the `large` demo (`onemap_large`, built on the
configured server only when missing, else migrated to head), the `city` demo (`onemap_city`; the
default `onemap` database is never written), or a scratch database the suite drops itself.
Every figure a suite prints in its markdown tables (or hands over as JSON) goes into
bench/results.json with the machine, its load, the date, the versions and the command; each
suite rewrites its own section of docs/PERFORMANCE.md, and the runner its summary section.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.common import write_section
from bench.env import base_url, demo_database, machine_facts, versions
from settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results.json"


@dataclass(frozen=True)
class Suite:
    """One benchmark: its module, the demo scale it runs on (None: its own scratch database),
    extra arguments, and whether it hands its figures over as JSON (`--json FILE`)."""

    name: str
    module: str
    scale: str | None
    args: tuple[str, ...] = ()
    json: bool = False


SUITES = (
    Suite("tiles", "bench.tiles", "large", json=True),
    Suite("replicas", "bench.replicas", "large", json=True),  # copies the cluster twice
    Suite("cases", "bench.cases", "large"),
    Suite("drainage", "bench.drainage", "large"),
    Suite("alarms", "bench.alarms", "large"),
    Suite("coverage", "bench.coverage", "city"),
    Suite("parking", "bench.parking", None),
    Suite("page", "bench.page", "city"),
    Suite("bigscreen-render", "bench.bigscreen", "city", ("--mode", "render"), json=True),
    Suite("bigscreen", "bench.bigscreen", "city"),  # a 30-minute soak of /bigscreen
    Suite("loading", "bench.loading", None, json=True),
    Suite("growth", "bench.growth", None, json=True),
)
BY_NAME = {s.name: s for s in SUITES}


def markdown_tables(output: str) -> list[dict]:
    """Every markdown table a suite printed: its header and rows (cells as text)."""
    tables, lines = [], output.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.match(r"^\|\s*:?-", lines[i + 1]):
            header = cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, cells(lines[i]), strict=False)))
                i += 1
            tables.append({"header": header, "rows": rows})
        else:
            i += 1
    return tables


def cells(line: str) -> list[str]:
    """The cells of one markdown table row."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def run_suite(suite: Suite, url: str | None, extra: list[str]) -> dict:
    """Run one suite in its own process (output shown and kept); its entry of results.json."""
    command = [sys.executable, "-m", suite.module, *suite.args, *extra]
    json_file = None
    if suite.json:
        json_file = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name  # noqa: SIM115
        command += ["--json", json_file]
    env = {**os.environ, **({"DATABASE_URL": url} if url else {})}
    prefix = [f"DATABASE_URL=…/{url.rsplit('/', 1)[1]}"] if url else []
    shown = " ".join([*prefix, ".venv/bin/python", "-m", suite.module, *suite.args, *extra])
    print(f"\n==> {suite.name}: {shown}", flush=True)
    entry = {"command": shown, "database": url.rsplit("/", 1)[1] if url else "scratch",
             "started": datetime.now().astimezone().isoformat(),
             "load_before": [round(v, 2) for v in os.getloadavg()]}  # fmt: skip
    began = time.monotonic()
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    output = []
    for line in proc.stdout:
        sys.stdout.write(line)
        output.append(line)
    entry.update(exit_code=proc.wait(), seconds=round(time.monotonic() - began, 1),
                 load_after=[round(v, 2) for v in os.getloadavg()])  # fmt: skip
    text = "".join(output)
    entry["tables"] = markdown_tables(text)
    if json_file:
        path = Path(json_file)
        if path.exists() and path.stat().st_size:
            entry["figures"] = json.loads(path.read_text())
        path.unlink(missing_ok=True)
    if entry["exit_code"]:
        entry["error"] = text[-2000:]
    return entry


def summary(results: dict) -> str:
    """The runner's section: which suite ran when, how, how long, with what result."""
    lines = [f"Last `make bench`: {results['date'][:16].replace('T', ' ')} on {results['machine']['cpus']} CPUs "
             f"({results['machine']['cpu_model']}), {results['machine']['ram_gib']} GiB RAM; "
             + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v
                         and k in ("python", "postgresql", "postgis", "tipg", "ogr2ogr")) + ".",
             "", "| suite | run at | database | seconds | load before → after | status | command |",
             "| --- | --- | --- | ---: | --- | --- | --- |"]  # fmt: skip
    for name, e in results["suites"].items():
        status = "ok" if not e["exit_code"] else f"**failed ({e['exit_code']})**"
        lines.append(f"| {name} | {e['started'][:16].replace('T', ' ')} | {e['database']} | "
                     f"{e['seconds']:.0f} | {e['load_before'][0]:.1f} → {e['load_after'][0]:.1f} | "
                     f"{status} | `{e['command']}` |")  # fmt: skip
    lines += ["", "Every figure of these runs is in `bench/results.json` (`suites.<name>.tables` "
              "as printed, `suites.<name>.figures` where the suite hands them over as JSON)."]  # fmt: skip
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="", help="comma-separated: " + ",".join(BY_NAME))
    p.add_argument("--list", action="store_true", help="list the suites and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the chosen suites and record everything."""
    args = parse_args(argv)
    if args.list:
        for s in SUITES:
            print(f"{s.name:10s} python -m {s.module} ({s.scale or 'scratch'} database)")
        return 0
    chosen = [s for s in args.suite.split(",") if s] or list(BY_NAME)
    unknown = [s for s in chosen if s not in BY_NAME]
    if unknown:
        sys.exit(f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"suites": {}}
    urls = {}
    for scale in sorted({BY_NAME[s].scale for s in chosen} - {None}):
        urls[scale] = demo_database(scale)
    if "tiles" in chosen:
        from bench.tiles import install_tipg

        install_tipg()
    results.update(date=datetime.now().astimezone().isoformat(), machine=machine_facts(),
                   versions=versions(base_url()),
                   command="make bench" + (f" SUITE={args.suite}" if args.suite else ""))  # fmt: skip
    failed = 0
    for name in chosen:
        suite = BY_NAME[name]
        entry = run_suite(suite, urls.get(suite.scale), [])
        results["suites"][name] = entry
        failed += bool(entry["exit_code"])
        RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str) + "\n")
    write_section("bench-summary", "`make bench`: the last runs", summary(results))
    print(f"\nwritten: {RESULTS.relative_to(PROJECT_ROOT)}, docs/PERFORMANCE.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
