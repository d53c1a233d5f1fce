// The Open Data Plaza's pages: a resource's map and chart, a file sent with its upload progress, and the load's
// progress polled from the server until its defects can be listed. Each part acts only if its element is there.
import { cityMap, L } from "./_citymap.js";

const fill = (template, values) => template.replace(/%\((\w+)\)s/g, (_, k) => String(values[k] ?? "")).replace(/%%/g, "%");

function resourceMap(el) {
  const { map, ready } = cityMap(el);
  const layer = L.geoJSON(null, {
    pointToLayer: (_f, latlng) => L.circleMarker(latlng, { radius: 5, color: "#1d4ed8", weight: 1, fillOpacity: 0.7 }),
    onEachFeature: (feature, marker) => {
      const rows = Object.entries(feature.properties)
        .filter(([k]) => k !== "_id")
        .slice(0, 6);
      const box = document.createElement("dl");
      for (const [k, v] of rows) {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v == null ? "" : String(v);
        box.append(dt, dd);
      }
      marker.bindPopup(box);
    },
  }).addTo(map);
  Promise.all([fetch(el.dataset.points).then((r) => r.json()), ready]).then(([geojson]) => {
    layer.addData(geojson);
    el.dataset.points = String(geojson.features.length);
    const count = document.getElementById("resource-map-count");
    if (count) count.textContent = fill(count.dataset.template, { num: geojson.features.length });
    if (geojson.features.length) map.fitBounds(layer.getBounds(), { padding: [12, 12], maxZoom: 16, animate: false });
    el.dataset.pointsState = "ready";
  });
}

const SVG = "http://www.w3.org/2000/svg";
const svgEl = (name, attrs) => {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
};
const short = (n) => (Math.abs(n) >= 1e4 || Number.isInteger(n) ? Math.round(n).toLocaleString() : n.toPrecision(3));

function drawChart(box, data) {
  const holder = box.querySelector(".chart-svg");
  const width = 600;
  const height = 260;
  const pad = { left: 48, right: 8, top: 10, bottom: 48 };
  const most = Math.max(1, ...data.bins.map((b) => b.count));
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-caption" });
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const barW = plotW / Math.max(1, data.bins.length);
  svg.append(svgEl("line", { x1: pad.left, y1: pad.top + plotH, x2: width - pad.right, y2: pad.top + plotH, class: "axis" }));
  for (const tick of [0, most]) {
    const y = pad.top + plotH - (tick / most) * plotH;
    const label = svgEl("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "tick" });
    label.textContent = tick.toLocaleString();
    svg.append(label);
  }
  data.bins.forEach((b, i) => {
    const h = (b.count / most) * plotH;
    const x = pad.left + i * barW;
    const bar = svgEl("rect", { x: x + 1, y: pad.top + plotH - h, width: Math.max(1, barW - 2), height: h, class: "bar" });
    bar.dataset.count = String(b.count);
    const title = svgEl("title", {});
    title.textContent = `${short(b.from)} – ${short(b.to)}: ${b.count.toLocaleString()}`;
    bar.append(title);
    svg.append(bar);
    if (data.bins.length <= 12 || i % Math.ceil(data.bins.length / 12) === 0) {
      const label = svgEl("text", {
        x: x + barW / 2,
        y: pad.top + plotH + 14,
        "text-anchor": "end",
        transform: `rotate(-35 ${x + barW / 2} ${pad.top + plotH + 14})`,
        class: "tick",
      });
      label.textContent = short(b.from);
      svg.append(label);
    }
  });
  holder.replaceChildren(svg);
  box.querySelector("figcaption").textContent = fill(box.dataset.caption, { column: data.label, num: data.counted.toLocaleString() });
  box.dataset.state = "ready";
  box.dataset.bars = String(data.bins.length);
}

function chart(box) {
  const select = box.querySelector("select");
  const show = () => {
    box.dataset.state = "loading";
    fetch(`${box.dataset.url}?column=${encodeURIComponent(select.value)}`)
      .then((r) => r.json())
      .then((data) => drawChart(box, data));
  };
  select.addEventListener("change", show);
  show();
}

function upload(form) {
  const bar = form.querySelector(".upload-progress");
  const status = form.querySelector("#upload-status");
  const progress = bar.querySelector("progress");
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", form.elements.csrf_token.value);
    bar.hidden = false;
    button.disabled = true;
    const shown = (percent) => {
      progress.value = percent;
      status.textContent = fill(form.dataset.sending, { percent });
    };
    shown(0);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) shown(Math.floor((100 * e.loaded) / e.total));
    });
    xhr.addEventListener("load", () => {
      let answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        answer = {};
      }
      if (xhr.status === 202 && answer.url) {
        window.location.assign(answer.url);
        return;
      }
      button.disabled = false;
      status.textContent = answer.error || form.dataset.failed;
      status.classList.add("error");
    });
    xhr.addEventListener("error", () => {
      button.disabled = false;
      status.textContent = form.dataset.failed;
      status.classList.add("error");
    });
    xhr.send(new FormData(form));
  });
}

function follow(section) {
  const progress = section.querySelector("#load-progress");
  const status = section.querySelector("#load-status");
  const defects = section.querySelector(".defects");
  const tick = () =>
    fetch(section.dataset.statusUrl, { headers: { Accept: "application/json" } })
      .then((r) => r.json())
      .then((s) => {
        section.dataset.state = s.state;
        if (s.state === "reading") {
          progress.removeAttribute("value");
          status.textContent = section.dataset.reading;
        } else if (s.state === "storing") {
          progress.value = s.total ? Math.floor((100 * s.stored) / s.total) : 0;
          status.textContent = fill(section.dataset.storing, { stored: s.stored.toLocaleString(), total: (s.total || 0).toLocaleString() });
        } else if (s.state === "done") {
          progress.value = 100;
          status.textContent = fill(section.dataset.done, s);
          showDefects(section, defects, s);
          return;
        } else {
          progress.value = 0;
          status.textContent = fill(section.dataset.failed, s);
          status.classList.add("error");
          return;
        }
        setTimeout(tick, 400);
      })
      .catch(() => setTimeout(tick, 2000));
  if (section.dataset.state === "reading" || section.dataset.state === "storing") tick();
}

function showDefects(section, defects, s) {
  const body = defects.querySelector("tbody");
  body.replaceChildren(
    ...(s.problems || []).map((p) => {
      const tr = document.createElement("tr");
      for (const v of [p.line, p.column ?? "", p.value, p.problem]) {
        const td = document.createElement("td");
        td.textContent = String(v);
        tr.append(td);
      }
      return tr;
    }),
  );
  defects.querySelector(".defects-summary").textContent = s.problem_count
    ? fill(section.dataset.defects, { num: s.problem_count.toLocaleString(), shown: (s.problems || []).length })
    : section.dataset.noDefects;
  if (s.resource && !defects.querySelector(".resource-link")) {
    const p = document.createElement("p");
    const a = document.createElement("a");
    a.className = "resource-link";
    a.href = `/opendata/resources/${s.resource}`;
    a.textContent = section.dataset.seeRows;
    p.append(a);
    defects.append(p);
  }
  defects.hidden = false;
}

const mapEl = document.getElementById("resource-map");
if (mapEl) resourceMap(mapEl);
const chartBox = document.querySelector(".chart-box");
if (chartBox) chart(chartBox);
const uploadForm = document.getElementById("resource-upload");
if (uploadForm) upload(uploadForm);
const loadSection = document.getElementById("load");
if (loadSection) follow(loadSection);
