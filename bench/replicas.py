"""Read scale-out: tile throughput with 0, 1 and 2 streaming replicas of the configured server.

    DATABASE_URL=…/onemap_large .venv/bin/python -m bench.replicas   (make bench SUITE=replicas)

Two replicas of the configured cluster are made with `pg_basebackup -R` (the whole cluster is
copied: about 6 GB with the demo databases) and started on free local ports. The app then serves
the seeded leader tile list of `bench.tiles` with its tile cache off, so that every request
reaches PostgreSQL, to 8 concurrent clients: once with no replica, once with
`ONEMAP_READ_DATABASE_URL` naming one replica, once naming both. Per run: requests per second,
p50/p95, and the share of the reads each server answered (the change of its transaction count
for the database). Also measured: a revalidation with the tile's ETag against a full answer,
and the replay delay, from a commit on the primary until each
replica has replayed it (median and max of 20 commits). The replicas are removed afterwards.

Every server runs on this one machine, sharing its cores: a replica here adds no CPU, so the
throughput cannot grow with replicas; what the figures show is that reads move off the primary,
what routing costs, and how far replicas lag. docs/SCALING.md argues the multi-host case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import make_url, text

from bench.common import Server, drop_user, write_section
from bench.env import machine, plain
from bench.pgcluster import PrivateCluster
from bench.sample import busiest_district, tile_list
from bench.tiles import GZIP, bench_users, leader_load, load, percentile
from geodata.db import make_engine
from settings import Settings, to_sqlalchemy_url

XACTS = text("SELECT xact_commit + xact_rollback FROM pg_stat_database "
             "WHERE datname = current_database()")  # fmt: skip


def transactions(urls: list[str]) -> list[int]:
    """The database's transaction count on each server (statistics flushed first)."""
    out = []
    for url in urls:
        engine = make_engine(to_sqlalchemy_url(url))
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
            out.append(int(conn.execute(XACTS).scalar()))
        engine.dispose()
    return out


def replay_delays(primary: str, replicas: list[str], commits: int = 20) -> list[float]:
    """Milliseconds from a commit on the primary until every replica has replayed it."""
    p = make_engine(to_sqlalchemy_url(primary))
    rs = [make_engine(to_sqlalchemy_url(u)) for u in replicas]
    delays = []
    try:
        for _ in range(commits):
            with p.begin() as conn:
                conn.execute(text("SELECT txid_current()"))  # a commit record in the WAL
            began = time.perf_counter()
            with p.connect() as conn:
                lsn = str(conn.execute(text("SELECT pg_current_wal_lsn()")).scalar())
            for r in rs:
                with r.connect() as conn:
                    while not conn.execute(text("SELECT pg_last_wal_replay_lsn() >= "
                                                "CAST(:l AS pg_lsn)"), {"l": lsn}).scalar():  # fmt: skip
                        time.sleep(0.0005)
            delays.append((time.perf_counter() - began) * 1000)
            time.sleep(0.05)
    finally:
        p.dispose()
        for r in rs:
            r.dispose()
    return delays


