"""The dataset fingerprint recorded in a run's manifest, and the check that a dataset matches it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from ..io.anndata import Tissue


def dataset_fingerprint(tissue: Tissue) -> dict[str, Any]:
    """Shape, a hash of cell and gene names and a hash of the data (coordinates, layer, clusters).

    Detects a run folder of another dataset, including a same-shaped one.
    """
    h = hashlib.sha1()
    h.update("\n".join(map(str, tissue.obs_names)).encode())
    h.update(b"\0")
    h.update("\n".join(tissue.var_names).encode())
    d = hashlib.sha1()
    d.update(np.ascontiguousarray(tissue.coords, dtype=np.float64).tobytes())
    d.update(np.ascontiguousarray(tissue.expression, dtype=np.float64).tobytes())
    d.update(np.ascontiguousarray(tissue.clusters, dtype=np.int64).tobytes())
    return {"path": str(tissue.path) if tissue.path else None, "n_obs": tissue.n_cells,
            "n_vars": tissue.n_genes, "names_sha1": h.hexdigest(), "data_sha1": d.hexdigest()}


def check_same_dataset(recorded: dict[str, Any], tissue: Tissue, *, where: Path, what: str) -> None:
    """Raise one line when ``tissue`` is not the dataset ``recorded`` (names always; the data hash too
    when both sides have one).

    ``where`` is the manifest file, ``what`` completes "…were trained on another dataset; ``what``".
    """
    if not recorded or not isinstance(recorded, dict):  # none, or another program's manifest (the seed's)
        return
    now = dataset_fingerprint(tissue)
    for key, kind in (("names_sha1", "cell or gene names"), ("data_sha1", "expression or coordinates")):
        if recorded.get(key) and now.get(key) and recorded[key] != now[key]:
            same_shape = (recorded.get("n_obs"), recorded.get("n_vars")) == (now["n_obs"], now["n_vars"])
            detail = f"same shape, different {kind}" if same_shape else f"{now['n_obs']} × {now['n_vars']}"
            raise InputError(f"{where}: the run in {where.parent} was trained on another dataset "
                             f"({recorded.get('n_obs')} cells × {recorded.get('n_vars')} genes; "
                             f"{tissue.path or 'the dataset given'} has {detail}); {what}")
