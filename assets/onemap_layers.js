/* Vector-tile layers of the one map, drawn with Leaflet.VectorGrid on canvas.

   dash-leaflet has no vector-tile layer, so a dl.LayerGroup calls onemap.layers.attach from its
   "add" event (the map's own load event fires before handlers subscribe). A clientside callback
   passes the wanted state ({registry, layers: {id: {opacity, filters}}, area}) to
   onemap.layers.sync, and feature clicks go back to Dash with dash_clientside.set_props. */
window.onemap = window.onemap || {};
(function (ns) {
  "use strict";
  const st = { map: null, pane: null, active: {}, wanted: null, registry: {}, tilesLoaded: 0 };
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
      minZoom: layer.min_zoom, maxNativeZoom: 18, maxZoom: 20,
      pane: layer.geometry === "polygon" ? "overlayPane" : "markerPane"
    });
    vg.on("load", function () { st.tilesLoaded += 1; });
    vg.on("tileload tileunload load", updateNote);
    vg.onemapUrl = tileUrl(layer, cfg);
    return vg;
  }

  function apply() {
    if (!st.map || !st.wanted) { return; }
    const wanted = st.wanted.layers || {};
    Object.keys(st.active).forEach(function (id) {
      const cfg = wanted[id];
      const vg = st.active[id];
      if (!cfg || !st.registry[id] || vg.onemapUrl !== tileUrl(st.registry[id], cfg)) {
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
    const div = st.note.getContainer();
    div.textContent = titles.length ? "对象过多，部分区域按网格显示数量：" + titles.join("、") : "";
    div.style.display = titles.length ? "" : "none";
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
    /* For tests and diagnostics. */
    status: function () {
      const out = {};
      Object.keys(st.active).forEach(function (id) {
        out[id] = { url: st.active[id].onemapUrl,
                    tiles: Object.keys(st.active[id]._tiles || {}).length };
      });
      return { attached: !!st.map, layers: out, loads: st.tilesLoaded,
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

window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.onemap = {
  syncLayers: function (wanted, registry) { return window.onemap.layers.sync(wanted, registry); },
  applyView: function (v) { return v ? window.onemap.layers.view(v) : null; }
};
