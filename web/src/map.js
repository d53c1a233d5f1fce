import { cityMap, L } from "./_citymap.js";

const el = document.getElementById("map");
if (el) {
  const city = cityMap(el);
  window.smartcity = city;
  // The home page's recent items, as small pins; their count is kept on the element for tests and styles.
  const urls = el.dataset.pins ? JSON.parse(el.dataset.pins) : [];
  const pins = L.layerGroup().addTo(city.map);
  let count = 0;
  Promise.all(
    urls.map((url) =>
      fetch(url, { headers: { Accept: "application/geo+json" } })
        .then((r) => (r.ok ? r.json() : { features: [] }))
        .then((geojson) => {
          for (const f of geojson.features || []) {
            if (f.geometry?.type !== "Point") continue;
            const [lon, lat] = f.geometry.coordinates;
            const pin = L.circleMarker([lat, lon], { radius: 6, className: "home-pin", color: "#b45309",
              weight: 2, fillOpacity: 0.7 });
            const title = f.properties?.title;
            const href = f.properties?.url;
            if (title) pin.bindTooltip(title);
            if (href) pin.on("click", () => { window.location.href = href; });
            pins.addLayer(pin);
            count += 1;
          }
        }),
    ),
  ).finally(() => {
    el.dataset.pinCount = String(count);
  });
}
