// Where a photo was taken, from its EXIF GPS tags (JPEG only), read on the phone before the photo is sent: the
// server removes every EXIF tag from what it stores, so this is the only place the photo's position is used.

const GPS_IFD = 0x8825;
const TAGS = { 1: "latRef", 2: "lat", 3: "lonRef", 4: "lon" };

// The GPS position in a JPEG's bytes (an ArrayBuffer), or null when it says none.
export function gpsFromJpeg(buffer) {
  const view = new DataView(buffer);
  if (view.byteLength < 4 || view.getUint16(0) !== 0xffd8) return null;
  let at = 2;
  while (at + 4 <= view.byteLength) {
    const marker = view.getUint16(at);
    const length = view.getUint16(at + 2);
    if (marker === 0xffe1 && at + 10 <= view.byteLength && view.getUint32(at + 4) === 0x45786966) {
      return gpsFromTiff(view, at + 10, Math.min(view.byteLength, at + 2 + length));
    }
    if ((marker & 0xff00) !== 0xff00 || marker === 0xffda) return null; // not a marker, or the image data
    at += 2 + length;
  }
  return null;
}

function gpsFromTiff(view, start, end) {
  const order = view.getUint16(start);
  if (order !== 0x4949 && order !== 0x4d4d) return null;
  const little = order === 0x4949;
  const u16 = (o) => view.getUint16(start + o, little);
  const u32 = (o) => view.getUint32(start + o, little);
  const inside = (o, n) => start + o + n <= end;

  const entries = (ifd) => {
    if (!inside(ifd, 2)) return [];
    const out = [];
    for (let i = 0, n = u16(ifd); i < n && inside(ifd + 2 + 12 * i, 12); i++) {
      const e = ifd + 2 + 12 * i;
      out.push({ tag: u16(e), type: u16(e + 2), count: u32(e + 4), at: e + 8 });
    }
    return out;
  };
  const gpsEntry = entries(u32(4)).find((e) => e.tag === GPS_IFD);
  if (!gpsEntry) return null;
  const found = {};
  for (const e of entries(u32(gpsEntry.at))) {
    const name = TAGS[e.tag];
    if (!name) continue;
    if (e.type === 2) found[name] = String.fromCharCode(view.getUint8(start + e.at)); // "N", "S", "E", "W"
    else if (e.type === 5 && e.count === 3) {
      const values = u32(e.at); // three rationals: degrees, minutes, seconds
      if (!inside(values, 24)) return null;
      const part = (k) => u32(values + 8 * k) / (u32(values + 8 * k + 4) || 1);
      found[name] = part(0) + part(1) / 60 + part(2) / 3600;
    }
  }
  if (found.lat === undefined || found.lon === undefined) return null;
  const lat = found.latRef === "S" ? -found.lat : found.lat;
  const lon = found.lonRef === "W" ? -found.lon : found.lon;
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  if (lat === 0 && lon === 0) return null; // cameras write zeros when they had no fix
  return { lat, lon };
}

// The position of a photo File, read from its first 256 KB (where EXIF lives), or null.
export async function gpsOf(file) {
  if (!/jpe?g$/i.test(file.type) && !/\.jpe?g$/i.test(file.name)) return null;
  return gpsFromJpeg(await file.slice(0, 256 * 1024).arrayBuffer());
}
