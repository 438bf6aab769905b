"""Full-mode fits on arrays: one CNN per (gene, cluster) refining the cluster lasso (SPEC §5.2).

Everything here takes NumPy arrays and a :class:`CnnSettings`; torch is imported inside the functions
that train (``pip install 'spacetravlr-py[full]'``), so this module itself imports without it.

Per cluster with ``n`` cells:

1. **Held-out split** (:func:`holdout_split`): ``round(holdout_fraction · n)`` cells, drawn by a
   generator seeded with ``(random_seed, cluster index)`` (the same cells for every gene), in two
   halves: *validation* cells choose the epoch (early stopping), *test* cells judge lasso against CNN
   and give the reported held-out R². (Judging on the cells that chose the epoch favours the CNN: on
   tissues without any spatial signal it then "beat" the lasso in every cluster, by noise.) Fewer than
   :data:`MIN_HOLDOUT_CELLS` cells in a half → no held-out cells: the cluster is trained on every cell,
   without early stopping, and judged in-sample (warned).
2. **Anchors**: the sparse group lasso of the cluster refitted on its training cells only, so that the
   lasso and the CNN are judged on cells neither has seen.
3. **CNN**: :class:`~spacetravlr_py.models.cnn.CellularNicheNetwork` started at the anchors, Adam with
   every ``[cnn]`` setting, ``epochs`` passes in shuffled mini-batches of the training cells. After each
   epoch the validation MSE is measured in eval mode; the best epoch's weights are kept (epoch 0 = the
   untrained network = the lasso) and training stops after ``patience`` epochs without improvement.
4. **Choice** (keep-lasso rule): the CNN's betas are used only when it improved on the lasso on the
   validation cells *and* its R² on the test cells beats the lasso's; otherwise the cluster keeps the
   seed lasso betas. Clusters the seed R² gate zeroes stay zero.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

MIN_HOLDOUT_CELLS = 5
"""A cluster is judged on held-out cells only when each half of them (validation, test) and its training
set have at least this many cells; smaller clusters are trained and judged in-sample."""
INFER_CHUNK = 1024
"""Cells per forward pass when computing betas (fixed, so results never depend on the machine)."""
CHOICE_CNN, CHOICE_LASSO = "cnn", "lasso"


class CnnDiverged(RuntimeError):
    """The CNN loss became NaN or infinite: the gene fails with this message, the run goes on."""


@dataclass(frozen=True)
class CnnSettings:
    """Hyperparameters of the full-mode fits (``[training]``, ``[cnn]``, ``[execution]``).

    Attributes
    ----------
    epochs : int
        Full passes over each cluster's training cells (``[training].epochs``), ≥ 1.
    learning_rate : float
        Adam step size (``[training].learning_rate``).
    batch_size : int
        Cells per optimiser step (``[cnn].batch_size``); an epoch's cells are split into
        ``ceil(n / batch_size)`` batches of near-equal size (no straggler batch of one cell).
    adam_beta_1, adam_beta_2, adam_epsilon, weight_decay
        ``torch.optim.Adam(betas=(β1, β2), eps=ε, weight_decay=λ)``; ``weight_decay`` None = 0.
    grad_clip_norm : float or None
        Clip the global gradient 2-norm to this value before each step (None = no clipping).
    output_activation : str
        ``sigmoidx2`` | ``sigmoid`` | ``tanh`` | ``identity``.
    holdout_fraction : float
        Fraction of each cluster's cells held out (0 = none: every cluster in-sample).
    patience : int
        Stop after this many epochs without a better validation loss (0 = run every epoch).
    device : str
        A resolved torch device (``cpu``, ``cuda``, ``mps``).
    random_seed : int
        ``[execution].random_seed``: initial weights, batch order and held-out cells derive from it.
    """

    epochs: int = 10
    learning_rate: float = 1e-3
    batch_size: int = 64
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-5
    weight_decay: float | None = None
    grad_clip_norm: float | None = None
    output_activation: str = "sigmoidx2"
    holdout_fraction: float = 0.1
    patience: int = 5
    device: str = "cpu"
    random_seed: int = 42

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"[training].epochs = {self.epochs}: full mode trains for at least 1 epoch; "
                              "set --epochs 1 or more")
        if self.batch_size < 1:
            raise ConfigError(f"[cnn].batch_size = {self.batch_size}: expected an integer >= 1")
        if not 0.0 <= self.holdout_fraction <= 0.5:
            raise ConfigError(f"[cnn].holdout_fraction = {self.holdout_fraction}: expected a number in [0, 0.5]")

    @classmethod
    def from_config(cls, cfg: Any, *, device: str = "cpu") -> CnnSettings:
        """From a :class:`~spacetravlr_py.config.SpaceshipConfig` (``device`` already resolved)."""
        c = cfg.cnn
        return cls(epochs=cfg.training.epochs, learning_rate=cfg.training.learning_rate,
                   batch_size=c.batch_size, adam_beta_1=c.adam_beta_1, adam_beta_2=c.adam_beta_2,
                   adam_epsilon=c.adam_epsilon, weight_decay=c.weight_decay, grad_clip_norm=c.grad_clip_norm,
                   output_activation=c.output_activation, holdout_fraction=c.holdout_fraction,
                   patience=c.patience, device=device, random_seed=cfg.execution.random_seed)


@dataclass(frozen=True)
class Split:
    """Positions (sorted) of a cluster's cells: ``train``, ``val`` (early stopping), ``test`` (judging)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def held(self) -> np.ndarray:
        """Validation and test cells together (sorted)."""
        return np.sort(np.concatenate([self.val, self.test]))

    @property
    def has_heldout(self) -> bool:
        return self.test.size > 0


