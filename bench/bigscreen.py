"""Big screen in headless Chromium: first render and bytes per view, or a half-hour soak.

    .venv/bin/python -m bench.bigscreen --mode render [--rounds 3]
    .venv/bin/python -m bench.bigscreen [--minutes 30] [--refresh 2] [--rotate 10]

Reads the default project database (the `city` demo; nothing is written but one throw-away kiosk
account, deleted at the end, and the screen's daily record of figures). Starts `python app.py`
(gunicorn) with ONEMAP_BIGSCREEN_DAY=latest (the demo's data end before today) and signs in as
the kiosk in Debian's headless Chromium.

`--mode render` opens each configured view (`/bigscreen?view=…`) cold, in a new browser profile
each time, `--rounds` times at 1920×1080 and once at 3840×2160: the time to the map, to the first
figures (KPIs and charts drawn) and to the view's layers drawn, and the bytes it took (tiles,
Dash updates, the page's own files). The first round meets a server with empty caches.

`--mode soak` (the default) opens /bigscreen refreshing every `--refresh` s and rotating every
`--rotate` s for `--minutes`. It records the JS heap (after a forced garbage collection) and the
DOM node count at the start, every five minutes and at the end, and counts refreshes and
rotations seen. Each mode writes its own section of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from analytics import bigscreen as bs
from auth import accounts
from auth.accounts import User
from bench.common import CHROMIUM_FLAGS, Server, drop_user, write_section
from bench.page import SETTLED_JS, Browser, chromium_version
from bench.tiles import machine, percentile
from callbacks.bigscreen import screen_views, wanted_layers
from geodata.db import make_engine
from settings import Settings

WIDTH, HEIGHT = 1920, 1080
SIZES = ((1920, 1080), (3840, 2160))
RENDER_TARGET_MS = 2000  # the map page's target; the big screen has none of its own
SAMPLE_EVERY_S = 300
PROBE = """
if (window.gc) { window.gc(); }
const s = window.onemap && window.onemap.bigscreen ? window.onemap.bigscreen.status() : {};
return {heap: performance.memory ? performance.memory.usedJSHeapSize : null,
        nodes: document.getElementsByTagName('*').length,
        updated: (document.getElementById('bs-updated') || {}).textContent || '',
        view: ((document.querySelector('.bs-view.bs-current') || {}).textContent) || '',
        listeners: s.nodes};
"""


def chromium() -> webdriver.Chrome:
    """Headless Chromium with a precise heap and a callable garbage collector."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*CHROMIUM_FLAGS, "--enable-precise-memory-info", "--js-flags=--expose-gc"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
    return driver


def soak(base: str, name: str, password: str, minutes: float, refresh: int, rotate: int,
         every: float = SAMPLE_EVERY_S) -> dict:  # fmt: skip
    """Run the screen for `minutes`; samples of heap and nodes, refreshes and rotations seen."""
    driver = chromium()
    try:
        driver.get(base + "/login")
        driver.find_element(By.ID, "username").send_keys(name)
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.ID, "login-submit").click()
        WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)
        driver.get(f"{base}/bigscreen?refresh={refresh}&rotate={rotate}")
        WebDriverWait(driver, 300).until(  # the first figures (cold caches: coverage, Gi*)
            lambda d: "更新于" in d.find_element(By.ID, "bs-updated").text
        )
        time.sleep(30)  # tiles and charts in place
        start, samples = time.monotonic(), []
        updates, views, last = set(), set(), 0.0
        while True:
            elapsed = time.monotonic() - start
            probe = driver.execute_script(PROBE)
            updates.add(probe["updated"])
            views.add(probe["view"])
            if not samples or elapsed - last >= every or elapsed >= minutes * 60:
                samples.append({"minute": round(elapsed / 60, 1), "heap": probe["heap"],
                                "nodes": probe["nodes"]})  # fmt: skip
                last = elapsed
                print(samples[-1], flush=True)
            if elapsed >= minutes * 60:
                break
            time.sleep(min(refresh, 5))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        return {"samples": samples, "updates": len(updates), "views": sorted(views),
                "errors": len(errors)}  # fmt: skip
    finally:
        driver.quit()


# --- first render and bytes per view -------------------------------------------------------

# Injected before any page script (with SETTLED_JS): records, in ms since navigation start, the
# first frame with the map attached, the first with the figures in (the update stamp says 更新于
# and every chart of the view is drawn), and the first of 150 ms in which the view's layers are
# all on the map with every tile drawn.
RENDER_PROBE = (
    SETTLED_JS
    + """
window.__bench = {attached: null, figures: null, drawn: null, since: null};
(function poll() {
  const b = window.__bench, now = performance.now();
  const o = window.onemap && window.onemap.layers;
  if (b.attached === null && o && o.map()) { b.attached = now; }
  const u = document.getElementById("bs-updated");
  const charts = document.querySelectorAll(".bs-right .js-plotly-plot .plot-container").length;
  if (b.figures === null && u && u.textContent.indexOf("更新于") === 0 && charts >= %d) {
    b.figures = now;
  }
  if (b.drawn === null) {
    if (window.__benchSettled(%s)) {
      if (b.since === null) { b.since = now; }
      if (now - b.since >= 150) { b.drawn = b.since; }
    } else { b.since = null; }
  }
  if (b.drawn === null || b.figures === null) { requestAnimationFrame(poll); }
})();
"""
)
# Every response of the document so far: [url, bytes as sent (headers + encoded body)].
RESPONSES = """
const nav = performance.getEntriesByType("navigation")[0];
return [[nav.name, nav.transferSize]].concat(performance.getEntriesByType("resource")
  .map(function (e) { return [e.name, e.transferSize]; }));
"""


