// Small numeric helpers over per-cell typed arrays (NaN-aware, no per-cell allocation).

export interface Range {
  min: number;
  max: number;
}

export function finiteRange(v: Float32Array): Range {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return Number.isFinite(min) ? { min, max } : { min: 0, max: 0 };
}

/** q-quantile (0..1) of the finite values; a sorted copy, fine for 10⁵–10⁶ cells. */
export function quantile(v: Float32Array, q: number, abs = false): number {
  const s = new Float32Array(v.length);
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isNaN(x)) s[n++] = abs ? Math.abs(x) : x;
  }
  if (n === 0) return 0;
  const sorted = s.subarray(0, n).sort();
  return sorted[Math.min(n - 1, Math.floor(q * (n - 1) + 0.5))];
}

export interface GroupStat {
  group: number;
  n: number;
  min: number;
  max: number;
  meanAbs: number;
}

/** Per-group (cluster or cell type code) count, range and mean |value|; groups sorted by id. */
export function groupStats(values: Float32Array, groups: ArrayLike<number>, missing = -1): GroupStat[] {
  const acc = new Map<number, GroupStat & { sumAbs: number }>();
  for (let i = 0; i < values.length; i++) {
    const g = groups[i];
    const x = values[i];
    if (g === missing || Number.isNaN(x)) continue;
    let s = acc.get(g);
    if (!s) {
      s = { group: g, n: 0, min: Infinity, max: -Infinity, meanAbs: 0, sumAbs: 0 };
      acc.set(g, s);
    }
    s.n++;
    if (x < s.min) s.min = x;
    if (x > s.max) s.max = x;
    s.sumAbs += Math.abs(x);
  }
  return [...acc.values()]
    .sort((a, b) => a.group - b.group)
    .map(({ sumAbs, ...s }) => ({ ...s, meanAbs: sumAbs / s.n }));
}

/** Compact number for legends: 3 significant digits, no exponent for everyday magnitudes. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a === 0) return "0";
  if (a >= 1e4 || a < 1e-3) return x.toExponential(2);
  if (a >= 100) return x.toFixed(0);
  const s = x.toPrecision(3);
  // strip trailing zeros of the fraction only ("1.50" → "1.5", "120" stays)
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}