def holdout_split(n: int, fraction: float, random_seed: int, cluster: int) -> Split:
    """Training, validation and test positions among a cluster's ``n`` cells.

    ``round(fraction · n)`` cells are drawn by ``default_rng(SeedSequence([random_seed, cluster]))``; the
    first half of the draw validates, the rest tests. No held-out cells (every cell trains) when a half or
    the training set would have fewer than :data:`MIN_HOLDOUT_CELLS` cells.
    """
    n_hold = int(round(fraction * n))
    n_val = n_hold // 2
    empty = np.zeros(0, dtype=np.int64)
    if n_val < MIN_HOLDOUT_CELLS or n - n_hold < MIN_HOLDOUT_CELLS:
        return Split(np.arange(n, dtype=np.int64), empty, empty.copy())
    perm = np.random.default_rng(np.random.SeedSequence([int(random_seed), int(cluster)])).permutation(n)
    return Split(np.sort(perm[n_hold:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64),
                 np.sort(perm[n_val:n_hold]).astype(np.int64))


def fit_seeds(random_seed: int, gene: str, cluster: int) -> tuple[int, int]:
    """``(torch seed, batch-order seed)`` of one (gene, cluster), from ``SeedSequence``."""
    s = np.random.SeedSequence([int(random_seed), zlib.crc32(gene.encode("utf-8")), int(cluster)])
    a, b = (int(v) for v in s.generate_state(2, dtype=np.uint64))
    return a & 0x7FFF_FFFF_FFFF_FFFF, b


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """``1 − SS_res/SS_tot`` in float64; 0 when ``y`` is constant or empty; nan when ``pred`` is not finite."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if y.size == 0:
        return 0.0
    if not np.all(np.isfinite(pred)):
        return math.nan
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 0.0
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot


def predict_rows(X: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """``ŷ_i = betas[i, 0] + Σ_k betas[i, k + 1] X[i, k]`` in float64."""
    b = np.asarray(betas, dtype=np.float64)
    return b[:, 0] + np.einsum("ij,ij->i", np.asarray(X, dtype=np.float64), b[:, 1:])


@dataclass
class ClusterCnn:
    """One cluster's full-mode fit.

    Attributes
    ----------
    cluster : int
        Cluster index.
    n_train, n_val, n_test : int
        Cells used for training, validation (early stopping) and test (judging); ``n_test == 0``: the
        cluster was judged in-sample.
    epochs_run, best_epoch : int
        Epochs trained and the epoch whose weights were kept (0 = the untrained network = the lasso).
    train_loss : list of float
        Mean training MSE per epoch (train mode, as optimised).
    val_loss : list of float
        Validation MSE (eval mode) for epochs 0..epochs_run; empty without held-out cells.
    r2 : dict
        ``{"lasso_in", "cnn_in", "lasso_heldout", "cnn_heldout"}``: in-sample = the training cells,
        held-out = the test cells (nan without held-out cells).
    choice : str
        ``"cnn"`` or ``"lasso"`` (keep-lasso rule).
    betas : (n, M + 1) float32
        The network's eval-mode betas of every cell of the cluster (in the cluster's cell order).
    anchors : (M + 1,) float64
        ``[beta0, w]`` of the lasso refitted on the training cells.
    state : dict of str → ndarray
        The kept weights (``state_dict`` on the CPU, float32), for export.
    seconds : float
    """

    cluster: int
    n_train: int
    n_val: int
    n_test: int
    epochs_run: int
    best_epoch: int
    train_loss: list[float]
    val_loss: list[float]
    r2: dict[str, float]
    choice: str
    betas: np.ndarray
    anchors: np.ndarray
    state: dict[str, np.ndarray] = field(repr=False)
    seconds: float = 0.0


@dataclass
class _Tensors:
    maps: Any
    x: Any
    feats: Any
    y: Any


def _tensors(torch: Any, maps: np.ndarray, feats: np.ndarray, X: np.ndarray, y: np.ndarray, device: str) -> _Tensors:
    f32 = np.float32
    return _Tensors(
        maps=torch.from_numpy(np.ascontiguousarray(maps, dtype=f32)).unsqueeze(1).to(device),
        x=torch.from_numpy(np.ascontiguousarray(X, dtype=f32)).to(device),
        feats=torch.from_numpy(np.ascontiguousarray(feats, dtype=f32)).to(device),
        y=torch.from_numpy(np.ascontiguousarray(y, dtype=f32)).to(device))


def infer_betas(net: Any, maps: Any, feats: Any, chunk: int = INFER_CHUNK) -> Any:
    """Eval-mode betas of every row, in fixed chunks (a cell's betas never depend on the others)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, maps.shape[0], chunk):
            out.append(net.get_betas(maps[s:s + chunk], feats[s:s + chunk]))
    if not out:
        return torch.zeros((0, net.n_modulators + 1), device=net.anchors.device)
    return torch.cat(out)


def _heldout_mse(net: Any, t: _Tensors, idx: Any) -> float:
    b = infer_betas(net, t.maps[idx], t.feats[idx])
    return float(((net.predict(t.x[idx], b) - t.y[idx]) ** 2).mean())


def _epoch(torch: Any, net: Any, opt: Any, t: _Tensors, order: np.ndarray, s: CnnSettings, where: str) -> float:
    """One pass over ``order`` in near-equal mini-batches; mean MSE; raises :class:`CnnDiverged`."""
    net.train()
    total = 0.0
    n_batches = max(1, math.ceil(order.size / s.batch_size))
    for b in np.array_split(order, n_batches):
        bi = torch.from_numpy(b).to(t.maps.device)
        opt.zero_grad(set_to_none=True)
        loss = ((net(t.maps[bi], t.x[bi], t.feats[bi]) - t.y[bi]) ** 2).mean()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise CnnDiverged(f"{where}: CNN loss became {value} (learning rate {s.learning_rate:g}); lower "
                              "--lr, set [cnn].grad_clip_norm, or check the inputs for extreme values")
        loss.backward()
        if s.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=s.grad_clip_norm)
        opt.step()
        total += value * b.size
    return total / max(order.size, 1)


