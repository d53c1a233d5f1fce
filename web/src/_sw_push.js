// Web push in the service worker (engineer P5 fills this: push and notificationclick listeners).
// Imported by web/src/sw.js; bundled into /sw.js by web/build.mjs.
