// The air-quality map: the city map with every sensor as a dot coloured by its band and each district filled
// with its average band, both from /air/sensors.geojson, fetched again every `data-refresh` seconds (a
// periodic refresh: the levels come from the hourly roll-ups, which change every few minutes, not per reading).
import { cityMap, L } from "./_citymap.js";

const el = document.getElementById("air-map");
if (el) {
  const city = cityMap(el);
  window.smartcity = city;
  const data = el.dataset;
  const dots = L.layerGroup().addTo(city.map);
  const every = Math.max(15, Number(data.refresh) || 60) * 1000;

  const fmt = (v) => (v === null || v === undefined ? "–" : String(v));
  const show = (body) => {
    dots.clearLayers();
    for (const f of body.features || []) {
      const [lon, lat] = f.geometry.coordinates;
      const p = f.properties;
      const dot = L.circleMarker([lat, lon], {
        radius: 8,
        className: `air-dot band-${p.band}`,
        color: "#0f172a",
        weight: 1.5,
        fillColor: p.colour,
        fillOpacity: 0.9,
      });
      dot.bindTooltip(`${data.sensorLabel} ${p.serial}: ${p.band_name} · PM10 ${fmt(p.pm10)} · PM2.5 ${fmt(p.pm25)}`);
      dot.on("click", () => {
        window.location.href = p.url;
      });
      dot.on("add", () => {
        const path = dot.getElement();
        if (path) {
          path.setAttribute("data-serial", p.serial);
          path.setAttribute("data-band", p.band);
        }
      });
      dots.addLayer(dot);
    }
    const bands = new Map((body.districts || []).map((d) => [d.code, d]));
    city.ready.then(() => {
      city.districts.eachLayer((layer) => {
        const d = bands.get(layer.feature.properties.code);
        if (!d || d.band === "none") return;
        layer.setStyle({ fillColor: d.colour, fillOpacity: 0.25 });
        layer.getElement()?.setAttribute("data-band", d.band);
      });
    });
    el.dataset.sensorCount = String((body.features || []).length);
    el.dataset.refreshed = new Date().toISOString();
  };

  const load = () =>
    fetch(data.sensors, { headers: { Accept: "application/geo+json" }, cache: "no-store" })
      .then((r) => {
        if (!r.ok) throw new Error(`sensors: HTTP ${r.status}`);
        return r.json();
      })
      .then(show)
      .catch(() => {
        // Kept as they were: the next refresh tries again.
      });
  load();
  setInterval(() => {
    if (!document.hidden) load();
  }, every);
}