def revalidation(base: str, tiles, headers: dict) -> dict:
    """ms of each tile answered in full (cache off) and of its revalidation with the ETag (304)."""
    full, not_modified = [], []
    with requests.Session() as s:
        s.headers.update(headers)
        for t in tiles:
            began = time.perf_counter()
            first = s.get(base + t.path, timeout=120)
            full.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            again = s.get(base + t.path, headers={"If-None-Match": first.headers["ETag"]},
                          timeout=120)  # fmt: skip
            not_modified.append((time.perf_counter() - began) * 1000)
            if again.status_code != 304:
                raise RuntimeError(f"{t.path}: {again.status_code} to a matching If-None-Match")
    return {name: {"p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2)}
            for name, v in (("full", full), ("not_modified", not_modified))}  # fmt: skip


def start_replicas(url: str, n: int) -> tuple[list[PrivateCluster], list[str]]:
    """n streaming replicas of the server of `url`; their clusters and database URLs."""
    u = make_url(url)
    clusters, urls = [], []
    for _ in range(n):
        c = PrivateCluster(u.database, prefix="onemap-bench-replica-")
        clusters.append(c)
        print(f"pg_basebackup → {c.dir} (port {c.port})…", flush=True)
        began = time.monotonic()
        c.replicate(u.host, u.port, u.username, u.password, timeout=3600)
        c.start()
        print(f"  copied and started in {time.monotonic() - began:.0f} s", flush=True)
        urls.append(
            plain(u.set(host="127.0.0.1", port=c.port).render_as_string(hide_password=False))
        )
    return clusters, urls


def measure(args, url: str) -> dict:
    """Throughput and read shares with 0, 1, 2 replicas; replay delays."""
    primary = plain(url)
    engine = make_engine(url, statement_timeout_ms=300_000)
    with engine.connect() as conn:
        tiles = tile_list(conn, args.seed, args.per_zoom)
        users = bench_users(engine, busiest_district(conn))
    token = users["leader"][1]
    headers = {"Authorization": f"Bearer {token}", **GZIP}
    clusters: list[PrivateCluster] = []
    out = {"tiles": len(tiles), "runs": []}
    try:
        clusters, replicas = start_replicas(url, 2)
        delays = replay_delays(primary, replicas)
        out["replay_ms"] = {"median": round(statistics.median(delays), 2),
                            "max": round(max(delays), 2), "commits": len(delays)}  # fmt: skip
        servers = [primary, *replicas]
        for n in (0, 1, 2):
            read_urls = ",".join(replicas[:n])
            with Server(
                primary, ONEMAP_TILE_CACHE_MB="0", ONEMAP_READ_DATABASE_URL=read_urls
            ) as srv:
                urls = [srv.base + t.path for t in tiles]
                load(urls[:50], headers, args.clients, 3, 400)  # connections and plans warm
                before = transactions(servers)
                print(f"{n} replica(s): throughput…", flush=True)
                run = leader_load(srv.base, token, tiles, args)
                after = transactions(servers)
                if n == 0:
                    print("revalidation…", flush=True)
                    out["revalidation"] = revalidation(srv.base, tiles, headers)
            served = [b - a for a, b in zip(before, after, strict=True)]
            total = sum(served) or 1
            run.update(replicas=n, share=[round(100 * s / total, 1) for s in served])
            out["runs"].append(run)
    finally:
        for c in clusters:
            c.remove()
        for name, _ in users.values():
            drop_user(engine, name)
        engine.dispose()
    return out


def report(args, m: dict) -> str:
    """The markdown section."""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine()}; database `{args.database}`, "
        f"the seeded leader list of `bench.tiles` ({m['tiles']} tiles, seed {args.seed}), tile "
        f"cache off, {args.clients} clients for up to {args.seconds:g} s each. All servers share "
        "this machine's cores (see docs/SCALING.md).",
        "",
        "| replicas | requests/s | p50 ms | p95 ms | errors | share of transactions: "
        "primary / replica 1 / replica 2 |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in m["runs"]:
        share = " / ".join(f"{s:g} %" for s in r["share"])
        lines.append(f"| {r['replicas']} | {r['rps']:g} | {r['p50_ms']:g} | {r['p95_ms']:g} | "
                     f"{r['errors']} | {share} |")  # fmt: skip
    r = m["revalidation"]
    lines += ["", "Revalidation (what an HTTP cache in front of `/tiles` asks once a tile's max-age "
              "has passed), the same list one by one, no replica, cache off: a full answer p50 "
              f"{r['full']['p50']:g} ms / p95 {r['full']['p95']:g} ms; a `304` to the tile's "
              f"ETag p50 {r['not_modified']['p50']:g} ms / p95 {r['not_modified']['p95']:g} ms "
              "(nothing is rendered: the ETag is known from the data version)."]  # fmt: skip
    d = m["replay_ms"]
    lines += ["", f"Replay delay (commit on the primary → replayed on both replicas), "
              f"{d['commits']} commits: median {d['median']:g} ms, max {d['max']:g} ms."]  # fmt: skip
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-zoom", type=int, default=15)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--max-requests", type=int, default=20_000)
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """`python -m bench.replicas`."""
    args = parse_args(argv)
    url = Settings().sqlalchemy_url()
    args.database = make_url(url).database
    m = measure(args, url)
    block = report(args, m)
    print(block)
    if not args.no_write:
        write_section("replicas", "Read scale-out on streaming replicas (`python -m bench.replicas`)",
                      block)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"database": args.database, **m}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
