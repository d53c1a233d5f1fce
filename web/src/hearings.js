// A public hearing's page, live: its events (participation.hearing.<id>.…) come over the server's event
// stream, and the parts they touch are fetched again, rendered by the same templates as the page. The live
// session's forms are sent in the background (X-Live: 204 or the error's text), so a phone keeps its place.

const root = document.getElementById("hearing");

if (root) {
  const id = root.dataset.id;
  const prefix = `participation.hearing.${id}.`;
  const parts = { questions: document.getElementById("questions"), comments: document.getElementById("comment-list") };
  const errorBox = document.getElementById("live-error");
  const state = document.getElementById("live-state");
  const timers = {};

  const refresh = (name) => {
    clearTimeout(timers[name]);
    // Upvotes come in bursts: one fetch for a burst.
    timers[name] = setTimeout(async () => {
      const r = await fetch(`/participation/hearings/${id}?part=${name}`, {
        headers: { Accept: "text/html" },
        credentials: "same-origin",
      });
      if (!r.ok) return;
      parts[name].innerHTML = await r.text();
      parts[name].dataset.refreshed = String(Number(parts[name].dataset.refreshed || 0) + 1);
    }, 100);
  };

  const showError = (text) => {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  };

  const es = new EventSource(`/api/events/stream?topics=${encodeURIComponent(prefix)}`);
  const mark = (on) => {
    if (!state) return;
    state.dataset.state = on ? "live" : "off";
    state.textContent = on ? state.dataset.on : state.dataset.off;
  };
  es.addEventListener("open", () => mark(true));
  es.addEventListener("error", () => mark(false));
  for (const what of ["question", "vote", "answering", "answered", "moderated"]) {
    es.addEventListener(prefix + what, () => refresh("questions"));
  }
  es.addEventListener(prefix + "comment", () => refresh("comments"));
  es.addEventListener(prefix + "moderated", () => refresh("comments"));
  // The phase changed (the session began or ended, the minutes came out): the whole page is another one.
  for (const what of ["live", "ended", "minutes", "document"]) {
    es.addEventListener(prefix + what, () => window.location.reload());
  }
  window.addEventListener("pagehide", () => es.close());
  // The schedule moves the hearing on by the clock, with no event: the page is read again when it does.
  const next = Date.parse(root.dataset.next || "");
  if (next > Date.now() && next - Date.now() < 2 ** 31 - 1) {
    setTimeout(() => window.location.reload(), next - Date.now() + 1000);
  }

  root.addEventListener("submit", async (e) => {
    const form = e.target.closest("form.live-form");
    if (!form) return;
    e.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const r = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-Live": "1" },
        credentials: "same-origin",
      });
      if (!r.ok) {
        showError(await r.text());
        return;
      }
      showError("");
      if (form.classList.contains("ask") || form.classList.contains("comment")) form.reset();
      // Our own change comes back as an event too; fetching now keeps the page honest if the stream is down.
      refresh(form.classList.contains("comment") ? "comments" : "questions");
    } finally {
      if (button) button.disabled = false;
    }
  });
}