def fit_cluster_cnn(maps: np.ndarray, feats: np.ndarray, X: np.ndarray, y: np.ndarray, anchors: np.ndarray,
                    split: Split, settings: CnnSettings, *, gene: str = "", cluster: int = 0,
                    where: str = "") -> ClusterCnn:
    """Train one cluster's CNN and apply the keep-lasso rule.

    Parameters
    ----------
    maps : (n, D, D) float32
        The cluster's distance maps.
    feats : (n, K) float32
        Its niche features.
    X : (n, M) and y : (n,)
        Modulator values and target expression.
    anchors : (M + 1,)
        ``[beta0, w]`` of the lasso fitted on ``split.train``.
    split : Split
        Positions (into the n cells) that train, validate and test (``val``/``test`` may be empty).
    settings : CnnSettings
    gene, cluster
        Seed the weights and the batch order (:func:`fit_seeds`).
    where : str
        Names the fit in error messages.

    Returns
    -------
    ClusterCnn
    """
    from ._torch import torch_runtime

    t0 = time.perf_counter()
    with torch_runtime() as torch:
        from .cnn import CellularNicheNetwork

        s = settings
        seed_torch, seed_order = fit_seeds(s.random_seed, gene, cluster)
        torch.manual_seed(seed_torch)
        net = CellularNicheNetwork(X.shape[1], feats.shape[1], anchors=np.asarray(anchors, dtype=np.float32),
                                   activation=s.output_activation).to(s.device)
        opt = torch.optim.Adam(net.parameters(), lr=s.learning_rate, betas=(s.adam_beta_1, s.adam_beta_2),
                               eps=s.adam_epsilon, weight_decay=s.weight_decay or 0.0)
        t = _tensors(torch, maps, feats, X, y, s.device)
        val = torch.from_numpy(split.val).to(s.device)
        rng = np.random.default_rng(seed_order)
        train_loss: list[float] = []
        val_loss: list[float] = [_heldout_mse(net, t, val)] if split.val.size else []
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        best_epoch, best, wait = 0, val_loss[0] if val_loss else math.inf, 0
        for epoch in range(1, s.epochs + 1):
            train_loss.append(_epoch(torch, net, opt, t, rng.permutation(split.train), s,
                                     f"{where} epoch {epoch}" if where else f"epoch {epoch}"))
            if not split.val.size:
                best_epoch = epoch
                continue
            val_loss.append(_heldout_mse(net, t, val))
            if val_loss[-1] < best:
                best, best_epoch, wait = val_loss[-1], epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                wait += 1
                if s.patience and wait >= s.patience:
                    break
        if split.val.size:
            net.load_state_dict(best_state)
        betas = infer_betas(net, t.maps, t.feats).cpu().numpy()
        state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
    r2, choice = _judge(X, y, anchors, betas, split, best_epoch)
    return ClusterCnn(cluster=cluster, n_train=int(split.train.size), n_val=int(split.val.size),
                      n_test=int(split.test.size), epochs_run=len(train_loss), best_epoch=best_epoch,
                      train_loss=train_loss, val_loss=val_loss, r2=r2, choice=choice, betas=betas,
                      anchors=np.asarray(anchors, dtype=np.float64), state=state, seconds=time.perf_counter() - t0)


