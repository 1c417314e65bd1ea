"""Map-page benchmark: first render, tile bytes per viewport and JS heap over pans, in Chromium.

    .venv/bin/python -m bench.page

Reads the default project database (the `city` demo) and only creates one throw-away user
(role leader, random password), deleted at the end. Starts `python app.py` (gunicorn) itself on a
free 127.0.0.1 port and drives Debian's headless Chromium (1920x1080) through chromedriver:
first render of the map page cold (a new browser profile per run), transferred bytes of the
/tiles/ requests per viewport with the six component layers on, and the JS heap over 100 pans.
Prints a markdown table and appends a section to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from bench.common import CHROMIUM_FLAGS, Server, bench_user, drop_user
from bench.queries import table_sizes
from bench.tiles import machine, percentile
from callbacks.layer_tree import DEFAULT_ON
from geodata.db import make_engine
from settings import PROJECT_ROOT, Settings

OUT = PROJECT_ROOT / "docs" / "PERFORMANCE.md"
SECTION = "## Map page (一张图) in headless Chromium"
WIDTH, HEIGHT = 1920, 1080
COMPONENTS = tuple(f"component_0{i}" for i in range(1, 7))
ZOOMS = range(12, 19)
DISTRICT = "370102"  # 历下区, the demo city
RENDER_TARGET_MS, VIEW_TARGET_BYTES, HEAP_FACTOR = 2000, 1_000_000, 1.5

# `__benchSettled(expect)`: true when the layer manager is attached, holds exactly the layers
# `expect` (sorted, comma-joined) and every tile of each covering the view is fetched and drawn.
SETTLED_JS = """
performance.setResourceTimingBufferSize(100000);
window.__benchSettled = function (expect) {
  const o = window.onemap && window.onemap.layers;
  if (!o || !o.map()) { return false; }
  if (Object.keys(o.status().layers).sort().join(",") !== expect) { return false; }
  let n = 0, ok = true;
  o.map().eachLayer(function (l) {
    if (l.onemapUrl === undefined) { return; }
    n += 1;
    const z = o.map().getZoom();
    if (z < l.options.minZoom || z > l.options.maxZoom) { return; }  // not drawn at this zoom
    const tiles = Object.values(l._tiles || {});
    if (l.isLoading() || !tiles.length || tiles.some(function (t) { return !t.loaded; })) {
      ok = false;
    }
  });
  return ok && n === expect.split(",").length;
};
"""
# Injected before any page script: a resource-timing buffer large enough for hundreds of tiles,
# the settled test, and a requestAnimationFrame probe that records (performance.now(), i.e. ms
# since navigation start) the first frame in which the map is attached and the first frame in
# which the expected layers are all on the map with every tile fetched and drawn.
PROBE = (
    SETTLED_JS
    + """
window.__bench = {attached: null, rendered: null};
(function poll() {
  const o = window.onemap && window.onemap.layers;
  if (o && o.map() && window.__bench.attached === null) {
    window.__bench.attached = performance.now();
  }
  const q = new URLSearchParams(location.search).get("layers");
  const expect = (q ? q.split(",") : %s).sort().join(",");
  if (location.pathname === "/" && window.__benchSettled(expect)) {
    window.__bench.rendered = performance.now();
    return;
  }
  requestAnimationFrame(poll);
})();
"""
)
TILE_ENTRIES = """
return performance.getEntriesByType("resource").filter(e => e.name.includes("/tiles/"))
  .map(e => [e.transferSize, e.encodedBodySize, e.startTime, e.responseEnd]);
