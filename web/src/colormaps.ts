// Colour maps as 256-entry RGB lookup tables, and per-cell RGBA buffers built from them.
// Sequential: viridis (perceptually uniform, colour-blind safe). Diverging: blue–grey–red centred on 0.

export type RGB = [number, number, number];

function hex(h: string): RGB {
  const v = parseInt(h.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/** A 256×3 lookup table interpolated linearly between evenly spaced anchors. */
function lut(anchors: string[]): Uint8Array {
  const rgb = anchors.map(hex);
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (rgb.length - 1);
    const k = Math.min(Math.floor(t), rgb.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(rgb[k][c] * (1 - f) + rgb[k + 1][c] * f);
  }
  return out;
}

// viridis sampled at t = 0, 0.1, …, 1
export const VIRIDIS = lut([
  "#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
  "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725",
]);

// negative = blue, 0 = neutral grey (visible on the dark canvas), positive = red
export const DIVERGING = lut([
  "#2166ac", "#4393c3", "#92c5de", "#c9d3da", "#9aa3ab", "#e3c2b2", "#f4a582", "#d6604d", "#b2182b",
]);

// 24 distinct colours for categories, chosen to stay apart on a dark background
export const CATEGORICAL: RGB[] = [
  "#4e9af1", "#f28e2b", "#59c36a", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7",
  "#9c755f", "#a0cbe8", "#8cd17d", "#f1ce63", "#d37295", "#86bcb6", "#fabfd2", "#b6992d",
  "#499894", "#d4a6c8", "#79706e", "#e6f598", "#c6dbef", "#fdae6b", "#bcbd22", "#17becf",
].map(hex);

export const MISSING_RGB: RGB = [70, 74, 80];

export function categoryColor(code: number): RGB {
  return CATEGORICAL[code % CATEGORICAL.length];
}

export function lutCss(table: Uint8Array, t: number): string {
  const i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return `rgb(${table[i]},${table[i + 1]},${table[i + 2]})`;
}

/** CSS linear-gradient of a lookup table, left = 0, right = 1. */
export function lutGradient(table: Uint8Array): string {
  const stops: string[] = [];
  for (let k = 0; k <= 10; k++) stops.push(`${lutCss(table, k / 10)} ${k * 10}%`);
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

/**
 * RGBA per cell from values mapped linearly [lo, hi] → [0, 1] through `table`; NaN gets the
 * missing colour. Writes into `out` (length 4·n) so a 100k-cell recolour allocates nothing.
 */
export function colorByValues(values: Float32Array, lo: number, hi: number, table: Uint8Array, out: Uint8Array): void {
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const o = i * 4;
    if (Number.isNaN(v)) {
      out[o] = MISSING_RGB[0];
      out[o + 1] = MISSING_RGB[1];
      out[o + 2] = MISSING_RGB[2];
    } else {
      const t = (v - lo) / span;
      const k = (t <= 0 ? 0 : t >= 1 ? 255 : Math.round(t * 255)) * 3;
      out[o] = table[k];
      out[o + 1] = table[k + 1];
      out[o + 2] = table[k + 2];
    }
    out[o + 3] = 255;
  }
}

/** RGBA per cell from integer category codes; `missing` (e.g. 0xffff) gets the missing colour. */
export function colorByCodes(codes: ArrayLike<number>, missing: number, out: Uint8Array): void {
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    const rgb = c === missing ? MISSING_RGB : categoryColor(c);
    const o = i * 4;
    out[o] = rgb[0];
    out[o + 1] = rgb[1];
    out[o + 2] = rgb[2];
    out[o + 3] = 255;
  }
}
