// Bundles every entry under src/ (one per page family) into the package's static folder.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

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
