"""SpaceTravLR for Python: spatial gene regulatory networks and in-silico perturbation.

The public API is imported lazily, so ``import spacetravlr_py`` is cheap and programs start fast.

Pipeline (one subpackage per stage)::

    io/          load & validate: AnnData (Tissue), network tables, betadata files, config
    spatial/     received ligands (exact and approximate kernels)
    modulators   per target gene: TF, L$R, L#TF and extra columns
    models/      sparse group lasso (FISTA, numba)
    training/    the training run: queue, locks, workers, progress, outputs
    betadata/    Betabase: betadata of a run mapped onto cells
    perturb/     splash derivatives and perturbation propagation
    transitions/ transition probabilities and vector fields on the embedding
    plotting     matplotlib figures
    datasets     synthetic tissue with planted ground truth
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    "SpaceshipConfig": "spacetravlr_py.config",
    "load_tissue": "spacetravlr_py.io.anndata",
    "Tissue": "spacetravlr_py.io.anndata",
    "load_network": "spacetravlr_py.io.network",
    "build_network": "spacetravlr_py.io.network_build",
    "infer_species": "spacetravlr_py.io.species",
    "read_betadata": "spacetravlr_py.io.betadata",
    "write_betadata": "spacetravlr_py.io.betadata",
    "BetaFrame": "spacetravlr_py.io.betadata",
    "received_ligands": "spacetravlr_py.spatial.received",
    "synthetic_tissue": "spacetravlr_py.datasets",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'spacetravlr' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
