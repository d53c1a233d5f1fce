// Bundles every entry under src/ (one per page family) into the package's static folder.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";

const entries = readdirSync("src")
  .filter((f) => /\.(js|css)$/.test(f) && !f.startsWith("_"))
  .map((f) => `src/${f}`);

await build({
  entryPoints: entries,
  outdir: "../src/smartcity/core/static/build",
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
