"""CNN weights of one gene as a NumPy ``.npz``, and a loader back into PyTorch modules.

Written by full mode with ``--save-cnn-weights`` / ``[model_export].save_cnn_weights`` to
``<run>/<output_subdir>/<gene>_cnn_weights.npz`` (``np.savez_compressed`` unless
``compressed_npz = false``); read with :func:`load_cnn_weights` or the standalone
``scripts/load_cnn_weights.py`` (PyTorch + NumPy only).

Layout (no pickled objects: ``np.load(path, allow_pickle=False)`` reads it):

========================  ==============================================================================
key                       value
========================  ==============================================================================
``meta_format``           ``"spacetravlr-cnn-weights/1"``
``meta_gene``             target gene
``meta_modulators``       (M,) modulator names, betadata column order (``beta_<name>``)
``meta_n_modulators``     M
``meta_n_clusters``       K (width of the niche features)
``meta_cluster_labels``   (K,) cluster labels, index = cluster id
``meta_spatial_dim``      D (distance maps are D × D)
``meta_activation``       ``sigmoidx2`` | ``sigmoid`` | ``tanh`` | ``identity``
``meta_map_grid``         ``[xmin, xmax, ymin, ymax]`` of the distance-map grid (bounding box of all cells)
``meta_feature_radius``   ``spatial_feature_radius`` of the niche counts
``meta_feature_min/max``  (K,) min–max scaling constants of the niche counts
``meta_clusters``         (C,) cluster ids with a network in this file
``meta_choice``           (C,) ``cnn`` (its betas are in the betadata) or ``lasso`` (the cluster kept its
                          lasso betas; the network is included for inspection)
``meta_best_epoch``       (C,) epoch whose weights were kept (0 = untrained)
``cNNNN_<param>``         cluster NNNN's ``state_dict()`` entries in PyTorch layout (e.g.
                          ``c0003_conv.conv1.weight`` (16, 1, 3, 3), ``c0003_head.fc2.weight`` (M+1, 64),
                          ``c0003_anchors`` (M+1,))
========================  ==============================================================================
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys
from ..errors import InputError
from ..spatial.niche import MapGrid

FORMAT = "spacetravlr-cnn-weights/1"


def cluster_prefix(cluster: int) -> str:
    """``c0003_`` for cluster 3."""
    return f"c{int(cluster):04d}_"


@dataclass(frozen=True)
class NicheMeta:
    """What turns coordinates and clusters into network inputs (needed to apply weights to new cells)."""

    grid: MapGrid
    feature_radius: float
    feature_min: np.ndarray
    feature_max: np.ndarray
    cluster_labels: Sequence[str]


def cnn_weights_bytes(gene: str, modulators: Sequence[str], activation: str, niche: NicheMeta,
                      fits: Sequence[Any], *, compressed: bool = True) -> bytes:
    """The ``.npz`` of one gene, as bytes (the run writes them atomically).

    Parameters
    ----------
    gene, modulators, activation
        Target gene, modulator names (betadata order) and output activation.
    niche : NicheMeta
        Distance-map grid and niche-feature scaling of the run.
    fits : sequence of :class:`~spacetravlr_py.models.cnn_fit.ClusterCnn`
        The clusters that were trained (their ``state`` is written).
    compressed : bool
        ``np.savez_compressed`` (default) or ``np.savez``.
    """
    arrays: dict[str, np.ndarray] = {
        "meta_format": np.array(FORMAT),
        "meta_gene": np.array(gene),
        "meta_modulators": np.array(list(modulators), dtype=str),
        "meta_n_modulators": np.array(len(modulators), dtype=np.int64),
        "meta_n_clusters": np.array(len(niche.cluster_labels), dtype=np.int64),
        "meta_cluster_labels": np.array([str(c) for c in niche.cluster_labels], dtype=str),
        "meta_spatial_dim": np.array(niche.grid.dim, dtype=np.int64),
        "meta_activation": np.array(activation),
        "meta_map_grid": np.array([niche.grid.xmin, niche.grid.xmax, niche.grid.ymin, niche.grid.ymax]),
        "meta_feature_radius": np.array(float(niche.feature_radius)),
        "meta_feature_min": np.asarray(niche.feature_min, dtype=np.float64),
        "meta_feature_max": np.asarray(niche.feature_max, dtype=np.float64),
        "meta_clusters": np.array([f.cluster for f in fits], dtype=np.int64),
        "meta_choice": np.array([f.choice for f in fits], dtype=str),
        "meta_best_epoch": np.array([f.best_epoch for f in fits], dtype=np.int64),
    }
    for f in fits:
        p = cluster_prefix(f.cluster)
        for k, v in f.state.items():
            arrays[p + k] = np.asarray(v)
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


@dataclass
class CnnWeights:
    """A loaded weights file.

    Attributes
    ----------
    gene : str
    modulators : list of str
    activation : str
    spatial_dim : int
    niche : NicheMeta
    networks : dict of int → CellularNicheNetwork
        Eval-mode networks by cluster id.
    choice : dict of int → str
    """

    gene: str
    modulators: list[str]
    activation: str
    spatial_dim: int
    niche: NicheMeta
    networks: dict[int, Any]
    choice: dict[int, str]

    def inputs(self, coords: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance maps (N, D, D) and scaled niche features (N, K) of cells, as the run computed them.

        ``coords`` must be in the run's coordinate system; ``clusters`` are cluster ids.
        """
        from ..spatial.niche import distance_maps, niche_counts

        maps = distance_maps(coords, self.spatial_dim, grid=self.niche.grid)
        c = niche_counts(coords, clusters, len(self.niche.cluster_labels), self.niche.feature_radius)
        span = self.niche.feature_max - self.niche.feature_min
        f = (c - self.niche.feature_min) / np.where(span > 0, span, 1.0)
        return maps, f.astype(np.float32)

    def betas(self, cluster: int, maps: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Eval-mode betas (N, M + 1) float32 of cluster ``cluster``'s network for the given inputs."""
        from ._torch import torch_runtime
        from .cnn_fit import infer_betas

        if cluster not in self.networks:
            raise InputError(f"weights of gene {self.gene}: no network for cluster {cluster} "
                             f"(present: {sorted(self.networks)})")
        with torch_runtime() as torch:
            m = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).unsqueeze(1)
            f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
            out: np.ndarray = infer_betas(self.networks[cluster], m, f).numpy()
            return out


