// The app's icons, drawn here from a few shapes (a map pin over a skyline on the brand's blue) and written as
// PNG (sampled 4×4 per pixel for smooth edges) and SVG, so no artwork is copied and no image tool is needed.
import { deflateSync } from "node:zlib";
import { mkdirSync, writeFileSync } from "node:fs";

const BRAND = [29, 78, 216]; // --brand in app.css
const SKY = [96, 140, 240];
const WHITE = [255, 255, 255];

// Shapes in a unit square (y downwards). The pin: a circle and the cone from its tip tangent to the circle.
const PIN = { cx: 0.5, cy: 0.39, r: 0.2, tip: 0.8, hole: 0.08 };
const BUILDINGS = [
  [0.16, 0.56, 0.12, 0.26],
  [0.3, 0.47, 0.1, 0.35],
  [0.62, 0.5, 0.1, 0.32],
  [0.74, 0.6, 0.1, 0.22],
]; // x, y, width, height
const GROUND = 0.82;
const CORNER = 0.2; // the rounded square's corner radius (icons of purpose "any")

const d = PIN.tip - PIN.cy;
const tangentDy = (PIN.r * PIN.r) / d; // the tangent points lie this far below the circle's centre
const tangentDx = Math.sqrt(PIN.r * PIN.r - tangentDy * tangentDy);
const tanHalf = tangentDx / (PIN.tip - PIN.cy - tangentDy);

function inPin(x, y) {
  const dx = x - PIN.cx, dy = y - PIN.cy;
  if (dx * dx + dy * dy <= PIN.r * PIN.r) return true;
  const up = PIN.tip - y;
  return y >= PIN.cy + tangentDy && up >= 0 && Math.abs(dx) <= up * tanHalf;
}

function inRoundedSquare(x, y) {
  const qx = Math.max(CORNER - x, x - (1 - CORNER), 0), qy = Math.max(CORNER - y, y - (1 - CORNER), 0);
  return qx * qx + qy * qy <= CORNER * CORNER;
}

// The colour at (x, y) of the unit square, or null where the icon is transparent.
function colourAt(x, y, { maskable, rounded }) {
  if (rounded && !inRoundedSquare(x, y)) return null;
  // A maskable icon keeps what matters inside the central 80 % (the safe zone a launcher's mask keeps).
  const s = maskable ? 0.8 : 1;
  const u = (x - 0.5) / s + 0.5, v = (y - 0.5) / s + 0.5;
  if (inPin(u, v)) {
    const hx = u - PIN.cx, hy = v - PIN.cy;
    return hx * hx + hy * hy <= PIN.hole * PIN.hole ? BRAND : WHITE;
  }
  if (v >= GROUND && v <= GROUND + 0.025 && u >= 0.12 && u <= 0.88) return SKY;
  for (const [bx, by, bw, bh] of BUILDINGS) if (u >= bx && u <= bx + bw && v >= by && v <= by + bh) return SKY;
  return BRAND;
}

function pixels(size, options) {
  const out = Buffer.alloc(size * size * 4);
  const n = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const c = colourAt((px + (sx + 0.5) / n) / size, (py + (sy + 0.5) / n) / size, options);
          if (!c) continue;
          r += c[0]; g += c[1]; b += c[2]; a += 1;
        }
      }
      const i = (py * size + px) * 4;
      if (a) [out[i], out[i + 1], out[i + 2]] = [r / a, g / a, b / a].map(Math.round);
      out[i + 3] = Math.round((255 * a) / (n * n));
    }
  }
  return out;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

export function png(size, options) {
  const rgba = pixels(size, options);
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    rows[y * (size * 4 + 1)] = 0; // no filter
    rgba.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8 bits per channel, RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(rows, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

export function svg() {
  const hex = (c) => `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
  const f = (v) => +(v * 100).toFixed(2);
  const left = [PIN.cx - tangentDx, PIN.cy + tangentDy], right = [PIN.cx + tangentDx, PIN.cy + tangentDy];
  const rects = BUILDINGS.map(([x, y, w, h]) => `<rect x="${f(x)}" y="${f(y)}" width="${f(w)}" height="${f(h)}"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<rect width="100" height="100" rx="${f(CORNER)}" fill="${hex(BRAND)}"/>
<g fill="${hex(SKY)}">${rects.join("")}<rect x="12" y="${f(GROUND)}" width="76" height="2.5"/></g>
<g fill="${hex(WHITE)}"><circle cx="${f(PIN.cx)}" cy="${f(PIN.cy)}" r="${f(PIN.r)}"/>
<polygon points="${f(left[0])},${f(left[1])} ${f(PIN.cx)},${f(PIN.tip)} ${f(right[0])},${f(right[1])}"/></g>
<circle cx="${f(PIN.cx)}" cy="${f(PIN.cy)}" r="${f(PIN.hole)}" fill="${hex(BRAND)}"/>
</svg>
`;
}

// Writes the icons the manifest and the base template name into `dir`.
export function writeIcons(dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/icon-192.png`, png(192, { rounded: true }));
  writeFileSync(`${dir}/icon-512.png`, png(512, { rounded: true }));
  writeFileSync(`${dir}/icon-maskable-512.png`, png(512, { maskable: true }));
  // iOS rounds the corners itself and shows transparency as black: a full square.
  writeFileSync(`${dir}/apple-touch-icon.png`, png(180, {}));
  writeFileSync(`${dir}/icon.svg`, svg());
}