"""


class Browser:
    """Headless Chromium in a fresh profile, with a probe (the map page's by default) injected
    into every document."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, probe: str | None = None):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="bench-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("ONEMAP_CHROMIUM", "/usr/bin/chromium")
        flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")]
        for flag in [*flags, f"--window-size={width},{height}", f"--user-data-dir={self.profile}"]:
            options.add_argument(flag)
        path = os.environ.get("ONEMAP_CHROMEDRIVER", "/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(service=Service(path), options=options)
        self.driver.set_script_timeout(60)
        for domain in ("Network", "Performance", "HeapProfiler"):
            self.cdp(f"{domain}.enable")
        if probe is None:
            probe = PROBE % repr(sorted(DEFAULT_ON)).replace("'", '"')
        self.cdp("Page.addScriptToEvaluateOnNewDocument", source=probe)

    def cdp(self, cmd: str, **params) -> dict:
        """One Chrome DevTools Protocol command."""
        return self.driver.execute_cdp_cmd(cmd, params)

    def js(self, script: str, *args):
        """Run a script in the page."""
        return self.driver.execute_script(script, *args)

    def sign_in(self, base: str, username: str, password: str) -> None:
        """Sign in through the real login form; lands on the small /api/me answer, not the map."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(base + "/login?next=/api/me")
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.ID, "login-submit").click()
        WebDriverWait(self.driver, 30).until(
            lambda d: "/api/me" in d.current_url and username in d.page_source,
            "sign-in failed",
        )

    def wait(self, condition, timeout: float = 60, what: str = "condition"):
        """Poll `condition()` every 20 ms until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.02)
        raise TimeoutError(f"timed out waiting for {what}")

    def settle(self, layers: tuple[str, ...], timeout: float = 60) -> None:
        """Wait until every tile of `layers` in the view is drawn and stays so for 150 ms."""
        expect = ",".join(sorted(layers))
        for _ in range(2):
            self.wait(lambda: self.js("return window.__benchSettled(arguments[0])", expect),
                      timeout, "tiles")  # fmt: skip
            time.sleep(0.15)

    def heap(self) -> int:
        """JS heap in use after a full garbage collection, in bytes."""
        self.cdp("HeapProfiler.collectGarbage")
        metrics = self.cdp("Performance.getMetrics")["metrics"]
        return int(next(m["value"] for m in metrics if m["name"] == "JSHeapUsedSize"))

    def close(self) -> None:
        """Quit Chromium and remove its profile."""
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


def city_extent(conn) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of the demo city's unit grid cells."""
    row = conn.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
        "FROM unit_grid WHERE community_code LIKE :d) x"), {"d": DISTRICT + "%"}).one()  # fmt: skip
    if row[0] is None:
        raise SystemExit("no unit_grid cells of 历下区: load the city demo first")
    return tuple(row)


def view_list(extent, seed: int, per_zoom: int) -> list[tuple[int, float, float]]:
    """`per_zoom` seeded (z, lat, lon) views per zoom, centres uniform in the city extent."""
    rng = random.Random(seed)
    minx, miny, maxx, maxy = extent
    return [(z, rng.uniform(miny, maxy), rng.uniform(minx, maxx))
            for z in ZOOMS for _ in range(per_zoom)]  # fmt: skip


def first_render(base: str, username: str, password: str) -> dict:
    """One cold load of the map page (new profile): milliseconds from navigation start."""
    b = Browser()
    try:
        b.sign_in(base, username, password)
        b.driver.get(base + "/")
        rendered = b.wait(lambda: b.js("return window.__bench.rendered"), 60, "first render")
        nav = b.js("const n = performance.getEntriesByType('navigation')[0];"
                   "return [n.domContentLoadedEventEnd, n.loadEventEnd];")  # fmt: skip
        tiles = b.js(TILE_ENTRIES)
        return {"rendered": rendered, "attached": b.js("return window.__bench.attached"),
                "dcl": nav[0], "load": nav[1], "tiles": len(tiles),
                "first_tile": min(t[2] for t in tiles), "last_tile": max(t[3] for t in tiles),
                "bytes": sum(t[0] for t in tiles)}  # fmt: skip
    finally:
        b.close()


def open_layers(b: Browser, base: str, extent) -> dict:
    """Load the page with the six component layers on, at the city centre; the map size."""
    minx, miny, maxx, maxy = extent
    b.driver.get(f"{base}/?layers={','.join(COMPONENTS)}&z=13&lat={(miny + maxy) / 2:.6f}"
                 f"&lon={(minx + maxx) / 2:.6f}")  # fmt: skip
    b.wait(lambda: b.js("return window.__bench.rendered"), 60, "component layers")
    b.wait(lambda: b.js("return window.onemap.layers.map().getZoom() === 13"), 30, "URL view")
    b.settle(COMPONENTS)
    return b.js("const s = window.onemap.layers.map().getSize(); return {x: s.x, y: s.y};")


