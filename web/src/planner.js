// The night route planner's result on the city map: the clustered hot cells shaded by their late-night demand
// (darker where a proposed route serves them), the current routes dashed, each proposed route as a coloured line
// and its stops as circles sized by the demand they serve. The server's SVG drawing stays for browsers without
// script and is hidden once this map has drawn the routes.
import { cityMap, L } from "./_citymap.js";

const el = document.getElementById("planner-citymap");
if (el) {
  const city = cityMap(el);
  window.smartcity = city;
  const data = el.dataset;
  const fmt = (v) => Math.round(v).toLocaleString(document.documentElement.lang || "ko");
  const mark = (layer, attrs) =>
    layer.on("add", () => {
      const node = layer.getElement();
      if (node) for (const [k, v] of Object.entries(attrs)) node.setAttribute(`data-${k}`, v);
    });

  const draw = (plan) => {
    const cells = L.layerGroup().addTo(city.map);
    const top = Math.max(1, ...(plan.cells || []).map((c) => c.demand));
    for (const c of plan.cells || []) {
      const share = Math.sqrt(c.demand / top);
      const hex = L.polygon(c.ring, {
        className: `hot-cell${c.served ? " served" : ""}`,
        stroke: false,
        fillColor: c.served ? "#ea580c" : "#fdba74",
        fillOpacity: (c.served ? 0.25 : 0.12) + 0.35 * share,
        interactive: true,
      }).bindTooltip(`${data.cellLabel}: ${fmt(c.demand)}`);
      cells.addLayer(mark(hex, { cell: c.cell }));
    }
    const lines = L.featureGroup().addTo(city.map);
    for (const b of plan.baseline || []) {
      const line = L.polyline(
        b.stops.map((s) => [s.lat, s.lon]),
        { className: "planner-baseline", color: "#64748b", weight: 3, dashArray: "6 5" },
      ).bindTooltip(b.name);
      lines.addLayer(mark(line, { route: b.name }));
    }
    const stopTop = Math.max(1, ...plan.routes.flatMap((r) => r.stops.map((s) => s.demand)));
    let stops = 0;
    for (const r of plan.routes) {
      const line = L.polyline(
        r.stops.map((s) => [s.lat, s.lon]),
        { className: "planner-route", color: r.colour, weight: 5, opacity: 0.85 },
      ).bindTooltip(`${r.name} · ${r.km.toFixed(1)} km · ${data.demandLabel} ${fmt(r.demand)}`, { sticky: true });
      lines.addLayer(mark(line, { route: r.name }));
      for (const s of r.stops) {
        const dot = L.circleMarker([s.lat, s.lon], {
          className: "planner-stop",
          radius: 3 + 8 * Math.sqrt(s.demand / stopTop),
          color: "#0f172a",
          weight: 1,
          fillColor: r.colour,
          fillOpacity: 0.8,
        }).bindTooltip(`${r.name} · ${data.stopLabel} ${s.name} · ${data.demandLabel} ${fmt(s.demand)}`);
        lines.addLayer(mark(dot, { stop: s.id, route: r.name, demand: String(s.demand) }));
        stops += 1;
      }
    }
    // After the districts' fit, so the view ends on the routes.
    city.ready.finally(() => {
      if (lines.getLayers().length) city.map.fitBounds(lines.getBounds(), { padding: [12, 12], animate: false });
    });
    el.dataset.routeCount = String(plan.routes.length);
    el.dataset.stopCount = String(stops);
    el.dataset.cellCount = String((plan.cells || []).length);
    const svg = document.getElementById("planner-svg");
    if (svg) svg.hidden = true;
    const caption = document.getElementById("planner-citymap-caption");
    if (caption) caption.hidden = false;
  };

  fetch(data.plan, { headers: { Accept: "application/json" }, cache: "no-store" })
    .then((r) => {
      if (!r.ok) throw new Error(`plan: HTTP ${r.status}`);
      return r.json();
    })
    .then(draw)
    .catch(() => {
      // The server's drawing below stays in view.
      el.dataset.routeCount = "error";
    });
}
