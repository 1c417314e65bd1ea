/* The 停车分析 panel in the browser (callbacks/parking_panel.py).

   运行 fetches the chosen day once (pk-day-store: heat points and lot occupancies at every
   moment); stepping the slider or playing picks a frame here, without a request. The pressure
   heat is ONE L.heatLayer on the map, updated in place with setLatLngs. "Where can I park" arms a
   one-shot pick: the next click on the map is caught before Leaflet sees it (so the side panel's
   own map click does not switch tabs) and written to pk-origin with dash_clientside.set_props. */
window.onemap = window.onemap || {};
(function (ns) {
  "use strict";
  const st = { heat: null, draws: 0, picking: false, picks: 0 };

  function theMap() {
    return ns.layers && ns.layers.map ? ns.layers.map() : null;
  }

  function heatLayer(map) {
    if (!st.heat) {
      st.heat = L.heatLayer([], {
        radius: 22, blur: 18, max: 1, minOpacity: 0.3,
        gradient: { 0.2: "#2c7bb6", 0.4: "#abd9e9", 0.6: "#ffffbf", 0.8: "#fdae61", 1: "#d7191c" }
      });
    }
    if (!map.hasLayer(st.heat)) { st.heat.addTo(map); }
    return st.heat;
  }

  function levelOf(p) {
    if (p.occupied === null || p.occupied === undefined) { return "无数据"; }
    const share = p.occupied / p.capacity;
    return share >= p.full ? "紧张" : share >= p.busy ? "较满" : "空闲";
  }

  ns.parking = {
    /* pointToLayer of the lots layer: a circle coloured by the occupancy level at the moment. */
    lotMarker: function (feature, latlng) {
      const p = feature.properties;
      return L.circleMarker(latlng, {
        radius: 4 + Math.min(6, Math.sqrt(p.capacity) / 4), color: "#ffffff", weight: 1,
        fillColor: p.colours[levelOf(p)] || "#9e9e9e", fillOpacity: 0.9
      });
    },
    bindLotTooltip: function (feature, layer) {
      const p = feature.properties;
      const e = ns.escapeHtml;
      const now = p.occupied === null || p.occupied === undefined
        ? "该时刻前一小时无读数"
        : "占用 " + p.occupied + " / " + p.capacity + "（" +
          Math.round(100 * p.occupied / p.capacity) + "%）";
      layer.bindTooltip(e(p.name || p.code) + "<br>" + e(p.code) + "<br>" + now, { sticky: true });
    },
    /* For tests and diagnostics. */
    status: function () {
      return { points: st.heat ? st.heat._latlngs.length : 0, draws: st.draws,
               onMap: !!(st.heat && theMap() && theMap().hasLayer(st.heat)),
               picking: st.picking, picks: st.picks };
    },
    heatLayer: function () { return st.heat; }
  };

  function onPick(ev) {
    const map = theMap();
    if (!st.picking || !map) { return; }
    ev.stopPropagation();
    ev.preventDefault();
    st.picking = false;
    st.picks += 1;
    map.getContainer().style.cursor = "";
    map.getContainer().removeEventListener("click", onPick, true);
    const ll = map.mouseEventToLatLng(ev);
    window.dash_clientside.set_props("pk-origin", { data: { lat: ll.lat, lng: ll.lng, n: st.picks } });
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.onemap_parking = {
    /* The heat points, lots and caption of moment `index` of the day's frames. */
    frame: function (index, day) {
      if (!day || !day.moments || !day.moments.length) {
        return [[], null, ""];
      }
      const i = Math.max(0, Math.min(day.moments.length - 1, Number(index) || 0));
      const t = day.totals[i];
      const lots = day.lots;
      const features = lots.code.map(function (code, k) {
        return { type: "Feature", geometry: { type: "Point", coordinates: [lots.lon[k], lots.lat[k]] },
                 properties: { code: code, name: lots.name[k], capacity: lots.capacity[k],
                               occupied: lots.occupied[k][i], busy: day.busy, full: day.full,
                               colours: day.colours } };
      });
      const share = t[1] > 0 ? Math.round(1000 * t[0] / t[1]) / 10 + "%" : "—";
      const caption = day.day + " " + day.moments[i] + "：占用 " + t[0] + " / " + t[1] +
        " 个泊位（" + share + "），" + t[2] + " / " + t[3] + " 个停车场有读数";
      return [day.heat[i], { type: "FeatureCollection", features: features }, caption];
    },
    /* Draw the points [lat, lon, weight] on the one parking heat layer (created once). */
    drawHeat: function (points) {
      const map = theMap();
      if (!map || typeof L.heatLayer !== "function") {
        return window.dash_clientside.no_update;
      }
      heatLayer(map).setLatLngs(points || []);
      st.draws += 1;
      return st.draws;
    },
    togglePlay: function (n, disabled) {
      return disabled ? [false, "⏸ 暂停"] : [true, "▶ 播放"];
    },
    /* The next moment of the day (back to the first after the last). */
    advance: function (n, value, max) {
      const top = Number(max) || 0;
      const v = Number(value) || 0;
      return v >= top ? 0 : v + 1;
    },
    armPick: function () {
      const map = theMap();
      if (!map) { return "地图尚未就绪"; }
      if (!st.picking) {
        st.picking = true;
        map.getContainer().addEventListener("click", onPick, true);
        map.getContainer().style.cursor = "crosshair";
      }
      return "请在地图上点击一个位置";
    }
  };
}(window.onemap));
