// "Notify me on this phone" (templates' _push.html): shown only where the browser has web push. Permission is
// asked only when the button is pressed, never on page load; the browser is then subscribed with the
// platform's VAPID key and its subscription sent to /api/push/subscriptions for the signed-in account.
// The service worker that receives the messages (/sw.js, registered by pwa.js) shows them (_sw_push.js).

const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
const WAIT_FOR_WORKER_MS = 10000;

const csrf = () => document.querySelector('input[name="csrf_token"]')?.value || "";

function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64url.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function sameKey(a, b) {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

function worker() {
  return Promise.race([
    navigator.serviceWorker.ready,
    new Promise((_, reject) => setTimeout(() => reject(new Error("no service worker")), WAIT_FOR_WORKER_MS)),
  ]);
}

async function subscribe() {
  const { public_key: publicKey } = await (await fetch("/api/push/key", { headers: { Accept: "application/json" } })).json();
  const key = keyBytes(publicKey);
  const registration = await worker();
  let subscription = await registration.pushManager.getSubscription();
  // A subscription made with another key (the platform's key was changed) cannot be used: make a new one.
  if (subscription && !sameKey(subscription.options?.applicationServerKey, key)) {
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ||= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  const response = await fetch("/api/push/subscriptions", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(subscription.toJSON ? subscription.toJSON() : subscription),
  });
  if (!response.ok) throw new Error(`subscription refused: ${response.status}`);
}

function settle(box, text) {
  box.querySelector(".push-status").textContent = text;
}

function turnedOn(box) {
  box.querySelector("[data-push-subscribe]").hidden = true;
  settle(box, box.dataset.done);
  // A form offering notifications as a channel (the guardian's) may now choose it.
  for (const choice of document.querySelectorAll("[data-push-channel]")) choice.disabled = false;
}

async function press(box) {
  const button = box.querySelector("[data-push-subscribe]");
  button.disabled = true;
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") return settle(box, box.dataset.denied);
    await subscribe();
    turnedOn(box);
  } catch {
    settle(box, box.dataset.failed);
  } finally {
    button.disabled = false;
  }
}

if (supported) {
  for (const box of document.querySelectorAll("[data-push]")) {
    box.hidden = false;
    box.querySelector("[data-push-subscribe]").addEventListener("click", () => press(box));
    if (Notification.permission === "denied") settle(box, box.dataset.denied);
  }
}