def view_bytes(b: Browser, views) -> list[dict]:
    """Transferred /tiles/ bytes to fill each view from an empty browser cache."""
    out = []
    for z, lat, lon in views:
        b.cdp("Network.clearBrowserCache")
        b.js("performance.clearResourceTimings();"
             "window.onemap.layers.map().setView([arguments[0], arguments[1]], arguments[2],"
             " {animate: false});", lat, lon, z)  # fmt: skip
        b.settle(COMPONENTS)
        tiles = b.js(TILE_ENTRIES)
        out.append({"z": z, "tiles": len(tiles), "bytes": sum(t[0] for t in tiles),
                    "body": sum(t[1] for t in tiles)})  # fmt: skip
    return out


def pan_offset(rng: random.Random, centre: dict, extent) -> tuple[int, int]:
    """A varied pan (200–900 px each way), turned back towards the city when outside it."""
    minx, miny, maxx, maxy = extent
    dx = rng.randint(200, 900) * rng.choice((-1, 1))
    dy = rng.randint(150, 600) * rng.choice((-1, 1))
    if not minx < centre["lng"] < maxx:
        dx = abs(dx) if centre["lng"] < minx else -abs(dx)
    if not miny < centre["lat"] < maxy:
        dy = -abs(dy) if centre["lat"] < miny else abs(dy)  # screen y grows southwards
    return dx, dy


def pans(b: Browser, extent, seed: int, count: int) -> tuple[list[tuple[int, int]], float]:
    """`count` pans at z16 (every 10th a zoom in or out instead), heap sampled every 10."""
    rng = random.Random(seed)
    minx, miny, maxx, maxy = extent
    b.js("window.onemap.layers.map().setView([arguments[0], arguments[1]], 16, {animate: false})",
         (miny + maxy) / 2, (minx + maxx) / 2)  # fmt: skip
    b.settle(COMPONENTS)
    samples, began = [(0, b.heap())], time.monotonic()
    for i in range(1, count + 1):
        if i % 10 == 5:
            z = rng.choice((15, 17, 18))
            b.js("window.onemap.layers.map().setZoom(arguments[0], {animate: false})", z)
        elif i % 10 == 6:
            b.js("window.onemap.layers.map().setZoom(16, {animate: false})")
        else:
            centre = b.js("return window.onemap.layers.map().getCenter()")
            b.js("window.onemap.layers.map().panBy(arguments[0], {animate: false})",
                 list(pan_offset(rng, centre, extent)))  # fmt: skip
        b.settle(COMPONENTS)
        if i % 10 == 0:
            samples.append((i, b.heap()))
            print(f"  pan {i}: heap {samples[-1][1] / 2**20:.1f} MiB", flush=True)
    return samples, time.monotonic() - began


def mb(n: float) -> str:
    """Bytes as MB (10^6) with two decimals."""
    return f"{n / 1e6:.2f}"


def mib(n: float) -> str:
    """Bytes as MiB with one decimal."""
    return f"{n / 2**20:.1f}"


