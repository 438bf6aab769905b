"""The dataset fingerprint recorded in a run's manifest, and the check that a dataset matches it.

Version 3 (``"fingerprint": 3``) hashes the layer's values *as loaded* — the positions and float64
values of the entries above ``min_expression`` (:class:`~spacetravlr_py.io.layer.ValuesHash`) — streamed
from the file in row blocks, so it needs no dense copy of the layer, is the same whichever genes a stage
loaded, and is the same for every storage of the same values (dense or sparse, float32 or float64): the
run's minimal ``.h5ad`` matches the file it was written from. Versions 1 (dense float64 layer) and 2
(stored arrays) hashed something else; against such a manifest only the cell and gene names are compared
(they are hashed the same way in every version).
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys
from ..errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from ..io.anndata import Tissue

FINGERPRINT_VERSION = 3
_cache: dict[tuple[Any, ...], str] = {}
_cache_lock = threading.Lock()


def _layer_sha1(tissue: Tissue) -> str:
    """:class:`~spacetravlr_py.io.layer.ValuesHash` of the layer; memoised per file (path, size,
    modification time, layer, threshold).

    The scan also sees every stored value: a non-finite one anywhere in the layer is the one-line error
    of :meth:`~spacetravlr_py.io.layer.LayerReader.raise_nonfinite` (the columns a stage loads are
    checked as they are read; this covers the rest before a run writes anything).
    """
    from ..io.layer import H5Layer, MemoryLayer, layer_sha1

    src = tissue.reader.source if tissue.reader is not None else MemoryLayer(tissue.expression)
    cut = tissue.reader.min_expression if tissue.reader is not None else _keys.MIN_EXPRESSION
    key: tuple[Any, ...] | None = None
    if isinstance(src, H5Layer):
        st = os.stat(src.path)
        key = (str(src.path), st.st_size, st.st_mtime_ns, src.key, cut)
        with _cache_lock:
            if key in _cache:
                return _cache[key]
    digest, bad = layer_sha1(src, cut)
    if tissue.reader is not None:
        tissue.reader.raise_nonfinite(bad)
    if key is not None:
        with _cache_lock:
            _cache[key] = digest
    return digest


def dataset_fingerprint(tissue: Tissue) -> dict[str, Any]:
    """Shape, a hash of cell and gene names and a hash of the data (coordinates, stored layer, clusters).

    Detects a run folder of another dataset, including a same-shaped one. The genes are the whole panel
    (loaded or not) and the layer is hashed from its source, so the result does not depend on which
    columns ``tissue`` holds.
    """
    h = hashlib.sha1()
    h.update("\n".join(map(str, tissue.obs_names)).encode())
    h.update(b"\0")
    h.update("\n".join(tissue.all_genes).encode())
    d = hashlib.sha1()
    d.update(np.ascontiguousarray(tissue.coords, dtype=np.float64).tobytes())
    d.update(_layer_sha1(tissue).encode())
    d.update(np.ascontiguousarray(tissue.clusters, dtype=np.int64).tobytes())
    return {"fingerprint": FINGERPRINT_VERSION, "path": str(tissue.path) if tissue.path else None,
            "n_obs": tissue.n_cells, "n_vars": tissue.n_panel_genes, "names_sha1": h.hexdigest(),
            "data_sha1": d.hexdigest()}


def check_same_dataset(recorded: dict[str, Any], tissue: Tissue, *, where: Path, what: str) -> None:
    """Raise one line when ``tissue`` is not the dataset ``recorded`` (names always; the data hash too
    when both sides have one of the same fingerprint version).

    ``where`` is the manifest file, ``what`` completes "…were trained on another dataset; ``what``".
    """
    if not recorded or not isinstance(recorded, dict):  # none, or another program's manifest (the seed's)
        return
    now = dataset_fingerprint(tissue)
    same_version = recorded.get("fingerprint", 1) == now["fingerprint"]
    for key, kind in (("names_sha1", "cell or gene names"), ("data_sha1", "expression or coordinates")):
        if key == "data_sha1" and not same_version:
            continue
        if recorded.get(key) and now.get(key) and recorded[key] != now[key]:
            same_shape = (recorded.get("n_obs"), recorded.get("n_vars")) == (now["n_obs"], now["n_vars"])
            detail = f"same shape, different {kind}" if same_shape else f"{now['n_obs']} × {now['n_vars']}"
            raise InputError(f"{where}: the run in {where.parent} was trained on another dataset "
                             f"({recorded.get('n_obs')} cells × {recorded.get('n_vars')} genes; "
                             f"{tissue.path or 'the dataset given'} has {detail}); {what}")
