// The map of reports and the map on a report's page (Leaflet from xstatic-leaflet).
"use strict";

var STATUS_COLOURS = { new: "#c0392b", ack: "#d68910", police: "#1f618d", closed: "#7f8c8d" };

function baseMap(element) {
  // maxZoom on the map itself: without tiles (a closed network) clustering needs it.
  var map = L.map(element, { zoomControl: true, maxZoom: 19 });
  if (element.dataset.tiles) {
    L.tileLayer(element.dataset.tiles, {
      maxZoom: 19, attribution: element.dataset.attribution || ""
    }).addTo(map);
  }
  return map;
}

function marker(lat, lon, status) {
  var colour = STATUS_COLOURS[status] || "#333333";
  return L.circleMarker([lat, lon], {
    radius: 9, color: "#ffffff", weight: 2, fillColor: colour, fillOpacity: 0.95,
    className: "marker status-" + status
  });
}

(function () {
  var element = document.getElementById("map");
  if (!element) { return; }
  var map = baseMap(element);
  map.setView([51.2, 7.0], 8);  // North Rhine-Westphalia until the markers are known
  var cluster = L.markerClusterGroup({ maxClusterRadius: 40 });
  map.addLayer(cluster);
  fetch(element.dataset.points, { credentials: "same-origin" })
    .then(function (answer) { return answer.ok ? answer.json() : []; })
    .then(function (points) {
      var bounds = [];
      points.forEach(function (point) {
        var item = marker(point.lat, point.lon, point.status);
        item.bindTooltip(point.label);
        item.on("click", function () { window.location.href = point.url; });
        cluster.addLayer(item);
        bounds.push([point.lat, point.lon]);
      });
      // Without animation: the markers are in place when the count below is set.
      if (bounds.length === 1) { map.setView(bounds[0], 13, { animate: false }); }
      else if (bounds.length > 1) { map.fitBounds(bounds, { padding: [30, 30], animate: false }); }
      element.dataset.markers = String(points.length);
    });
})();

(function () {
  var element = document.getElementById("report-map");
  if (!element) { return; }
  var lat = Number(element.dataset.lat), lon = Number(element.dataset.lon);
  var map = baseMap(element);
  map.setView([lat, lon], 14);
  marker(lat, lon, element.dataset.status).addTo(map);
  element.dataset.markers = "1";
})();
