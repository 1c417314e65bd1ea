"""Big-screen soak: /bigscreen in headless Chromium for half an hour at a short interval.

    .venv/bin/python -m bench.bigscreen [--minutes 30] [--refresh 2] [--rotate 10]

Reads the default project database (the `city` demo; nothing is written but one throw-away kiosk
account, deleted at the end, and the screen's daily record of figures). Starts `python app.py`
(gunicorn) with ONEMAP_BIGSCREEN_DAY=latest (the demo's data end before today), signs in as the
kiosk in Debian's headless Chromium at 1920×1080, and opens /bigscreen refreshing every
`--refresh` s and rotating every `--rotate` s. It records the JS heap (after a forced garbage
collection) and the DOM node count at the start, every five minutes and at the end, and counts
refreshes and rotations seen. Writes the figures to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import secrets
import time
from datetime import datetime

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from auth import accounts
from bench.common import CHROMIUM_FLAGS, Server, drop_user, write_section
from bench.tiles import machine
from geodata.db import make_engine
from settings import Settings

WIDTH, HEIGHT = 1920, 1080
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
    """Parse arguments, run the soak, write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--refresh", type=int, default=2)
    parser.add_argument("--rotate", type=int, default=10)
    parser.add_argument("--every", type=float, default=SAMPLE_EVERY_S, help="seconds per sample")
    parser.add_argument("--no-write", action="store_true", help="print only (diagnostics)")
    args = parser.parse_args()
    url = Settings().sqlalchemy_url()
    engine = make_engine(url)
    name, password = f"bench_kiosk_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    with engine.begin() as conn:
        accounts.add_user(conn, name, "kiosk", password, display_name="大屏浸泡测试（临时）")
    try:
        with Server(url, ONEMAP_BIGSCREEN_DAY="latest") as server:
            result = soak(server.base, name, password, args.minutes, args.refresh, args.rotate,
                          args.every)  # fmt: skip
    finally:
        drop_user(engine, name)
    markdown = report(result, args.minutes, args.refresh, args.rotate)
    print(markdown)
    if not args.no_write:
        write_section("bigscreen", "Big screen soak (`python -m bench.bigscreen`)", markdown)


if __name__ == "__main__":
    main()
