// The plan page's map (Leaflet): the day's stops numbered in walking order, the route
// between them and the grids outlined. Its data is the page's JSON block
// (#route-data), read as text; addresses reach the map as text, never as HTML.
(function () {
  'use strict';
  var el = document.getElementById('route-data');
  if (!el || !window.L) return;
  var route = JSON.parse(el.textContent);
  if (!(route.points.length || route.grids.length)) return;
  function text(s) {
    var span = document.createElement('span');
    span.textContent = s;
    return span;
  }
  function escaped(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  var m = L.map('map');
  if (route.tiles) {
    // Leaflet shows an attribution as HTML: the operator's text is escaped first.
    L.tileLayer(route.tiles, { attribution: escaped(route.attribution || ''), maxZoom: 19 }).addTo(m);
  }
  var b = L.latLngBounds([]);
  route.grids.forEach(function (r) {
    L.polygon(r, { color: '#6e7781', weight: 1, fill: false, dashArray: '4' }).addTo(m);
    b.extend(r);
  });
  if (route.points.length) {
    L.polyline(route.points, { color: '#0b5cab' }).addTo(m);
    b = L.latLngBounds(route.points);
  }
  route.points.forEach(function (p, i) {
    L.circleMarker(p, { radius: 7 }).bindTooltip(text((i + 1) + '. ' + route.labels[i])).addTo(m);
  });
  m.fitBounds(b, { padding: [20, 20] });
})();
