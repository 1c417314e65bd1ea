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