def _scalar(data: Any, key: str, src: str) -> Any:
    if key not in data.files:
        raise InputError(f"{src}: not a SpaceTravLR CNN weights file (no '{key}'); expected a "
                         "<gene>_cnn_weights.npz written with --save-cnn-weights")
    return data[key][()]


def load_cnn_weights(path: str | os.PathLike[str], *, gene: str | None = None, n_modulators: int | None = None,
                     spatial_dim: int | None = None, n_clusters: int | None = None) -> CnnWeights:
    """Rebuild the eval-mode networks of a ``<gene>_cnn_weights.npz``.

    Parameters
    ----------
    path : path
    gene, n_modulators, spatial_dim, n_clusters : optional
        What the caller expects; a file of another gene or shape raises :class:`InputError` (one line).

    Returns
    -------
    CnnWeights
    """
    from ._torch import require_torch

    require_torch("loading CNN weights")
    from .cnn import CellularNicheNetwork

    src = str(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{src}: CNN weights file not found") from None
    except Exception as e:
        raise InputError(f"{src}: not a readable .npz ({e.__class__.__name__}: {e})") from None
    with data:
        if str(_scalar(data, "meta_format", src)) != FORMAT:
            raise InputError(f"{src}: weights format {_scalar(data, 'meta_format', src)!r}, this version reads "
                             f"{FORMAT!r}")
        g = str(_scalar(data, "meta_gene", src))
        mods = [str(m) for m in data["meta_modulators"]]
        dim = int(_scalar(data, "meta_spatial_dim", src))
        K = int(_scalar(data, "meta_n_clusters", src))
        for what, want, have in (("gene", gene, g), ("n_modulators", n_modulators, len(mods)),
                                 ("spatial_dim", spatial_dim, dim), ("n_clusters", n_clusters, K)):
            if want is not None and want != have:
                raise InputError(f"{src}: weights are for {what} {have!r}, expected {want!r}; "
                                 "pass the file of the right gene/run")
        act = str(_scalar(data, "meta_activation", src))
        grid = data["meta_map_grid"]
        niche = NicheMeta(grid=MapGrid(float(grid[0]), float(grid[1]), float(grid[2]), float(grid[3]), dim),
                          feature_radius=float(_scalar(data, "meta_feature_radius", src)),
                          feature_min=np.array(data["meta_feature_min"]),
                          feature_max=np.array(data["meta_feature_max"]),
                          cluster_labels=[str(c) for c in data["meta_cluster_labels"]])
        nets: dict[int, Any] = {}
        choice: dict[int, str] = {}
        for c, ch in zip(data["meta_clusters"].tolist(), data["meta_choice"].tolist()):
            nets[int(c)] = _network(data, int(c), len(mods), K, act, src, CellularNicheNetwork)
            choice[int(c)] = str(ch)
    return CnnWeights(gene=g, modulators=mods, activation=act, spatial_dim=dim, niche=niche, networks=nets,
                      choice=choice)


def _network(data: Any, cluster: int, n_mods: int, K: int, act: str, src: str, cls: Any) -> Any:
    import torch

    net = cls(n_mods, K, activation=act)
    p = cluster_prefix(cluster)
    state = {k[len(p):]: torch.from_numpy(np.array(data[k])) for k in data.files if k.startswith(p)}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise InputError(f"{src}: cluster {cluster} weights do not fit the network ({detail})") from None
    return net.eval()


def weights_path(out_dir: str | os.PathLike[str], subdir: str, gene: str) -> Path:
    """``<out_dir>/<subdir>/<gene>_cnn_weights.npz``."""
    return Path(out_dir) / subdir / _keys.CNN_WEIGHTS_FILE.format(gene=gene)