def render_rows(runs: list[dict]) -> list[str]:
    """Markdown rows of the cold first-render runs."""
    rows = ["| run | DOMContentLoaded ms | attached ms | first tile requested ms | "
            "last tile response ms | **first render ms** | tile requests | tile bytes (MB) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for i, r in enumerate(runs, 1):
        rows.append(f"| {i} | {r['dcl']:.0f} | {r['attached']:.0f} | {r['first_tile']:.0f} | "
                    f"{r['last_tile']:.0f} | **{r['rendered']:.0f}** | {r['tiles']} | "
                    f"{mb(r['bytes'])} |")  # fmt: skip
    return rows


def view_rows(results: list[dict], scale: float) -> list[str]:
    """Markdown rows per zoom: mean and max bytes per view, measured and scaled to full HD."""
    rows = ["| z | views | tiles per view (mean) | mean MB | max MB | max MB scaled to 1920×1080 | "
            "< 1 MB |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    groups = defaultdict(list)
    for r in results:
        groups[r["z"]].append(r)
    groups["all"] = results
    for z, rs in groups.items():
        got = [r["bytes"] for r in rs]
        worst = max(got) * scale
        rows.append(f"| {z} | {len(rs)} | {sum(r['tiles'] for r in rs) / len(rs):.0f} | "
                    f"{mb(sum(got) / len(got))} | {mb(max(got))} | {mb(worst)} | "
                    f"{'yes' if worst < VIEW_TARGET_BYTES else '**no**'} |")  # fmt: skip
    return rows


def heap_rows(samples: list[tuple[int, int]]) -> list[str]:
    """Markdown rows of the heap samples."""
    rows = ["| after pans | " + " | ".join(str(i) for i, _ in samples) + " |",
            "| --- |" + " ---: |" * len(samples),
            "| JS heap used (MiB) | " + " | ".join(mib(h) for _, h in samples) + " |"]  # fmt: skip
    return rows


def verdicts(runs, results, scale, samples) -> tuple[list[str], dict]:
    """Plain statements of each target, met or missed."""
    p50 = percentile([r["rendered"] for r in runs], 50)
    worst_render = max(r["rendered"] for r in runs)
    worst_view = max(r["bytes"] for r in results)
    heaps = [h for i, h in samples if i > 0]
    first, last = heaps[0], heaps[-1]
    bounded = last <= HEAP_FACTOR * first
    ok = {"render": worst_render < RENDER_TARGET_MS,
          "bytes": worst_view * scale < VIEW_TARGET_BYTES, "heap": bounded}  # fmt: skip
    lines = [
        f"* First render: p50 {p50:.0f} ms, max {worst_render:.0f} ms over {len(runs)} cold runs "
        f"— target < {RENDER_TARGET_MS} ms {'met' if ok['render'] else '**missed**'}.",
        f"* Bytes per viewport: max {mb(worst_view)} MB measured, {mb(worst_view * scale)} MB "
        f"scaled to a 1920×1080 map — target < 1 MB {'met' if ok['bytes'] else '**missed**'}.",
        f"* JS heap: {mib(samples[0][1])} MiB before, {mib(first)} MiB after 10 pans, "
        f"{mib(last)} MiB after {samples[-1][0]}, max {mib(max(heaps))} MiB; last / after-10 = "
        f"{last / first:.2f} — {'bounded' if bounded else '**not bounded**'} "
        f"(criterion ≤ {HEAP_FACTOR}×).",
    ]
    return lines, ok


def report(args, runs, size, results, samples, pan_seconds, sizes, extent) -> str:
    """The markdown section appended to docs/PERFORMANCE.md."""
    scale = WIDTH * HEIGHT / (size["x"] * size["y"])
    lines, _ = verdicts(runs, results, scale, samples)
    data = ", ".join(f"{t} {sizes[t]:,}" for t in ("component", "unit_grid", "road", "green_space",
                                                    "tile_aggregate") if t in sizes)  # fmt: skip
    return "\n".join([
        "", SECTION, "",
        f"Measured {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {machine()}; "
        f"Chromium {args.chromium}, headless, window {WIDTH}×{HEIGHT} (map element "
        f"{size['x']}×{size['y']} px, the rest is the side panels).",
        "",
        f"Command: `.venv/bin/python -m bench.page --seed {args.seed} --per-zoom {args.per_zoom} "
        f"--runs {args.runs} --pans {args.pans}"
        f"{f' --workers {args.workers}' if args.workers else ''}` (default project database "
        f"`{args.database}`, the `city` demo).",
        "",
        f"Data: {data}; the six component layers hold {args.components:,} components "
        f"(component_01 {args.component_01:,}). City extent (历下区 unit grid): "
        f"{extent[0]:.4f},{extent[1]:.4f} – {extent[2]:.4f},{extent[3]:.4f}.",
        "",
        "**First render** = from navigation start of the map page (`performance.now()` origin of "
        "`GET /`, signed in, HTTP cache empty: a new Chromium profile per run, the sign-in landed "
        "on `/api/me`) to the first animation frame in which `window.onemap.layers` is attached "
        "to the Leaflet map, the default layers (" + ", ".join(DEFAULT_ON) + ") are all on the "
        "map, and every tile of each covering the view has been fetched, decoded and drawn "
        "(Leaflet `isLoading()` false, every tile `loaded`; VectorGrid marks a tile loaded in the "
        "frame after drawing it). *attached* is the first frame with the map and the layer "
        "manager attached. Server: " + args.server + "; its per-worker tile cache starts "
        "empty at run 1 (later runs may hit it; the browser cache is always empty).",
        "",
        *render_rows(runs), "",
        f"**Bytes per viewport** = sum of `PerformanceResourceTiming.transferSize` (headers + "
        f"gzip body as sent) of the `/tiles/` requests to fill one view, with "
        f"{', '.join(COMPONENTS)} on (`?layers=…`), the browser cache cleared (CDP "
        f"`Network.clearBrowserCache`) and the view set with `map.setView(…, {{animate: false}})`; "
        f"{args.per_zoom} seeded views (seed {args.seed}) per zoom, centres uniform in the city "
        f"extent. The last columns scale the worst view by the area ratio "
        f"{WIDTH}×{HEIGHT} / {size['x']}×{size['y']} = {scale:.2f} (a map filling the whole "
        f"full-HD screen).",
        "",
        *view_rows(results, scale), "",
        f"**JS heap** = CDP `Performance.getMetrics` `JSHeapUsedSize` after "
        f"`HeapProfiler.collectGarbage`, before and every 10 of {args.pans} moves at z16 with the "
        f"six component layers on: `map.panBy` by seeded 200–900 × 150–600 px (turned back when "
        f"the centre leaves the city), every 10th move a zoom to z15/17/18 and the next back to "
        f"z16; each move waits until all tiles are drawn ({pan_seconds:.0f} s in all).",
        "",
        *heap_rows(samples), "",
        *lines,
    ])  # fmt: skip


def write_section(block: str) -> None:
    """Append the section to docs/PERFORMANCE.md, replacing an earlier one of this benchmark."""
    old = OUT.read_text("utf-8").rstrip("\n") + "\n"
    if SECTION in old:
        before, rest = old.split("\n" + SECTION, 1)
        after = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
        old = before.rstrip("\n") + "\n" + ("\n## " + after if after else "")
    OUT.write_text(old.rstrip("\n") + "\n" + block + "\n", "utf-8")


def chromium_version() -> str:
    """Version of the Chromium binary."""
    binary = os.environ.get("ONEMAP_CHROMIUM", "/usr/bin/chromium")
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split()[1] if out.stdout else "?"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-zoom", type=int, default=4, help="views per zoom (z12–z18)")
    p.add_argument("--runs", type=int, default=5, help="cold first-render runs")
    p.add_argument("--pans", type=int, default=100)
    p.add_argument("--workers", type=int, help="ONEMAP_WORKERS of the server (default: its own)")
    p.add_argument("--no-write", action="store_true", help="print only")
    return p.parse_args()


def measure(args, base: str, user: str, password: str, extent) -> tuple:
    """All three measurements against a running server."""
    runs = []
    for i in range(args.runs):
        runs.append(first_render(base, user, password))
        print(f"cold run {i + 1}: {runs[-1]['rendered']:.0f} ms", flush=True)
    b = Browser()
    try:
        b.sign_in(base, user, password)
        size = open_layers(b, base, extent)
        print(f"map element {size['x']}×{size['y']}; bytes per view…", flush=True)
        results = view_bytes(b, view_list(extent, args.seed, args.per_zoom))
        print("pans…", flush=True)
        samples, seconds = pans(b, extent, args.seed, args.pans)
    finally:
        b.close()
    return runs, size, results, samples, seconds


def main() -> int:
    """Run the benchmark, print the report and append it to docs/PERFORMANCE.md."""
    args = parse_args()
    engine = make_engine(Settings().sqlalchemy_url())
    args.database, args.chromium = engine.url.database, chromium_version()
    args.server = f"gunicorn, {args.workers or Settings().workers} worker(s) × 4 threads"
    plain_url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    with engine.connect() as conn:
        extent, sizes = city_extent(conn), table_sizes(conn)
        args.component_01 = conn.execute(text(
            "SELECT count(*) FROM component WHERE left(class_code, 2) = '01'")).scalar()  # fmt: skip
        args.components = conn.execute(text(
            "SELECT count(*) FROM component WHERE left(class_code, 2) BETWEEN '01' AND '06'")).scalar()  # fmt: skip
    user = bench_user(engine)
    try:
        extra = {"ONEMAP_WORKERS": str(args.workers)} if args.workers else {}
        with Server(plain_url, **extra) as srv:
            runs, size, results, samples, seconds = measure(
                args, srv.base, user.name, user.password, extent
            )
    finally:
        drop_user(engine, user.name)
        engine.dispose()
    block = report(args, runs, size, results, samples, seconds, sizes, extent)
    print(block)
    if not args.no_write:
        write_section(block)
        print(f"\nwritten to {Path(OUT).relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
