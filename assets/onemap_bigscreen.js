/* The big screen (/bigscreen, callbacks/bigscreen.py): its clock, the layer sync of its map, the
   chart scale, and the click-free zoom to a new alarm. Everything is updated in place: one clock
   timer, one pulse marker reused, no layer re-created per refresh. */
window.onemap = window.onemap || {};
(function (ns) {
  "use strict";
  const FLY_ZOOM = 16;
  const FLY_HOLD_MS = 8000;
  const st = { clock: null, home: null, timer: null, marker: null, flights: 0, last: null,
               seen: null, seenAt: null };

  function tick() {
    const el = document.getElementById("bs-clock");
    if (!el) { return; }
    el.textContent = new Date().toLocaleString("zh-CN", {
      timeZone: "Asia/Shanghai", hour12: false, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", weekday: "short" });
  }

  /* The watchdog: when no refresh has come back for 2.5 intervals (at least 8 s more than one),
     say so with the time of the last good update; the next good refresh takes it away. A
     refresh that reached the server but not the database shows the server's own banner. */
  function watch() {
    const updated = document.getElementById("bs-updated");
    const stale = document.getElementById("bs-stale");
    const server = document.getElementById("bs-banner");
    if (!updated || !stale) { return; }
    const now = Date.now();
    if (updated.textContent !== st.seen) { st.seen = updated.textContent; st.seenAt = now; }
    const every = Number(stale.dataset.refresh || 30) * 1000;
    const late = now - (st.seenAt || now) > Math.max(2.5 * every, every + 8000);
    const serverSays = server && !server.classList.contains("bs-hidden");
    if (late && !serverSays) {
      stale.textContent = "数据延迟：与服务器或数据库的连接中断，大屏显示的是上次成功更新的数据（" +
        (st.seen && st.seen.indexOf("更新于") === 0 ? st.seen : "尚无成功更新") + "），恢复后自动更新";
    }
    stale.classList.toggle("bs-hidden", !late || serverSays);
  }

  function startClock() {
    if (st.clock === null) {
      st.clock = window.setInterval(function () { tick(); watch(); }, 1000);
    }
    tick();
  }

  function pulse(map, lat, lon, level) {
    if (!st.marker) {
      st.marker = L.marker([lat, lon], { interactive: false, keyboard: false,
        icon: L.divIcon({ className: "al-pulse bs-fly-pulse", iconSize: [28, 28] }) });
    }
    st.marker.setLatLng([lat, lon]);
    const colours = { "紧急": "#e53935", "严重": "#ff7043", "一般": "#ffca28", "提示": "#42a5f5" };
    st.marker.addTo(map);
    const el = st.marker.getElement();
    if (el) { el.style.setProperty("--al-colour", colours[level] || "#e53935"); }
  }

  function flyBack(map) {
    if (st.marker) { st.marker.remove(); }
    if (st.home) { map.flyTo(st.home.center, st.home.zoom, { duration: 1.2 }); }
    st.home = null;
    st.timer = null;
  }

  ns.bigscreen = {
    /* Fly to the newest alarm of a refresh for a few seconds, then back (not on first load). */
    fly: function (data) {
      const map = ns.layers && ns.layers.map();
      if (!map || !data || data.first || !data.items || !data.items.length) { return null; }
      const a = data.items[0];
      if (!st.home) { st.home = { center: map.getCenter(), zoom: map.getZoom() }; }
      if (st.timer) { window.clearTimeout(st.timer); }
      map.flyTo([a.lat, a.lon], FLY_ZOOM, { duration: 1.2 });
      pulse(map, a.lat, a.lon, a.level);
      st.flights += 1;
      st.last = a.key;
      st.timer = window.setTimeout(function () { flyBack(map); }, FLY_HOLD_MS);
      return st.flights;
    },
    /* For tests and the soak benchmark. */
    status: function () {
      return { flights: st.flights, last: st.last, flying: st.timer !== null,
               nodes: document.getElementsByTagName("*").length,
               heap: (performance.memory && performance.memory.usedJSHeapSize) || null };
    },
    startClock: startClock
  };
}(window.onemap));

window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.bigscreen = {
  syncLayers: function (wanted, registry) {
    window.onemap.bigscreen.startClock();
    return wanted ? window.onemap.layers.sync(wanted, registry) : null;
  },
  flyToAlarms: function (data) { return window.onemap.bigscreen.fly(data); },
  /* Chart type grows with the screen: 1 at 1920 px wide, 2 at 3840 px. */
  scale: function () { return Math.round((window.innerWidth / 1920) * 100) / 100; }
};