def byte_kind(url: str) -> str:
    """What a response was: a vector tile, a Dash update (figures, layers) or the page itself."""
    if "/tiles/" in url:
        return "tiles"
    return "updates" if "/_dash-update-component" in url else "page"


def view_layers(view: bs.View, kiosk: User) -> str:
    """The layers the kiosk's map shows for a view, as the probe compares them."""
    return ",".join(sorted(wanted_layers(view, kiosk)["layers"]))


def cold_view(base: str, kiosk: User, password: str, view: bs.View, size) -> dict:
    """One cold load of a pinned view in a new profile: timings (ms) and bytes by kind."""
    probe = RENDER_PROBE % (len(view.charts), json.dumps(view_layers(view, kiosk)))
    b = Browser(*size, probe=probe)
    try:
        b.sign_in(base, kiosk.username, password)
        b.driver.get(f"{base}/bigscreen?view={view.id}&refresh=3600")
        marks = b.wait(lambda: b.js("const b = window.__bench;"
                                    "return b.drawn !== null && b.figures !== null && b;"),
                       300, f"view {view.id}")  # fmt: skip
        sent, tiles = defaultdict(int), 0
        for url, sent_bytes in b.js(RESPONSES):
            sent[byte_kind(url)] += sent_bytes
            tiles += byte_kind(url) == "tiles"
        return {"view": view.id, "title": view.title, "size": f"{size[0]}×{size[1]}",
                "attached": marks["attached"], "figures": marks["figures"],
                "drawn": marks["drawn"], "complete": max(marks["figures"], marks["drawn"]),
                "tile_requests": tiles, **sent}  # fmt: skip
    finally:
        b.close()


def render_runs(base: str, kiosk: User, password: str, views, rounds: int) -> list[dict]:
    """`rounds` cold loads of every view at full HD, then one of each at 4K."""
    runs = []
    plan = [(r, SIZES[0]) for r in range(1, rounds + 1)] + [(rounds + 1, SIZES[1])]
    for round_, size in plan:
        for view in views:
            runs.append({"round": round_, **cold_view(base, kiosk, password, view, size)})
            r = runs[-1]
            print(f"round {round_} {r['size']} {view.id}: figures {r['figures']:.0f} ms, layers "
                  f"{r['drawn']:.0f} ms, tiles {r['tiles'] / 1e3:.0f} kB", flush=True)  # fmt: skip
    return runs


def kb(n: float) -> str:
    """Bytes as kB (10^3), no decimals."""
    return f"{n / 1e3:,.0f}"


