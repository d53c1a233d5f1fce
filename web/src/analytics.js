// The analyst's run page: the run's cells as H3 hexagons on the city map, coloured by their Gi* class, and an
// hour slider that shows the demand of one local hour instead (shaded by count). Works without base tiles.
import { cityMap, L } from "./_citymap.js";

const COLOURS = {
  hot_99: "#b91c1c",
  hot_95: "#ef4444",
  hot_90: "#fca5a5",
  not_significant: "#e5e7eb",
  cold_90: "#93c5fd",
  cold_95: "#3b82f6",
  cold_99: "#1d4ed8",
};

const el = document.getElementById("analytics-map");
if (el) {
  const city = cityMap(el);
  window.smartcity = city;
  const data = el.dataset;
  const layer = L.layerGroup().addTo(city.map);
  const slider = document.getElementById("hour");
  const shown = document.getElementById("hour-shown");
  let cells = null;
  let hourly = null;

  const hexagon = (feature, style, label) => {
    const ring = feature.geometry.coordinates[0].map(([lon, lat]) => [lat, lon]);
    const shape = L.polygon(ring, { weight: 1, color: "#334155", fillOpacity: 0.7, ...style });
    shape.bindTooltip(label);
    shape.on("add", () => {
      const path = shape.getElement();
      if (path) {
        path.setAttribute("data-cell", feature.properties.cell);
        path.setAttribute("data-class", feature.properties.significance || "");
      }
    });
    return shape;
  };

  const showClasses = () => {
    layer.clearLayers();
    const bounds = [];
    for (const f of cells.features) {
      const p = f.properties;
      const shape = hexagon(f, { fillColor: COLOURS[p.significance] || "#e5e7eb" }, `${p.count} · z ${p.z.toFixed(2)}`);
      layer.addLayer(shape);
      bounds.push(shape.getBounds());
    }
    if (bounds.length) {
      city.map.fitBounds(bounds.reduce((a, b) => a.extend(b), L.latLngBounds(bounds[0].getSouthWest(), bounds[0].getNorthEast())));
    }
    el.dataset.state = "ready";
  };

  const showHour = (hour) => {
    const byCell = new Map(hourly.filter((h) => h.hour === hour).map((h) => [h.cell, h.count]));
    const top = Math.max(1, ...byCell.values());
    layer.clearLayers();
    for (const f of cells.features) {
      const count = byCell.get(f.properties.cell);
      if (count === undefined) continue;
      const shade = 0.15 + 0.8 * (count / top);
      layer.addLayer(hexagon(f, { fillColor: "#7c3aed", fillOpacity: shade }, `${hour}: ${count} ${slider.dataset.count}`));
    }
  };

  fetch(data.cells, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((body) => {
      cells = body;
      showClasses();
    });

  if (slider) {
    const hours = JSON.parse(slider.dataset.hours);
    slider.addEventListener("input", async () => {
      const i = Number(slider.value);
      if (i < 0) {
        shown.textContent = slider.dataset.all;
        showClasses();
        return;
      }
      if (!hourly) hourly = await (await fetch(data.hourly, { credentials: "same-origin" })).json();
      shown.textContent = `${hours[i]}:00`;
      showHour(hours[i]);
    });
  }
}
