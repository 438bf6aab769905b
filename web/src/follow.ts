// The shared view (GET /api/view, docs/viewer.md): an assistant (spacetravlr mcp's show_in_viewer) sets
// the layout, the colouring and its gene on the server; the page polls the view and applies each newer
// version, so the human sees what the assistant talks about. The user's own clicks stay free between
// versions.
import { getF32, getJSON, q } from "./api";
import type { App } from "./app";
import type { PerturbPanel } from "./perturb";
import type { SharedView } from "./types";
import { reportError, sleep, toast } from "./ui";

const POLL_MS = 1000;

export class ViewFollower {
  /** version of the last view applied (0 = none yet) */
  applied = 0;
  private generation = 0;

  constructor(
    private readonly app: App,
    private readonly perturb: PerturbPanel,
  ) {}

  /** Poll until the next start() (a new dataset restarts it). */
  async start(): Promise<void> {
    const mine = ++this.generation;
    while (mine === this.generation) {
      try {
        const v = await getJSON<SharedView>("view");
        if (v.version > this.applied) {
          this.applied = v.version;
          await this.apply(v);
        }
      } catch {
        // the server restarts or the dataset reloads: try again at the next tick
      }
      await sleep(POLL_MS);
    }
  }

  private async apply(v: SharedView): Promise<void> {
    const app = this.app;
    try {
      if (v.layout && v.layout !== app.state.layout) app.setLayout(v.layout);
      if (v.colour === "gene" && v.gene) await app.setColour("gene", { gene: v.gene });
      else if (v.colour === "beta" && v.beta_gene) {
        Object.assign(app.state, { betaGene: v.beta_gene, betaColumn: v.beta_column });
        await app.fillBetaSelects();
        await app.setColour("beta");
      } else if (v.colour === "delta" && v.perturbation && v.delta_gene) {
        this.adopt(v.perturbation);
        await this.perturb.showDelta(v.delta_gene);
      } else if (v.colour === "celltype") await app.setColour("celltype");
      if (v.message) toast(v.source ? `${v.source}: ${v.message}` : v.message, "info");
    } catch (e) {
      reportError("Shared view", e);
    }
  }

  /** Colour by the server's last perturbation even when this page did not run it. */
  private adopt(p: NonNullable<SharedView["perturbation"]>): void {
    const cur = this.app.perturb;
    if (cur && cur.gene === p.gene && cur.scopeLabel === p.scope && cur.desired === p.desired_expr) return;
    const n = this.app.n;
    const cache = new Map<string, Float32Array>();
    this.app.perturb = {
      gene: p.gene,
      desired: p.desired_expr,
      scopeLabel: p.scope,
      nScoped: p.n_scope_cells,
      genes: p.genes,
      delta: cache,
      fetchDelta: async (gene: string) => {
        const hit = cache.get(gene);
        if (hit) return hit;
        const values = await getF32(`perturb/delta?${q({ gene })}`, n);
        cache.set(gene, values);
        return values;
      },
    };
  }
}
