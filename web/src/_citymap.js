// The city map every page builds on: base tiles from the configured server (optional), the city's
// district outlines from the platform's own GeoJSON, so the map is useful with no tile server at all.
import L from "leaflet";
import iconUrl from "leaflet/dist/images/marker-icon.png";
import iconRetinaUrl from "leaflet/dist/images/marker-icon-2x.png";
import shadowUrl from "leaflet/dist/images/marker-shadow.png";

L.Icon.Default.mergeOptions({ iconUrl, iconRetinaUrl, shadowUrl });
L.Icon.Default.imagePath = "";

export { L };

export function cityMap(el) {
  const data = el.dataset;
  const map = L.map(el, { zoomControl: true, preferCanvas: false }).setView(
    JSON.parse(data.center),
    Number(data.zoom),
  );
  el.dataset.state = "loading";
  // A page that places the view itself (a ward, a report) keeps it: the districts' fit is only a default.
  let placed = false;
  map.once("movestart", () => {
    placed = true;
  });
  map.on("moveend", () => {
    el.dataset.zoomNow = String(map.getZoom());
  });

  if (data.tiles) {
    let failures = 0;
    const tiles = L.tileLayer(data.tiles, { attribution: data.attribution, maxZoom: 19 });
    tiles.on("tileerror", () => {
      failures += 1;
      if (failures === 3) showNotice(el, data.noTiles, "no-tiles");
    });
    tiles.addTo(map);
  } else {
    el.classList.add("no-tiles");
  }

  const districts = L.geoJSON(null, {
    className: "district",
    style: { color: "#1d4ed8", weight: 2, fillColor: "#60a5fa", fillOpacity: 0.08 },
    onEachFeature: (feature, layer) => {
      layer.bindTooltip(feature.properties.name, { sticky: true });
      layer.getElement?.()?.setAttribute("data-code", feature.properties.code);
    },
  }).addTo(map);

  const ready = fetch(data.districts)
    .then((r) => {
      if (!r.ok) throw new Error(`districts: HTTP ${r.status}`);
      return r.json();
    })
    .then((geojson) => {
      districts.addData(geojson);
      districts.eachLayer((layer) => {
        layer.getElement()?.setAttribute("data-code", layer.feature.properties.code);
      });
      if (geojson.features.some((f) => f.properties.approximate)) showNotice(el, data.approximate, "approximate");
      // Not animated: a page fitting its own view right after would be ignored mid-animation.
      if (geojson.features.length && !placed) map.fitBounds(districts.getBounds(), { padding: [8, 8], animate: false });
      el.dataset.state = "ready";
      el.dataset.districtCount = String(geojson.features.length);
    })
    .catch((err) => {
      el.dataset.state = "error";
      showNotice(el, String(err));
    });

  return { map, districts, ready };
}

function showNotice(el, text, kind = "warning") {
  if (el.querySelector(`.map-notice.${kind}`)) return;
  const note = document.createElement("div");
  note.className = `map-notice ${kind}`;
  note.setAttribute("role", "status");
  note.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "map-notice-close";
  close.setAttribute("aria-label", "×");
  close.textContent = "×";
  close.addEventListener("click", (ev) => {
    ev.stopPropagation();
    note.remove();
  });
  note.appendChild(close);
  L.DomEvent.disableClickPropagation(note);
  el.appendChild(note);
}
