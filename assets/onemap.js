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
