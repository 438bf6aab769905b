"""The Python reference's own full-mode fit, timed per gene (executed by the reference venv's python).

``SpatialCellularProgramsEstimator(...).fit(num_epochs=E, estimator="lasso")`` — its per-cluster group
lasso, then its ``CellularNicheNetwork`` trained for E epochs on ``spatial_dim``² maps (batch 512, its
defaults) — on each target of a training workload. Stubs and shims come from the shared harness
(``../shared/tools/reference/harness.py``): no network access, no wordcloud/pyro.

Usage: <ref-venv>/bin/python _ref_cnn.py HARNESS_DIR H5AD REGULATORS_JSON TARGETS_TXT EPOCHS SPATIAL_DIM
           RADIUS CONTACT OUT_JSON
Prints one JSON line (also written to OUT_JSON): per-gene constructor and fit seconds, cells, clusters.
"""

import json
import sys
import time


class _Quiet:
    """Stands in for the reference's enlighten progress counter."""

    desc = ""

    def update(self, *a, **k):
        pass


def main() -> None:
    hdir, h5ad, regs_json, targets_txt, epochs, dim, radius, contact, out = sys.argv[1:10]
    sys.path.insert(0, hdir)
    import harness

    harness.install_stubs()
    harness.import_ref()
    harness.patch_nichenet(None)
    import anndata as ad
    import torch
    from SpaceTravLR.models.parallel_estimators import SpatialCellularProgramsEstimator

    adata = ad.read_h5ad(h5ad)
    regs = json.load(open(regs_json))
    targets = [t for t in open(targets_txt).read().split() if t]
    per_gene = {}
    t_all = time.perf_counter()
    for g in targets:
        t0 = time.perf_counter()
        est = SpatialCellularProgramsEstimator(
            adata=adata, target_gene=g, spatial_dim=int(dim), cluster_annot="cell_type_int",
            layer="imputed_count", radius=float(radius), contact_distance=float(contact), regulators=regs.get(g, []))
        t1 = time.perf_counter()
        est.fit(num_epochs=int(epochs), threshold_lambda=1e-6, l1_reg=1e-9, estimator="lasso", pbar=_Quiet())
        t2 = time.perf_counter()
        per_gene[g] = {"t_ctor_s": t1 - t0, "t_fit_s": t2 - t1, "n_modulators": len(est.modulators),
                       "clusters_trained": len(est.loss_dict)}
    rec = {"t_total_s": time.perf_counter() - t_all, "per_gene": per_gene, "torch_threads": torch.get_num_threads(),
           "epochs": int(epochs), "spatial_dim": int(dim), "n_cells": int(adata.n_obs), "stubs": sorted(harness.STUBS)}
    json.dump(rec, open(out, "w"))
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