def _judge(X: np.ndarray, y: np.ndarray, anchors: np.ndarray, betas: np.ndarray, split: Split,
           best_epoch: int) -> tuple[dict[str, float], str]:
    """R² of lasso and CNN on the training cells and on the test cells; the keep-lasso rule."""
    a = np.asarray(anchors, dtype=np.float64)
    lasso = a[0] + np.asarray(X, dtype=np.float64) @ a[1:]
    cnn = predict_rows(X, betas)
    tr, te = split.train, split.test
    r2 = {"lasso_in": r2_score(y[tr], lasso[tr]), "cnn_in": r2_score(y[tr], cnn[tr]),
          "lasso_heldout": math.nan, "cnn_heldout": math.nan}
    if te.size:
        r2["lasso_heldout"] = r2_score(y[te], lasso[te])
        r2["cnn_heldout"] = r2_score(y[te], cnn[te])
        key = "heldout"
    else:
        key = "in"
    # best_epoch 0: no epoch improved on the lasso (on validation cells); nan compares False: lasso kept
    wins = best_epoch > 0 and r2[f"cnn_{key}"] > r2[f"lasso_{key}"]
    return r2, CHOICE_CNN if wins else CHOICE_LASSO


# ----------------------------------------------------------------------------------------------
# one gene, every cluster
# ----------------------------------------------------------------------------------------------