def render_report(runs: list[dict], args) -> str:
    """The markdown section of the render mode."""
    rows = ["| round | size | view | map attached ms | figures ms | layers drawn ms | "
            "**complete ms** | tile requests | tiles kB | Dash updates kB | page files kB |",
            "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in runs:
        rows.append(f"| {r['round']} | {r['size']} | {r['title']} ({r['view']}) | "
                    f"{r['attached']:.0f} | {r['figures']:.0f} | {r['drawn']:.0f} | "
                    f"**{r['complete']:.0f}** | {r['tile_requests']} | {kb(r['tiles'])} | "
                    f"{kb(r['updates'])} | {kb(r['page'])} |")  # fmt: skip
    hd = [r for r in runs if r["size"] == "1920×1080"]
    warm = [r for r in hd if r["round"] > 1]
    uhd = [r for r in runs if r["size"] == "3840×2160"]
    complete = [r["complete"] for r in warm] or [r["complete"] for r in hd]
    worst_tiles = max(hd, key=lambda r: r["tiles"])
    worst_uhd = max(uhd, key=lambda r: r["tiles"])
    worst_view = max(hd, key=lambda r: r["tiles"] + r["updates"])
    met = max(complete) < RENDER_TARGET_MS
    return "\n".join([
        f"Measured {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {machine()}; Chromium "
        f"{chromium_version()}, headless; `{args.database}` demo, kiosk account, gunicorn with "
        f"ONEMAP_BIGSCREEN_DAY=latest. Command: `.venv/bin/python -m bench.bigscreen --mode "
        f"render --rounds {args.rounds}`.",
        "",
        "Each row is one cold load of one view pinned by `?view=` (no rotation; `refresh=3600`, "
        "so no refresh falls inside the measurement) in a new Chromium profile (empty HTTP "
        "cache: nothing reused from an earlier load), signed in as the kiosk. Times are from the "
        "navigation start of `GET /bigscreen`: *map attached* = the first frame with the Leaflet "
        "map and the layer manager; *figures* = the first frame in which the update stamp reads "
        "更新于 (the first snapshot of KPIs, feed and hotspot cells is in) and every chart of the "
        "view is drawn by plotly; *layers drawn* = the first frame of 150 ms in which the view's "
        "layers (with the district and road base layers) are all on the map and every tile "
        "covering the view is fetched and drawn; *complete* = the later of the two. Bytes are "
        "`PerformanceResourceTiming.transferSize` (headers + body as sent) of everything the "
        "load fetched until complete: vector tiles (= the bytes of that viewport), Dash "
        "updates (layout, the snapshot with its figures and hotspot cells), and the page's own "
        "files (HTML, JS, CSS, fonts: the same for every view). Round 1 meets a freshly started "
        "server (empty tile, analysis and snapshot caches); rounds 2 and later meet its caches "
        "warm, which is what a screen opened after another one sees.",
        "",
        *rows, "",
        f"* Complete (full HD, rounds {'2+' if warm else '1'}): p50 "
        f"{percentile(complete, 50):,.0f} ms, max {max(complete):,.0f} ms over {len(complete)} "
        f"loads — {'within' if met else '**over**'} the map page's {RENDER_TARGET_MS:,} ms "
        f"target (the big screen has no target of its own); round 1, cold server: max "
        f"{max(r['complete'] for r in hd if r['round'] == 1):,.0f} ms.",
        f"* Bytes per viewport (tiles): max {kb(worst_tiles['tiles'])} kB at full HD "
        f"({worst_tiles['title']}), {kb(worst_uhd['tiles'])} kB at 3840×2160 "
        f"({worst_uhd['title']}); with the Dash updates the heaviest view is "
        f"{worst_view['title']} at {kb(worst_view['tiles'] + worst_view['updates'])} kB; the "
        f"page's own files are {kb(max(r['page'] for r in hd))} kB once.",
    ])  # fmt: skip


def report(result: dict, minutes: float, refresh: int, rotate: int) -> str:
    """The markdown section."""
    first, last = result["samples"][0], result["samples"][-1]
    rows = "\n".join(f"| {s['minute']} | {s['heap'] / 1e6:.1f} | {s['nodes']} |"
                     for s in result["samples"])  # fmt: skip
    growth = (last["heap"] - first["heap"]) / first["heap"] * 100
    return (
        f"Measured {datetime.now():%Y-%m-%d} on {machine()}; `city` demo, kiosk account, "
        f"{WIDTH}×{HEIGHT}, refresh every {refresh} s, rotation every {rotate} s, "
        f"{minutes:g} minutes, from 30 s after the first figures; JS heap after a forced garbage "
        f"collection.\n\n"
        f"| minute | JS heap (MB) | DOM nodes |\n| ---: | ---: | ---: |\n{rows}\n\n"
        f"Heap {first['heap'] / 1e6:.1f} → {last['heap'] / 1e6:.1f} MB ({growth:+.1f} %), "
        f"DOM nodes {first['nodes']} → {last['nodes']}; {result['updates']} distinct update "
        f"stamps seen, views shown: {'、'.join(result['views'])}; console errors: "
        f"{result['errors']}.\n"
    )


def main() -> None:
    """Parse arguments, run the chosen mode, write its section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("soak", "render"), default="soak")
    parser.add_argument("--rounds", type=int, default=3, help="render: full-HD rounds of views")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--refresh", type=int, default=2)
    parser.add_argument("--rotate", type=int, default=10)
    parser.add_argument("--every", type=float, default=SAMPLE_EVERY_S, help="seconds per sample")
    parser.add_argument("--json", help="render: also write every run to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="print only (diagnostics)")
    args = parser.parse_args()
    url = Settings().sqlalchemy_url()
    engine = make_engine(url)
    args.database = engine.url.database
    name, password = f"bench_kiosk_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    with engine.begin() as conn:
        kiosk = accounts.add_user(conn, name, "kiosk", password, display_name="大屏测试（临时）")
    try:
        with Server(url, ONEMAP_BIGSCREEN_DAY="latest") as server:
            if args.mode == "render":
                runs = render_runs(server.base, kiosk, password, screen_views(Settings()),
                                   args.rounds)  # fmt: skip
            else:
                result = soak(server.base, name, password, args.minutes, args.refresh,
                              args.rotate, args.every)  # fmt: skip
    finally:
        drop_user(engine, name)
    if args.mode == "render":
        markdown, key, heading = (render_report(runs, args), "bigscreen-render",
                                  "Big screen first render and bytes per view "
                                  "(`python -m bench.bigscreen --mode render`)")  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps(runs, ensure_ascii=False), "utf-8")
    else:
        markdown, key, heading = (report(result, args.minutes, args.refresh, args.rotate),
                                  "bigscreen", "Big screen soak (`python -m bench.bigscreen`)")  # fmt: skip
    print(markdown)
    if not args.no_write:
        write_section(key, heading, markdown)


if __name__ == "__main__":
    main()
