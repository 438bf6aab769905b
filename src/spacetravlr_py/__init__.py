"""SpaceTravLR for Python: spatial gene regulatory networks and in-silico perturbation.

The public API is imported lazily, so ``import spacetravlr_py`` is cheap and programs start fast.

>>> import spacetravlr_py as st
>>> syn = st.datasets.synthetic_tissue(n_cells=2000)            # doctest: +SKIP
>>> run = st.train(cfg)                                         # doctest: +SKIP
>>> session = st.RunSession.open(run.run_dir)                   # doctest: +SKIP
>>> result = session.run("Foxo1", 0.0)                          # doctest: +SKIP
>>> st.pl.spatial_delta(session.tissue.coords, result.delta, var_names=session.tissue.var_names,
...                    gene="Cd19")                               # doctest: +SKIP

Pipeline (one subpackage per stage)::

    io/          load & validate: AnnData (Tissue), network tables, atomic writes
    spatial/     received ligands (exact and approximate kernels), the per-ligand radius rule
    modulators   per target gene: TF, L$R, L#TF and extra columns
    models/      sparse group lasso (FISTA, numba)
    training/    the training run: trainers, executors, reporters, train()
    rundir/      the run folder: paths, locks, fingerprint, manifest, open_run()
    betadata/    BetaFrame (one gene's betas, files) and Betabase (a run's betadata mapped onto cells)
    perturbation/ splash derivatives and perturbation propagation, RunSession, batch, screen
    transitions/ transition probabilities and vector fields on the embedding
    plotting     matplotlib figures (``st.pl``)
    datasets     synthetic tissue with planted ground truth (``st.datasets``)
    report       the HTML report of a run (``st.report``), a perturbation's field outputs
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (the verbs of the pipeline, scverse style)
_LAZY: dict[str, str] = {
    # configuration and inputs
    "SpaceshipConfig": "spacetravlr_py.config",
    "load_tissue": "spacetravlr_py.io.anndata",
    "Tissue": "spacetravlr_py.io.anndata",
    "load_network": "spacetravlr_py.io.network",
    "build_network": "spacetravlr_py.io.network_build",
    "infer_species": "spacetravlr_py.io.species",
    # received ligands
    "received_ligands": "spacetravlr_py.spatial.received",
    # training and run folders
    "train": "spacetravlr_py.training",
    "open_run": "spacetravlr_py.rundir",
    "RunDir": "spacetravlr_py.rundir",
    "Manifest": "spacetravlr_py.rundir",
    # betadata
    "read_betadata": "spacetravlr_py.betadata",
    "write_betadata": "spacetravlr_py.betadata",
    "BetaFrame": "spacetravlr_py.betadata",
    "Betabase": "spacetravlr_py.betadata",
    # splash and perturbation
    "splash": "spacetravlr_py.perturbation",
    "perturb": "spacetravlr_py.perturbation",
    "Perturber": "spacetravlr_py.perturbation",
    "RunSession": "spacetravlr_py.perturbation.session",
    "compare_conditions": "spacetravlr_py.perturbation.compare",
    "list_conditions": "spacetravlr_py.perturbation.compare",
    # transitions
    "transition_field": "spacetravlr_py.transitions",
    # synthetic data
    "synthetic_tissue": "spacetravlr_py.datasets",
}
#: public submodules: ``st.pl`` (plots), ``st.datasets``, ``st.report`` (the run report)
_SUBMODULES: dict[str, str] = {"pl": "spacetravlr_py.plotting", "datasets": "spacetravlr_py.datasets",
                                "report": "spacetravlr_py.report"}

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module: Any = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
