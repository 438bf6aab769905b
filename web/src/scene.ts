// The deck.gl canvas: one ScatterplotLayer fed binary attributes (positions f32×2, colours u8×4,
// visibility f32 through the GPU data filter) so 10⁵–10⁶ cells cost typed arrays, not JS objects;
// small overlays (selection rings, neighbour links, the UMAP quiver) are layers of their own.
import { Deck, OrthographicView, type Layer, type OrthographicViewState, type PickingInfo } from "@deck.gl/core";
import { LineLayer, ScatterplotLayer } from "@deck.gl/layers";
import { DataFilterExtension } from "@deck.gl/extensions";

export interface Links {
  /** per link: source x, y, target x, y */
  segments: Float32Array;
  /** per link: RGBA */
  colors: Uint8Array;
  widths: Float32Array;
}

export interface Quiver {
  segments: Float32Array; // per stroke: x0, y0, x1, y1 (shafts and arrow heads)
}

type ViewState = OrthographicViewState & { target: [number, number, number]; zoom: number };

const FILTER = new DataFilterExtension({ filterSize: 1 });

export class Scene {
  private readonly deck: Deck<OrthographicView>;
  private n = 0;
  private positions = new Float32Array(0);
  private colors = new Uint8Array(0);
  private visible = new Float32Array(0);
  private spacing = 1;
  private pointScale = 1;
  private opacity = 0.9;
  private selection = new Float32Array(0);
  private focus: number | null = null;
  private links: Links | null = null;
  private quiver: Quiver | null = null;
  private viewState: ViewState = { target: [0, 0, 0], zoom: 0 };
  private version = 0;
  private firstPaintPending = true;
  /** called once, after the first frame that shows the cells */
  onFirstPaint: (() => void) | null = null;
  onCellClick: ((index: number | null) => void) | null = null;
  onHover: ((index: number | null, x: number, y: number) => void) | null = null;

  constructor(private readonly parent: HTMLDivElement) {
    this.deck = new Deck<OrthographicView>({
      parent,
      views: new OrthographicView({ id: "cells", flipY: false }),
      viewState: this.viewState,
      controller: { doubleClickZoom: true, inertia: 200 },
      // small points stay clickable: the nearest cell within a few pixels is picked
      pickingRadius: 5,
      onViewStateChange: ({ viewState }) => {
        this.viewState = viewState as ViewState;
        this.deck.setProps({ viewState: this.viewState });
      },
      getCursor: ({ isDragging, isHovering }) => (isDragging ? "grabbing" : isHovering ? "pointer" : "grab"),
      onHover: (info: PickingInfo) =>
        this.onHover?.(info.layer?.id === "cells" && info.index >= 0 ? info.index : null, info.x, info.y),
      onAfterRender: () => {
        if (this.firstPaintPending && this.n > 0) {
          this.firstPaintPending = false;
          this.onFirstPaint?.();
        }
      },
      layers: [],
    });
    this.listenForClicks();
  }

  /**
   * Clicks are picked here, synchronously at the click position, rather than through deck's gesture
   * recogniser, which misses a click that arrives without a hover first; a drag (pan) is no click.
   */
  private listenForClicks(): void {
    let down: [number, number] | null = null;
    this.parent.addEventListener("pointerdown", (e) => (down = [e.clientX, e.clientY]));
    this.parent.addEventListener("click", (e) => {
      if (!down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 4) return;
      const r = this.parent.getBoundingClientRect();
      const info = this.deck.pickObject({ x: e.clientX - r.left, y: e.clientY - r.top, radius: 5, layerIds: ["cells"] });
      this.onCellClick?.(info && info.index >= 0 ? info.index : null);
    });
  }

  get cellCount(): number {
    return this.n;
  }

  get cellPositions(): Float32Array {
    return this.positions;
  }

  /** New layout (or dataset): positions 2·n; refits the view. Colours/visibility reset when n changes. */
  setPositions(positions: Float32Array, refit = true): void {
    const n = positions.length / 2;
    if (n !== this.n) {
      this.n = n;
      this.colors = new Uint8Array(4 * n).fill(200);
      this.visible = new Float32Array(n).fill(1);
      this.selection = new Float32Array(0);
      this.focus = null;
      this.links = null;
    }
    this.positions = positions;
    this.spacing = typicalSpacing(positions);
    if (refit) this.fit();
    this.render();
  }

