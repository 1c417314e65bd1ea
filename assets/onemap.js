/* Functions that dash-leaflet props call, referenced from Python as
   dash_extensions.javascript.Namespace("onemap", "map")("<name>") -> window.onemap.map.<name>. */
window.onemap = window.onemap || {};
window.onemap.map = Object.assign({}, window.onemap.map, {
  /* A permanent, centred Chinese name label on an administrative area. */
  bindAreaLabel: function (feature, layer) {
    layer.bindTooltip(feature.properties.name, {
      permanent: true, direction: "center", className: "area-label"
    });
  }
});