@dataclass
class GeneCells:
    """One gene's full-mode fit.

    Attributes
    ----------
    betas : (N, M + 1) float64
        Per-cell betas in the input cell order: the CNN's where it won, the seed lasso's row where the
        lasso was kept, zeros in gated clusters.
    clusters : list of ClusterCnn or None
        Per cluster index; None when the cluster was gated (zero rows) or had no cells.
    anchors : (K, M + 1) float64
        Lasso ``[beta0, w]`` refitted on each cluster's training cells (zeros when not fitted).
    """

    betas: np.ndarray
    clusters: list[ClusterCnn | None]
    anchors: np.ndarray


def fit_gene_cells(gene: str, maps: np.ndarray, feats: np.ndarray, X: np.ndarray, y: np.ndarray,
                   clusters: np.ndarray, seed_intercept: np.ndarray, seed_coef: np.ndarray,
                   seed_kept: np.ndarray, groups: Sequence[int] | np.ndarray, lasso: Mapping[str, Any],
                   settings: CnnSettings, *, labels: Sequence[str] | None = None) -> GeneCells:
    """Full mode for one gene on arrays: held-out split, anchors, one CNN per kept cluster, choice.

    Parameters
    ----------
    gene : str
        Target gene (seeds the fits, names errors).
    maps : (N, D, D) float32
        Distance maps of every cell (:func:`~spacetravlr_py.spatial.niche.distance_maps`).
    feats : (N, K) float32
        Niche features (:func:`~spacetravlr_py.spatial.niche.niche_features`).
    X : (N, M), y : (N,)
        Modulator values and target expression.
    clusters : (N,) int
        Cluster index of each cell, ``0..K-1``.
    seed_intercept, seed_coef, seed_kept : (K,), (K, M), (K,) bool
        The seed-mode fit on all cells: its betas (kept where the CNN loses) and its R² gate.
    groups : (M,) int
        Modulator families (for the lasso refit).
    lasso : mapping
        ``l1_reg``, ``group_reg``, ``group_reg_scaling``, ``n_iter``, ``tol`` of the sparse group lasso.
    settings : CnnSettings
    labels : list of str, optional
        Cluster labels for messages.
    """
    from .fista import fit_clusters

    K = int(seed_intercept.shape[0])
    cl = np.asarray(clusters, dtype=np.int64)
    members = [np.flatnonzero(cl == k) for k in range(K)]
    splits = [holdout_split(m.size, settings.holdout_fraction, settings.random_seed, k)
              for k, m in enumerate(members)]
    train_mask = np.ones(cl.size, dtype=bool)
    for m, sp in zip(members, splits):
        train_mask[m[sp.held]] = False
    refit = fit_clusters(X[train_mask], y[train_mask], cl[train_mask], np.asarray(groups), score_threshold=-np.inf,
                         n_clusters=K, n_threads=1, **lasso)
    anchors = np.column_stack([refit.intercept, refit.coef])
    betas = np.zeros((cl.size, X.shape[1] + 1))
    out: list[ClusterCnn | None] = [None] * K
    for k, m in enumerate(members):
        if not seed_kept[k] or m.size == 0:
            continue
        lab = labels[k] if labels is not None else str(k)
        res = fit_cluster_cnn(maps[m], feats[m], X[m], y[m], anchors[k], splits[k], settings, gene=gene,
                              cluster=k, where=f"gene {gene}, cluster '{lab}'")
        out[k] = res
        if res.choice == CHOICE_CNN:
            betas[m] = res.betas
        else:
            betas[m, 0] = seed_intercept[k]
            betas[m, 1:] = seed_coef[k]
    return GeneCells(betas=betas, clusters=out, anchors=anchors)