  /** Colours 4·n RGBA, owned by the caller; pass a fresh array or call after an in-place rewrite. */
  setColors(colors: Uint8Array): void {
    this.colors = colors;
    this.render();
  }

  setVisible(visible: Float32Array): void {
    this.visible = visible;
    this.render();
  }

  setPointScale(scale: number): void {
    this.pointScale = scale;
    this.render();
  }

  setOpacity(opacity: number): void {
    this.opacity = opacity;
    this.render();
  }

  setSelection(indices: Uint32Array): void {
    const s = new Float32Array(indices.length * 2);
    for (let k = 0; k < indices.length; k++) {
      s[2 * k] = this.positions[2 * indices[k]];
      s[2 * k + 1] = this.positions[2 * indices[k] + 1];
    }
    this.selection = s;
    this.render();
  }

  setFocus(index: number | null, links: Links | null): void {
    this.focus = index;
    this.links = links;
    this.render();
  }

  setQuiver(quiver: Quiver | null): void {
    this.quiver = quiver;
    this.render();
  }

  /** What the overlays currently draw (for tests): quiver strokes, sender links, selected cells. */
  get overlayCounts(): { quiver: number; links: number; selected: number } {
    return {
      quiver: this.quiver ? this.quiver.segments.length / 4 : 0,
      links: this.links ? this.links.segments.length / 4 : 0,
      selected: this.selection.length / 2,
    };
  }

  /** Radius of one cell in layout units at point scale 1: the quiver and links scale with it. */
  get cellRadius(): number {
    return this.spacing * 0.5;
  }

  fit(): void {
    const { width, height } = this.parent.getBoundingClientRect();
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < this.n; i++) {
      const x = this.positions[2 * i];
      const y = this.positions[2 * i + 1];
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    if (!Number.isFinite(x0)) return;
    const dx = Math.max(x1 - x0, 1e-9);
    const dy = Math.max(y1 - y0, 1e-9);
    const zoom = Math.log2(Math.min((width || 800) / dx, (height || 600) / dy) * 0.9);
    this.viewState = { target: [(x0 + x1) / 2, (y0 + y1) / 2, 0], zoom };
    this.deck.setProps({ viewState: this.viewState });
  }

  zoomBy(step: number): void {
    this.viewState = { ...this.viewState, zoom: this.viewState.zoom + step, transitionDuration: 150 };
    this.deck.setProps({ viewState: this.viewState });
  }

  /** Pause pan/zoom while the lasso or box tool draws on the canvas. */
  setInteractive(on: boolean): void {
    this.deck.setProps({ controller: on ? { doubleClickZoom: true, inertia: 200 } : false });
  }

  /** Screen pixel (relative to the canvas) → layout coordinates. */
  unproject(x: number, y: number): [number, number] {
    const vp = this.deck.getViewports()[0];
    const p = vp.unproject([x, y]);
    return [p[0], p[1]];
  }

  /** Layout coordinates of cell i → screen pixel relative to the canvas (for tests and tooltips). */
  project(i: number): [number, number] {
    const vp = this.deck.getViewports()[0];
    const p = vp.project([this.positions[2 * i], this.positions[2 * i + 1]]);
    return [p[0], p[1]];
  }

