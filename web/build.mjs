// Bundles every entry under src/ (one per page family) into the package's static folder.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { writeIcons } from "./icons.mjs";

const OUT = "../src/smartcity/core/static/build";
// sw.js is the service worker, built on its own below (it needs the other bundles' hashes).
const entries = readdirSync("src")
  .filter((f) => /\.(js|css)$/.test(f) && !f.startsWith("_") && f !== "sw.js")
  .map((f) => `src/${f}`);

await build({
  entryPoints: entries,
  outdir: OUT,
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ["es2020"],
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "assets/[name]-[hash]",
  logLevel: "info",
});

// Swagger UI for /api/docs, served by the platform itself so the API documentation works offline.
const swagger = "node_modules/swagger-ui-dist";
const swaggerOut = "../src/smartcity/core/static/build/swagger-ui";
mkdirSync(swaggerOut, { recursive: true });
for (const f of ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE"]) {
  copyFileSync(`${swagger}/${f}`, `${swaggerOut}/${f}`);
}

// The installable app: icons, then every bundle's content hash (assets.json: core.web.asset() puts it in the
// URLs pages use), then the service worker with the same URLs to precache, so the shell it keeps is exactly
// what the pages ask for.
writeIcons(`${OUT}/icons`);
const hashes = {};
const shell = [];
const hashOf = (path) => createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 12);
for (const dir of ["", "assets/", "icons/"]) {
  for (const f of readdirSync(`${OUT}/${dir}`, { withFileTypes: true })) {
    if (!f.isFile() || f.name.endsWith(".map") || ["sw.js", "assets.json"].includes(f.name) || f.name.startsWith(".")) continue;
    const name = `${dir}${f.name}`;
    hashes[name] = hashOf(`${OUT}/${name}`);
    // Leaflet's images are named by hash already and asked for by the CSS without a query.
    shell.push(dir === "assets/" ? `/static/build/${name}` : `/static/build/${name}?v=${hashes[name]}`);
  }
}
writeFileSync(`${OUT}/assets.json`, `${JSON.stringify(hashes, null, 1)}\n`);
const version = createHash("sha256").update(JSON.stringify(hashes)).digest("hex").slice(0, 12);
await build({
  entryPoints: ["src/sw.js"],
  outfile: `${OUT}/sw.js`,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  define: { __BUILD__: JSON.stringify({ version, shell }) },
  logLevel: "info",
});
