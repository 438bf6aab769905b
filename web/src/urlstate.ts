// The shareable part of the view lives in the URL query: layout, colouring and its gene(s), point
// size. Reloading or sending the link reproduces the view (Δ colouring only while the server still
// holds that perturbation).

export type Layout = "spatial" | "umap";
export type ColourMode = "celltype" | "gene" | "beta" | "delta";

export interface UrlState {
  layout: Layout;
  colour: ColourMode;
  gene: string | null;
  betaGene: string | null;
  betaColumn: string | null;
  deltaGene: string | null;
  size: number;
}

const MODES: ColourMode[] = ["celltype", "gene", "beta", "delta"];

export function readUrl(): UrlState {
  const p = new URLSearchParams(window.location.search);
  const colour = p.get("colour") ?? p.get("color");
  const size = Number(p.get("size"));
  return {
    layout: p.get("layout") === "umap" ? "umap" : "spatial",
    colour: MODES.includes(colour as ColourMode) ? (colour as ColourMode) : "celltype",
    gene: p.get("gene"),
    betaGene: p.get("beta"),
    betaColumn: p.get("coef"),
    deltaGene: p.get("delta"),
    size: Number.isFinite(size) && size > 0 ? size : 1,
  };
}

export function writeUrl(s: UrlState): void {
  const p = new URLSearchParams();
  p.set("layout", s.layout);
  p.set("colour", s.colour);
  if (s.gene) p.set("gene", s.gene);
  if (s.colour === "beta" && s.betaGene) p.set("beta", s.betaGene);
  if (s.colour === "beta" && s.betaColumn) p.set("coef", s.betaColumn);
  if (s.colour === "delta" && s.deltaGene) p.set("delta", s.deltaGene);
  if (s.size !== 1) p.set("size", String(s.size));
  const url = `${window.location.pathname}?${p.toString()}`;
  if (url !== `${window.location.pathname}${window.location.search}`) window.history.replaceState(null, "", url);
}
