/* Vector-tile layers of the one map, drawn with Leaflet.VectorGrid on canvas.

   dash-leaflet has no vector-tile layer, so a dl.LayerGroup calls onemap.layers.attach from its
   "add" event (the map's own load event fires before handlers subscribe). A clientside callback
   passes the wanted state ({registry, layers: {id: {opacity, filters}}, area}) to
   onemap.layers.sync, and feature clicks go back to Dash with dash_clientside.set_props. */
window.onemap = window.onemap || {};
(function (ns) {
  "use strict";
  const st = { map: null, pane: null, active: {}, wanted: null, registry: {}, tilesLoaded: 0,
               heat: {}, heatRefused: false, heatLoads: 0 };
  /* A tile over the server's feature cap holds counts per cell marked `aggregated` instead of its
     objects (layers/sql.py feature_tile_sql); such tiles are noted on the map. */
  const AGGREGATED = "aggregated";

  function colourFor(layer, props) {
    const s = layer.style;
    if (s.by && props[s.by] !== undefined) {
      const v = String(props[s.by]);
      const hit = layer.legend.find(function (e) { return e.value === v; });
      if (hit) { return hit.color; }
    }
    return s.fill || s.color;
  }

  function styleFn(layer) {
    return function (props, zoom) {
      const c = colourFor(layer, props);
      if (props.count !== undefined) {  // low-zoom aggregate: bigger circles for more objects
        // cells are 1/64 of a tile (4 px on screen): small dots read as a density surface
        return { radius: Math.min(6, 1.5 + Math.log(1 + props.count)), fill: true,
                 fillColor: layer.style.color, fillOpacity: 0.6, stroke: false };
      }
      if (layer.geometry === "point") {
        return { radius: layer.style.radius, fill: true, fillColor: c, fillOpacity: 0.9,
                 color: "#ffffff", weight: 0.8 };
      }
      if (layer.geometry === "line") {
        return { color: c, weight: layer.style.weight, opacity: 0.9 };
      }
      return { fill: true, fillColor: layer.style.fill || c, fillOpacity: layer.style.fill_opacity,
               color: layer.style.color, weight: layer.style.weight };
    };
  }

  function tileUrl(layer, cfg) {
    const q = Object.assign({}, cfg.filters || {});
    const area = st.wanted && st.wanted.area;
    if (area && layer.follows_area) { q.area = area; }  // the registry says (base layers: no)
    const parts = Object.keys(q).sort().filter(function (k) { return q[k] !== "" && q[k] !== null; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(q[k]); });
    return "/tiles/" + layer.id + "/{z}/{x}/{y}.pbf" + (parts.length ? "?" + parts.join("&") : "");
  }

  /* A layer whose registry entry has overview "heat" (the cases) is drawn below its detail zoom as
     a heat map of weighted points aggregated in PostGIS for the view (/api/analytics/heat), and as
     vector tiles from its detail zoom up. The layer's filters become the heat's parameters; a
     filter the heat cannot express (several values, other fields), or a role without analytics,
     keeps the counts-per-cell look instead. */
  const HEAT_FILTERS = { status: "status", source: "source", event_class_code: "class",
                         component_class_code: "class", reported_at_from: "from",
                         reported_at_to: "to" };
  const HEAT_SPAN_DAYS = 3650;  // no date filter: the last ten years (analytics/case_filters.py)

  function heatParams(layer, cfg) {
    if (layer.overview !== "heat" || st.heatRefused) { return null; }
    const f = cfg.filters || {};
    const out = {};
    const keys = Object.keys(f);
    for (let i = 0; i < keys.length; i += 1) {
      const name = HEAT_FILTERS[keys[i]];
      const value = String(f[keys[i]]);
      if (!name || value.indexOf(",") >= 0 || out[name] !== undefined) { return null; }
      out[name] = value;
    }
    if (!out.from) {
      const to = out.to ? new Date(out.to + "T00:00:00Z") : new Date();
      out.from = new Date(to.getTime() - (HEAT_SPAN_DAYS - 1) * 86400000).toISOString().slice(0, 10);
    }
    const area = st.wanted && st.wanted.area;
    if (area && layer.follows_area) { out.area = area; }
    return out;
  }

  function heatKey(params) {
    return params ? JSON.stringify(params) : "";
  }

  function refreshHeat() {
    if (!st.map) { return; }
    const z = st.map.getZoom();
    const b = st.map.getBounds();
    Object.keys(st.heat).forEach(function (id) {
      const h = st.heat[id];
      const layer = st.registry[id];
      if (z >= layer.detail_zoom) {
        h.ticket = (h.ticket || 0) + 1;  // a fetch still under way must not repaint it
        h.layer.setLatLngs([]);
        return;
      }
      const q = Object.assign({}, h.params, { zoom: z, bbox: [
        Math.max(-180, b.getWest()), Math.max(-90, b.getSouth()),
        Math.min(180, b.getEast()), Math.min(90, b.getNorth())].map(function (v) {
          return v.toFixed(6); }).join(",") });
      const qs = Object.keys(q).sort().map(function (k) {
        return encodeURIComponent(k) + "=" + encodeURIComponent(q[k]); }).join("&");
      const ticket = (h.ticket = (h.ticket || 0) + 1);
      fetch("/api/analytics/heat?" + qs).then(function (r) {
        if (r.status === 403) { st.heatRefused = true; apply(); return null; }
        return r.ok ? r.json() : null;
      }).then(function (body) {
        if (!body || ticket !== h.ticket || !st.heat[id]) { return; }
        const max = Math.max(1, body.result.max);
        h.layer.setLatLngs(body.result.points.map(function (p) {
          return [p[0], p[1], Math.sqrt(p[2] / max)]; }));
        h.total = body.result.total;
        st.heatLoads += 1;
        updateNote();
      }).catch(function () { /* the next move retries */ });
    });
  }

  function syncHeat(wanted) {
    Object.keys(st.heat).forEach(function (id) {
      const cfg = wanted[id];
      const params = cfg && st.registry[id] ? heatParams(st.registry[id], cfg) : null;
      if (!params || heatKey(params) !== st.heat[id].key) {
        st.map.removeLayer(st.heat[id].layer);
        delete st.heat[id];
      }
    });
    Object.keys(wanted).forEach(function (id) {
      const layer = st.registry[id];
      const params = layer ? heatParams(layer, wanted[id]) : null;
      if (!params || st.heat[id]) { return; }
      st.heat[id] = { key: heatKey(params), params: params, layer: L.heatLayer([], {
        radius: 18, blur: 16, max: 1, minOpacity: 0.25, maxZoom: layer.detail_zoom,
        gradient: { 0.2: "#2c7bb6", 0.4: "#abd9e9", 0.6: "#ffffbf", 0.8: "#fdae61", 1: "#d7191c" }
      }).addTo(st.map) };
    });
    refreshHeat();
  }

  function makeLayer(layer, cfg) {
    const styles = {};
    styles[layer.id] = styleFn(layer);
    const vg = L.vectorGrid.protobuf(tileUrl(layer, cfg), {
      rendererFactory: L.canvas.tile,
      vectorTileLayerStyles: styles,
      // Clicks are identified on the server (geodata/identify.py): VectorGrid's canvas hit test
      // calls L.DomEvent.fakeStop, which Leaflet >= 1.8 no longer has.
      interactive: false,
      // keeps each tile's features by id (dropped on tileunload): how a tile is known aggregated
      getFeatureId: function (f) { return f.properties.aggregated ? AGGREGATED : f.id; },
      minZoom: heatParams(layer, cfg) ? Math.max(layer.min_zoom, layer.detail_zoom) : layer.min_zoom,
      maxNativeZoom: 18, maxZoom: 20,
      pane: layer.geometry === "polygon" ? "overlayPane" : "markerPane"
    });
    vg.on("load", function () { st.tilesLoaded += 1; });
    vg.on("tileload tileunload load", updateNote);
    vg.onemapUrl = layerKey(layer, cfg);
    return vg;
  }

  /* What identifies a drawn vector layer: its tile URL, and whether the heat look replaces it at
     low zoom. */
  function layerKey(layer, cfg) {
    return tileUrl(layer, cfg) + (heatParams(layer, cfg) ? "#heat" : "");
  }

  function apply() {
    if (!st.map || !st.wanted) { return; }
    const wanted = st.wanted.layers || {};
    Object.keys(st.active).forEach(function (id) {
      const cfg = wanted[id];
      const vg = st.active[id];
      if (!cfg || !st.registry[id] || vg.onemapUrl !== layerKey(st.registry[id], cfg)) {
        st.map.removeLayer(vg);
        delete st.active[id];
      }
    });
    updateNote();
    Object.keys(wanted).forEach(function (id) {
      const layer = st.registry[id];
      if (!layer) { return; }
      if (!st.active[id]) {
        st.active[id] = makeLayer(layer, wanted[id]);
        st.active[id].addTo(st.map);
      }
      st.active[id].setOpacity(wanted[id].opacity === undefined ? 1 : wanted[id].opacity);
    });
    syncHeat(wanted);
  }

  /* Road names of the offline basemap, fetched for the view from z15 on. */
  function refreshLabels() {
    if (!st.labels) { st.labels = L.layerGroup().addTo(st.map); }
    const z = st.map.getZoom();
    const b = st.map.getBounds();
    const showRoads = st.wanted && st.wanted.layers && st.wanted.layers.road;
    if (z < 15 || !showRoads) { st.labels.clearLayers(); return; }
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) {
      return v.toFixed(6); }).join(",");
    const ticket = (st.labelTicket = (st.labelTicket || 0) + 1);
    fetch("/api/labels/road?bbox=" + bbox).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || ticket !== st.labelTicket) { return; }
        st.labels.clearLayers();
        body.labels.forEach(function (l) {
          L.tooltip({ permanent: true, direction: "center", className: "road-label",
                      interactive: false })
            .setLatLng([l.lat, l.lon]).setContent(escapeHtml(l.name)).addTo(st.labels);
        });
      }).catch(function () { /* labels are decoration: a failed fetch leaves none */ });
  }

  function escapeHtml(s) { return ns.escapeHtml(s); }  // assets/onemap.js (loaded first)

  /* Whether a current tile of the layer came as counts because it held too many objects. */
  function isAggregated(vg) {
    const tiles = vg._tiles || {};
    return Object.keys(tiles).some(function (key) {
      const r = tiles[key].current && vg._vectorTiles && vg._vectorTiles[key];
      return !!(r && r._features && r._features[AGGREGATED]);
    });
  }

  function aggregatedIds() {
    return Object.keys(st.active).filter(function (id) { return isAggregated(st.active[id]); });
  }

  /* The map's note naming the layers shown as counts somewhere in the view (hidden when none). */
  function updateNote() {
    if (!st.map) { return; }
    if (!st.note) {
      st.note = L.control({ position: "bottomleft" });
      st.note.onAdd = function () {
        const div = L.DomUtil.create("div", "onemap-aggregate-note");
        Object.assign(div.style, { background: "rgba(255, 255, 255, 0.9)", padding: "2px 6px",
                                   borderRadius: "3px", fontSize: "12px", color: "#5d4037" });
        return div;
      };
      st.note.addTo(st.map);
    }
    const titles = aggregatedIds().map(function (id) {
      return (st.registry[id] || {}).title || id;
    });
    const z = st.map.getZoom();
    const heat = Object.keys(st.heat).filter(function (id) {
      return z < st.registry[id].detail_zoom; }).map(function (id) {
      const h = st.heat[id];
      return st.registry[id].title + "热力（" + h.params.from + " 起" +
        (h.total === undefined ? "" : "，视野内 " + h.total.toLocaleString("zh-CN") + " 件") +
        "；放大至 " + st.registry[id].detail_zoom + " 级显示单个对象）";
    });
    const lines = (titles.length ? ["对象过多，部分区域按网格显示数量：" + titles.join("、")] : [])
      .concat(heat);
    const div = st.note.getContainer();
    div.textContent = lines.join("\n");
    div.style.whiteSpace = "pre-line";
    div.style.display = lines.length ? "" : "none";
    st.map.getContainer().classList.toggle("onemap-aggregated", titles.length > 0);
  }

  function applyView() {
    const v = st.view;
    if (!st.map || !v) { return; }
    st.view = null;
    if (v.bounds) {
      st.map.fitBounds(v.bounds, { padding: [20, 20], maxZoom: 17 });
    } else if (v.center) {
      st.map.setView(v.center, v.zoom || st.map.getZoom());
    }
  }

  ns.layers = {
    /* "add" handler of the host LayerGroup: remember the map, draw what is wanted. */
    attach: function (e) {
      st.map = e.target._map;
      st.map.on("moveend", refreshLabels);
      st.map.on("moveend", refreshHeat);
      st.map.on("zoomend", updateNote);
      apply();
      applyView();
      refreshLabels();
    },
    /* Move the map to {center, zoom} or {bounds} (kept until the map exists). */
    view: function (v) {
      st.view = v;
      applyView();
      return Date.now();
    },
    /* Clientside callback body: make the map show exactly `wanted`. */
    sync: function (wanted, registry) {
      if (registry) {
        st.registry = {};
        registry.forEach(function (l) { st.registry[l.id] = l; });
      }
      st.wanted = wanted;
      apply();
      if (st.map) { refreshLabels(); }
      return Object.keys((wanted && wanted.layers) || {}).length;
    },
    /* A promise of the time at which the map is attached and no wanted layer has tiles still
       loading (at the latest after `ms`: a tile that never answers must not hold up the rest). */
    drawn: function (ms) {
      const began = Date.now();
      return new Promise(function (resolve) {
        (function check() {
          const loading = !st.map || Object.keys(st.active).some(function (id) {
            return st.active[id].isLoading();
          });
          if (!loading || Date.now() - began > ms) { resolve(Date.now()); return; }
          setTimeout(check, 50);
        }());
      });
    },
    /* For tests and diagnostics. */
    status: function () {
      const out = {};
      Object.keys(st.active).forEach(function (id) {
        out[id] = { url: st.active[id].onemapUrl,
                    tiles: Object.keys(st.active[id]._tiles || {}).length };
      });
      const heat = {};
      Object.keys(st.heat).forEach(function (id) {
        heat[id] = { params: st.heat[id].params, points: st.heat[id].layer._latlngs.length,
                     total: st.heat[id].total };
      });
      return { attached: !!st.map, layers: out, loads: st.tilesLoaded, heat: heat,
               heatLoads: st.heatLoads, heatRefused: st.heatRefused,
               aggregated: aggregatedIds(),
               zoom: st.map ? st.map.getZoom() : null,
               center: st.map ? st.map.getCenter() : null };
    },
    /* The tile canvases of an active layer (tests and diagnostics). */
    canvases: function (id) {
      const tiles = (st.active[id] && st.active[id]._tiles) || {};
      return Object.keys(tiles).map(function (k) { return tiles[k].el; });
    },
    map: function () { return st.map; }
  };
}(window.onemap));

const DRAWN_WAIT_MS = 5000;
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.onemap = {
  syncLayers: function (wanted, registry) { return window.onemap.layers.sync(wanted, registry); },
  applyView: function (v) { return v ? window.onemap.layers.view(v) : null; },
  /* Once per page: resolves when the first view's tiles are drawn, so that the side panel's
     statistics and lists are asked for only then and the first tiles have the server to
     themselves. */
  whenDrawn: function (_synced, drawn) {
    return drawn ? window.dash_clientside.no_update : window.onemap.layers.drawn(DRAWN_WAIT_MS);
  }
};