  private render(): void {
    this.version++;
    const radius = this.spacing * 0.5 * this.pointScale;
    const layers: Layer[] = [
      new ScatterplotLayer({
        id: "cells",
        data: {
          length: this.n,
          attributes: {
            getPosition: { value: this.positions, size: 2 },
            getFillColor: { value: this.colors, size: 4, normalized: true },
            getFilterValue: { value: this.visible, size: 1 },
          },
        },
        // a new typed array is a new upload; the version forces one after in-place rewrites
        updateTriggers: { getFillColor: this.version, getFilterValue: this.version, getPosition: this.version },
        radiusUnits: "common",
        getRadius: radius,
        radiusMinPixels: 2,
        radiusMaxPixels: 60,
        opacity: this.opacity,
        pickable: true,
        autoHighlight: true,
        highlightColor: [255, 255, 255, 200],
        extensions: [FILTER],
        filterRange: [0.5, 1.5],
      } as never),
    ];
    if (this.selection.length > 0) {
      layers.push(
        new ScatterplotLayer({
          id: "selection",
          data: { length: this.selection.length / 2, attributes: { getPosition: { value: this.selection, size: 2 } } },
          updateTriggers: { getPosition: this.version },
          radiusUnits: "common",
          getRadius: radius * 1.25,
          radiusMinPixels: 2,
          stroked: true,
          filled: false,
          getLineColor: [255, 255, 255, 190],
          lineWidthUnits: "pixels",
          getLineWidth: 1,
        } as never),
      );
    }
    if (this.quiver && this.quiver.segments.length > 0) {
      layers.push(
        new LineLayer({
          id: "quiver",
          data: {
            length: this.quiver.segments.length / 4,
            attributes: {
              getSourcePosition: { value: this.quiver.segments, size: 2, stride: 16, offset: 0 },
              getTargetPosition: { value: this.quiver.segments, size: 2, stride: 16, offset: 8 },
            },
          },
          updateTriggers: { getSourcePosition: this.version, getTargetPosition: this.version },
          getColor: [255, 255, 255, 230],
          getWidth: 1.6,
          widthUnits: "pixels",
        } as never),
      );
    }
    if (this.links && this.links.segments.length > 0) {
      const segs = this.links.segments;
      layers.push(
        new LineLayer({
          id: "links",
          data: {
            length: segs.length / 4,
            attributes: {
              getSourcePosition: { value: segs, size: 2, stride: 16, offset: 0 },
              getTargetPosition: { value: segs, size: 2, stride: 16, offset: 8 },
              getColor: { value: this.links.colors, size: 4, normalized: true },
              getWidth: { value: this.links.widths, size: 1 },
            },
          },
          updateTriggers: { getSourcePosition: this.version, getColor: this.version, getWidth: this.version },
          widthUnits: "pixels",
        } as never),
      );
    }
    if (this.focus !== null && this.focus < this.n) {
      const p = new Float32Array([this.positions[2 * this.focus], this.positions[2 * this.focus + 1]]);
      layers.push(
        new ScatterplotLayer({
          id: "focus",
          data: { length: 1, attributes: { getPosition: { value: p, size: 2 } } },
          updateTriggers: { getPosition: this.version },
          radiusUnits: "common",
          getRadius: radius * 2,
          radiusMinPixels: 6,
          stroked: true,
          filled: false,
          getLineColor: [255, 214, 10, 255],
          lineWidthUnits: "pixels",
          getLineWidth: 2.5,
        } as never),
      );
    }
    this.deck.setProps({ layers });
  }
}

/**
 * Typical distance between neighbouring cells: √(occupied area / n), the occupied area counted on
 * a √n × √n grid so the empty space between UMAP islands does not inflate it. O(n).
 */
function typicalSpacing(p: Float32Array): number {
  const n = p.length / 2;
  if (n === 0) return 1;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = p[2 * i];
    const y = p[2 * i + 1];
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  // bins of ~4 cells on average: fine enough to skip empty space, coarse enough not to undercount
  const k = Math.max(1, Math.min(1024, Math.round(Math.sqrt(n) / 2)));
  const w = Math.max(x1 - x0, 1e-12);
  const hgt = Math.max(y1 - y0, 1e-12);
  const occupied = new Uint8Array(k * k);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const gx = Math.min(k - 1, Math.floor(((p[2 * i] - x0) / w) * k));
    const gy = Math.min(k - 1, Math.floor(((p[2 * i + 1] - y0) / hgt) * k));
    const c = gy * k + gx;
    if (!occupied[c]) {
      occupied[c] = 1;
      count++;
    }
  }
  return Math.sqrt((count * (w / k) * (hgt / k)) / n);
}
