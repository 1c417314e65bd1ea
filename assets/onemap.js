/* Functions that dash-leaflet props call, referenced from Python as
   dash_extensions.javascript.Namespace("onemap", "map")("<name>") -> window.onemap.map.<name>. */
window.onemap = window.onemap || {};
/* Text for Leaflet tooltips, which take HTML: names from the data must not become markup. */
window.onemap.escapeHtml = function (s) {
  return String(s).replace(/[&<>"']/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
  });
};
window.onemap.map = Object.assign({}, window.onemap.map, {
  /* A permanent, centred Chinese name label on an administrative area. */
  bindAreaLabel: function (feature, layer) {
    layer.bindTooltip(window.onemap.escapeHtml(feature.properties.name), {
      permanent: true, direction: "center", className: "area-label"
    });
  }
});
/* The case-analysis overlay (callbacks/case_panel.py): cells coloured by Gi* class or by
   emerging pattern, with a tooltip of their figures. */
window.onemap.caseColours = {
  hot_99: "#b2182b", hot_95: "#ef8a62", hot_90: "#fddbc7", cold_90: "#d1e5f0",
  cold_95: "#67a9cf", cold_99: "#2166ac", new: "#1b9e77", consecutive: "#66a61e",
  intensifying: "#b2182b", persistent: "#e7298a", diminishing: "#7570b3", sporadic: "#e6ab02",
  oscillating: "#a6761d", historical: "#666666"
};
Object.assign(window.onemap.map, {
  caseCellStyle: function (feature) {
    const p = feature.properties || {};
    const c = window.onemap.caseColours[p.hotspot_class || p.category] || "#cccccc";
    return { color: "#555555", weight: 0.4, fillColor: c, fillOpacity: 0.65 };
  },
  bindCaseCellTooltip: function (feature, layer) {
    const p = feature.properties || {};
    const e = window.onemap.escapeHtml;
    const lines = p.hotspot_class
      ? [e(p.hotspot_label), "网格 " + e(p.cell_id), "案件 " + p.count, "Gi* z = " + p.gi_z]
      : [e(p.category_label), "网格 " + e(p.cell_id), "案件 " + p.count,
         "热点时段 " + p.hot_steps, "趋势 z = " + p.trend_z];
    layer.bindTooltip(lines.join("<br>"), { sticky: true });
  }
});
/* The drainage overlay (callbacks/drainage_panel.py): traced pipes and wells, catchment areas,
   pipes with a quality issue, or pipes coloured by risk level. */
window.onemap.drainLevels = { "高": "#c62828", "中": "#f9a825", "低": "#2e7d32" };
Object.assign(window.onemap.map, {
  drainStyle: function (feature) {
    const p = feature.properties || {};
    if (p.level) {
      return { color: window.onemap.drainLevels[p.level] || "#888888", weight: 4, opacity: 0.9 };
    }
    if (p.check) { return { color: "#ef6c00", weight: 5, opacity: 0.9 }; }
    if (p.object === "pipe") {
      return { color: p.on_loop ? "#c62828" : "#1565c0", weight: 4, opacity: 0.9 };
    }
    return { color: "#00796b", weight: 1, fillColor: "#26a69a", fillOpacity: 0.35 };
  },
  drainPoint: function (feature, latlng) {
    const p = feature.properties || {};
    const outfall = p.object === "outfall";
    return L.circleMarker(latlng, { radius: outfall ? 7 : 4, color: "#ffffff", weight: 1,
      fillColor: outfall ? "#004d40" : (p.start ? "#c62828" : "#1565c0"), fillOpacity: 0.95 });
  },
  bindDrainTooltip: function (feature, layer) {
    const p = feature.properties || {};
    const e = window.onemap.escapeHtml;
    const parts = [e(p.code || p.name || "")];
    if (p.level) { parts.push("风险 " + p.score + "（" + e(p.level) + "）"); }
    if (p.check_label) { parts.push(e(p.check_label)); }
    if (p.distance_m !== undefined && p.distance_m !== null) {
      parts.push("距起点 " + Math.round(p.distance_m) + " m");
    }
    if (p.diameter_mm) { parts.push("管径 " + p.diameter_mm + " mm"); }
    layer.bindTooltip(parts.join("<br>"), { sticky: true });
  }
});
/* Clientside callbacks of the side panel (callbacks/side_panel.py): a value of the page copied
   into every lazily built tab that is mounted (one output per tab; none before any is opened). */
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.onemap_panel = {
  mirror: function (value) {
    return window.dash_clientside.callback_context.outputs_list.map(function () { return value; });
  }
};
