// Lasso and box selection drawn on an SVG over the canvas; the closed polygon is mapped to layout
// coordinates and tested against every cell (even–odd rule, one pass over the typed array).

export type DrawTool = "lasso" | "box";

/** Indices of the points (x, y interleaved) inside the polygon (x, y interleaved). */
export function pointsInPolygon(points: Float32Array, poly: number[], visible?: Float32Array): Uint32Array {
  const m = poly.length / 2;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let k = 0; k < m; k++) {
    x0 = Math.min(x0, poly[2 * k]);
    x1 = Math.max(x1, poly[2 * k]);
    y0 = Math.min(y0, poly[2 * k + 1]);
    y1 = Math.max(y1, poly[2 * k + 1]);
  }
  const out: number[] = [];
  const n = points.length / 2;
  for (let i = 0; i < n; i++) {
    if (visible && visible[i] < 0.5) continue;
    const x = points[2 * i];
    const y = points[2 * i + 1];
    if (x < x0 || x > x1 || y < y0 || y > y1) continue;
    let inside = false;
    for (let a = 0, b = m - 1; a < m; b = a++) {
      const ya = poly[2 * a + 1];
      const yb = poly[2 * b + 1];
      if (ya > y !== yb > y) {
        const xa = poly[2 * a];
        const xb = poly[2 * b];
        if (x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
      }
    }
    if (inside) out.push(i);
  }
  return Uint32Array.from(out);
}

/**
 * Starts one drawing gesture on `host`; resolves with the polygon in screen pixels (relative to
 * host), or null when cancelled (Escape, or fewer than 3 distinct points).
 */
export function drawPolygon(host: HTMLElement, tool: DrawTool): Promise<number[] | null> {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.classList.add("draw-overlay");
  const shape = document.createElementNS(NS, "polygon");
  svg.appendChild(shape);
  host.appendChild(svg);
  const pts: number[] = [];
  let start: [number, number] | null = null;

  return new Promise((resolve) => {
    const local = (e: PointerEvent): [number, number] => {
      const r = host.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    const redraw = (): void => shape.setAttribute("points", pts.join(" "));
    const finish = (poly: number[] | null): void => {
      svg.remove();
      window.removeEventListener("keydown", onKey);
      resolve(poly && poly.length >= 6 ? poly : null);
    };
    const onKey = (e: KeyboardEvent): void => {
      if (e.key === "Escape") finish(null);
    };
    window.addEventListener("keydown", onKey);
    svg.addEventListener("pointerdown", (e) => {
      svg.setPointerCapture(e.pointerId);
      start = local(e);
      pts.length = 0;
      pts.push(...start);
    });
    svg.addEventListener("pointermove", (e) => {
      if (!start) return;
      const [x, y] = local(e);
      if (tool === "box") {
        pts.length = 0;
        pts.push(start[0], start[1], x, start[1], x, y, start[0], y);
      } else {
        const lx = pts[pts.length - 2];
        const ly = pts[pts.length - 1];
        if (Math.hypot(x - lx, y - ly) >= 3) pts.push(x, y);
      }
      redraw();
    });
    svg.addEventListener("pointerup", () => {
      if (start) finish([...pts]);
    });
  });
}
