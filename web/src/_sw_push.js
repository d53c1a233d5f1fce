// Web push in the service worker (imported by sw.js): a message from the platform (core.notify's
// WebPushChannel: JSON {title, body, url, tag, urgent}) becomes a notification; tapping it focuses a tab
// already showing its page, or opens one.

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { body: event.data ? event.data.text() : "" };
  }
  const url = new URL(message.url || "/", self.location.origin).href;
  const options = {
    body: message.body || "",
    tag: message.tag || undefined,
    data: { url },
    icon: "/static/build/icons/icon-192.png",
    // An emergency stays on screen until the guardian acts on it, and makes the phone buzz.
    requireInteraction: Boolean(message.urgent),
    renotify: Boolean(message.tag),
    vibrate: message.urgent ? [300, 100, 300, 100, 300] : undefined,
  };
  event.waitUntil(self.registration.showNotification(message.title || self.location.host, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data?.url || new URL("/", self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((w) => w.url === url);
      if (open) return open.focus();
      return self.clients.openWindow(url);
    })(),
  );
});
