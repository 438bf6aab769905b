"""In-silico perturbation: set genes to a value in some cells and propagate the change (SPEC §7).

1. ``x0`` = base expression; ``δ_in`` = desired − x0 on the target columns of scoped cells; ``δ = δ_in``;
   ``RW0`` = received ligands at baseline.
2. ``n_propagation`` times:
   a. splash every trained gene on the current state, i.e. the previous step's ``x1`` (first pass: the
      baseline) — LR input: that state's received ligands in seed mode, ``RW0`` under
      ``[compat] mode = "python-reference"``; TF–ligand input: ``RLt0``;
   b. ``x1 = x0 + δ``; received ligands from ``x1`` → ``RW1``;
   c. delta swap on ligand columns: ``δ += (RW1 − RW0) − (x1 − x0)`` (a ligand acts on other cells only
      through the kernel);
   d. ``δ[:, g] = Σ_k splash_g[:, k] · δ[:, mod_k]`` for trained genes, 0 for the others;
   e. targets in scoped cells pinned to ``δ_in`` (python-reference: only where ``δ_in ≠ 0``);
   f. ``x0 + δ`` clipped to ``[0, max observed]`` (``clip="observed_range"``: ``[min, max]``).
3. Result ``x0 + δ`` with the targets set exactly to the desired value in scope.

Steps a and d are one fused numba kernel (no splash matrix is materialised); the received ligands of
step b are computed from the change only (the operator is linear), by the same exact or approximate
strategies as training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .. import _keys
from .._threads import numba_threads
from ..betadata.betabase import Betabase
from ..config import SpaceshipConfig
from ..errors import InputError, near_matches, short_list
from ..io.anndata import Tissue
from ..spatial.radius import ligand_radius
from ..spatial.received import ReceivedOperators
from . import _kernels
from .splash import filtered

log = logging.getLogger("spacetravlr_py.perturb")


@dataclass
class PerturbSettings:
    """The knobs of a perturbation (from ``[spatial]``, ``[perturbation]`` and ``[compat]``)."""

    radius: float = 200.0
    contact_distance: float = 50.0
    per_ligand_radius: bool = False
    kernel: str = "gaussian"
    scale: float = 1.0
    approx_above_cells: int = 15000
    ligand_grid_factor: float | None = None
    beta_scale_factor: float = 1.0
    beta_cap: float | None = None
    n_propagation: int = 4
    clip: str = "zero_to_max"
    reference_compat: bool = False
    received_method: str = "auto"

    @classmethod
    def from_config(cls, cfg: SpaceshipConfig) -> PerturbSettings:
        s, p = cfg.spatial, cfg.perturbation
        return cls(radius=s.radius, contact_distance=s.contact_distance, per_ligand_radius=s.per_ligand_radius,
                   kernel=s.kernel, scale=s.weighted_ligand_scale_factor, approx_above_cells=s.approx_above_cells,
                   ligand_grid_factor=p.ligand_grid_factor, beta_scale_factor=p.beta_scale_factor,
                   beta_cap=p.beta_cap, n_propagation=p.n_propagation, clip=p.clip,
                   reference_compat=cfg.reference_compat)


@dataclass
class PerturbResult:
    """A simulated perturbation.

    Attributes
    ----------
    expression : (N, G) float64
        Simulated expression ``x0 + δ`` (targets exactly at the desired value in scope).
    delta : (N, G) float64
        ``expression − x0``.
    targets, desired : the perturbed genes and their values.
    scope : (N,) bool — cells that received the perturbation.
    timings : seconds per step (``received``, ``propagate``, ``total``...).
    """

    tissue: Tissue
    expression: np.ndarray
    delta: np.ndarray
    targets: list[str]
    desired: list[float]
    scope: np.ndarray
    n_propagation: int
    scope_label: str = "all cells"
    timings: dict[str, float] = field(default_factory=dict)
    steps: list[dict[str, float]] = field(default_factory=list)

    def top_genes(self, n: int = 20, *, include_targets: bool = False) -> list[tuple[str, float]]:
        """Genes ranked by mean |Δ| over all cells."""
        m = np.abs(self.delta).mean(axis=0)
        order = np.argsort(-m, kind="stable")
        out = []
        tset = set(self.targets)
        for j in order:
            g = self.tissue.var_names[j]
            if (g in tset and not include_targets) or m[j] == 0:
                continue
            out.append((g, float(m[j])))
            if len(out) == n:
                break
        return out

    def cluster_impact(self) -> dict[str, float]:
        """Per cluster: mean |Δ| over its cells and all non-target genes."""
        t = self.tissue
        keep = np.array([g not in set(self.targets) for g in t.var_names])
        per_cell = np.abs(self.delta[:, keep]).mean(axis=1) if keep.any() else np.zeros(t.n_cells)
        return {lab: float(per_cell[t.clusters == k].mean()) if (t.clusters == k).any() else 0.0
                for k, lab in enumerate(t.cluster_labels)}

    def summary(self, n_top: int = 20) -> dict[str, Any]:
        """JSON-ready summary: genes, values, scope, top affected genes, per-cluster impact, timings."""
        return {
            "genes": self.targets, "desired_expr": self.desired, "scope": self.scope_label,
            "n_scope_cells": int(self.scope.sum()), "n_cells": int(self.scope.size),
            "n_propagation": self.n_propagation,
            "top_affected_genes": [{"gene": g, "mean_abs_delta": v} for g, v in self.top_genes(n_top)],
            "cluster_mean_abs_delta": self.cluster_impact(),
            "n_genes_changed": int(np.count_nonzero(np.abs(self.delta).max(axis=0) > 0)),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
        }

    def to_frame(self) -> Any:
        """DataFrame: ``CellID`` + every gene (simulated expression)."""
        import pandas as pd

        df = pd.DataFrame(self.expression, columns=self.tissue.var_names)
        df.insert(0, _keys.CELLID_COL, self.tissue.obs_names)
        return df


def resolve_scope(tissue: Tissue, cells: Sequence[Any] | np.ndarray | None = None, *,
                  cell_types: Sequence[str] | None = None, clusters: Sequence[int] | None = None
                  ) -> tuple[np.ndarray, str]:
    """Boolean mask of the perturbed cells and a description.

    ``cells``: obs names, integer positions or a boolean mask; ``cell_types``: labels of the cluster
    column; ``clusters``: cluster ids. Nothing given = all cells. Several given = their intersection.
    """
    n = tissue.n_cells
    mask = np.ones(n, dtype=bool)
    parts: list[str] = []
    if cells is not None:
        arr = np.asarray(cells)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise InputError(f"cell mask has {arr.size} entries, the dataset has {n} cells")
            m = arr
        elif np.issubdtype(arr.dtype, np.integer):
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise InputError(f"cell positions must lie in 0..{n - 1}")
            m = np.zeros(n, dtype=bool)
            m[arr] = True
        else:
            names = [str(c) for c in arr.tolist()]
            idx = {c: i for i, c in enumerate(tissue.obs_names)}
            missing = [c for c in names if c not in idx]
            if missing:
                raise InputError(f"{len(missing)} of {len(names)} cell ids are not obs_names of the dataset "
                                 f"(e.g. {short_list(missing, 3)}); check the cells CSV column")
            m = np.zeros(n, dtype=bool)
            m[[idx[c] for c in names]] = True
        mask &= m
        parts.append(f"{int(m.sum())} listed cells")
    if cell_types is not None:
        labs = {lab: k for k, lab in enumerate(tissue.cluster_labels)}
        bad = [c for c in cell_types if str(c) not in labs]
        if bad:
            raise InputError(f"cell type '{bad[0]}' is not in obs['{tissue.cluster_annot}']"
                             f"{near_matches(str(bad[0]), tissue.cluster_labels)}; types: "
                             f"{short_list(tissue.cluster_labels)}")
        mask &= np.isin(tissue.clusters, [labs[str(c)] for c in cell_types])
        parts.append("cell types " + ", ".join(map(str, cell_types)))
    if clusters is not None:
        bad_ids = [c for c in clusters if not 0 <= int(c) < tissue.n_clusters]
        if bad_ids:
            raise InputError(f"cluster id {bad_ids[0]} out of range 0..{tissue.n_clusters - 1}")
        mask &= np.isin(tissue.clusters, [int(c) for c in clusters])
        parts.append("clusters " + ", ".join(map(str, clusters)))
    if not mask.any():
        raise InputError("the perturbation scope selects no cells")
    return mask, (" ∩ ".join(parts) if parts else "all cells")


class Perturber:
    """Prepared perturbation engine for one tissue and one Betabase (reuse it for many jobs).

    Parameters
    ----------
    tissue : Tissue
        Base expression x0 (``tissue.expression``), coordinates, clusters.
    betabase : Betabase
    settings : PerturbSettings
    ligand_signaling : dict, optional
        CellChat ``signaling`` per ligand (for ``per_ligand_radius``).
    n_threads : int, optional
    """

    def __init__(self, tissue: Tissue, betabase: Betabase, settings: PerturbSettings | None = None, *,
                 ligand_signaling: Mapping[str, str | None] | None = None, n_threads: int | None = None,
                 operators: ReceivedOperators | None = None) -> None:
        self.tissue = tissue
        self.bb = betabase
        self.s = settings or PerturbSettings()
        self.n_threads = n_threads
        t0 = time.perf_counter()
        self.x0 = np.ascontiguousarray(tissue.expression, dtype=np.float64)
        self.flat = betabase.flat()
        self.lig_genes = betabase.ligands()
        self.ligand_signaling = ligand_signaling  # kept: a perturber with other radii is built from it
        self.lig_radius, self._no_received = self._ligand_radii(ligand_signaling)
        s = self.s
        self.operators = operators or ReceivedOperators(
            tissue.coords, kernel=s.kernel, scale=s.scale, method=s.received_method,
            approx_above_cells=s.approx_above_cells, grid_factor=s.ligand_grid_factor, n_threads=n_threads)
        self.lig_col = np.full(tissue.n_genes, -1, dtype=np.int64)
        self.lig_col[self.lig_genes] = np.arange(len(self.lig_genes))
        self.L0 = filtered(self.x0[:, self.lig_genes]) if len(self.lig_genes) else np.zeros((tissue.n_cells, 0))
        self.RW0 = self._received(self.L0)
        self.hi = self.x0.max(axis=0)
        self.lo = self.x0.min(axis=0) if self.s.clip == "observed_range" else np.zeros(tissue.n_genes)
        self.max_mods = int(np.diff(self.flat["mod_ptr"]).max()) if len(betabase) else 0
        self.prepare_seconds = time.perf_counter() - t0
        self.received_info = [i.describe() for i in self.operators.infos()]

    def _ligand_radii(self, signaling: Mapping[str, str | None] | None) -> tuple[np.ndarray, np.ndarray]:
        """Each ligand's radius (the rule of :mod:`spacetravlr_py.spatial.radius`), and the ligands whose
        received amount is 0 under python-reference semantics.

        ``signaling`` maps a ligand to the CellChat class of its first ``lr`` row among the genes, None
        (or absent) when it has none; without it every ligand uses ``radius``.
        """
        s = self.s
        sig = signaling or {}
        radii, no_rl = [], []
        for k, g in enumerate(self.lig_genes):
            name = self.tissue.var_names[g]
            radii.append(ligand_radius(sig.get(name), radius=s.radius, contact_distance=s.contact_distance,
                                       per_ligand_radius=s.per_ligand_radius and signaling is not None))
            # python-reference: a ligand without an LR row among the genes has no radius there, and its
            # received amount is 0 (the reference's received_ligands() fills 0), so it never propagates
            if s.reference_compat and s.per_ligand_radius and signaling is not None and sig.get(name) is None:
                no_rl.append(k)
        return np.array(radii, dtype=np.float64), np.array(no_rl, dtype=np.int64)

    @classmethod
    def from_config(cls, tissue: Tissue, betabase: Betabase, cfg: SpaceshipConfig, *,
                    ligand_signaling: Mapping[str, str | None] | None = None,
                    n_threads: int | None = None) -> Perturber:
        return cls(tissue, betabase, PerturbSettings.from_config(cfg), ligand_signaling=ligand_signaling,
                   n_threads=n_threads)

    def _received(self, L: np.ndarray) -> np.ndarray:
        out = self.operators.apply(L, self.lig_radius, estimate_error=False)
        if self._no_received.size:
            out[:, self._no_received] = 0.0
        return out

    def received_change(self, expression: np.ndarray) -> np.ndarray:
        """(N, n_ligands) change of every ligand's received amount from ``x0`` to ``expression`` (columns
        in :attr:`lig_genes` order), by the kernel the perturbation uses."""
        L1 = filtered(np.asarray(expression)[:, self.lig_genes])
        return self._received(L1 - self.L0) if len(self.lig_genes) else np.zeros((self.tissue.n_cells, 0))

    # -- validation ----------------------------------------------------------------------------

    def _targets(self, genes: str | Sequence[str], desired: float | Sequence[float]) -> tuple[list[str], list[float]]:
        names = [genes] if isinstance(genes, str) else list(genes)
        if not names:
            raise InputError("no gene to perturb")
        try:
            if np.ndim(desired) == 0:
                vals = [float(cast(float, desired))] * len(names)
            else:
                vals = [float(v) for v in cast(Sequence[float], desired)]
        except (TypeError, ValueError):
            raise InputError(f"desired expression must be a number or one number per gene, got {desired!r}") from None
        if len(vals) != len(names):
            raise InputError(f"{len(names)} genes but {len(vals)} desired values; give one value per gene")
        gi = self.tissue.gene_index
        for g in names:
            if g not in gi:
                raise InputError(f"gene '{g}' is not in the dataset{near_matches(g, self.tissue.var_names)}")
        for g, v in zip(names, vals):
            if not np.isfinite(v) or v < 0:
                raise InputError(f"desired expression of {g} must be a finite value >= 0, got {v}")
        if len(set(names)) != len(names):
            raise InputError(f"gene listed twice in {names}")
        return names, vals

    def inert_targets(self, genes: Sequence[str]) -> list[str]:
        """Targets that modulate no trained gene: perturbing them moves nothing but themselves."""
        mods = self.bb.modulator_genes()
        return [g for g in genes if g not in mods]

    # -- the simulation --------------------------------------------------------------------------

    def run(self, genes: str | Sequence[str], desired: float | Sequence[float] = 0.0, *,
            scope: np.ndarray | None = None, scope_label: str = "all cells",
            n_propagation: int | None = None, on_step: Callable[[int, int], None] | None = None) -> PerturbResult:
        """Simulate setting ``genes`` to ``desired`` in the ``scope`` cells (SPEC §7).

        ``on_step(step, n_steps)`` is called after each propagation step (progress); an exception it
        raises aborts the run (cancellation).
        """
        t_start = time.perf_counter()
        names, vals = self._targets(genes, desired)
        n_prop = self.s.n_propagation if n_propagation is None else int(n_propagation)
        if n_prop < 1:
            raise InputError(f"n_propagation must be >= 1, got {n_prop}")
        n = self.tissue.n_cells
        mask = np.ones(n, dtype=bool) if scope is None else np.asarray(scope, dtype=bool)
        if mask.shape != (n,):
            raise InputError(f"scope mask has shape {mask.shape}, the dataset has {n} cells; "
                             "build it with resolve_scope()")
        if not mask.any():
            raise InputError("the perturbation scope selects no cells")
        for g in self.inert_targets(names):
            why = "has no betas and modulates" if g not in self.bb else "modulates"
            log.warning("%s %s no trained gene: perturbing it changes nothing but %s itself", g, why, g)
        gi = self.tissue.gene_index
        tcols = np.array([gi[g] for g in names], dtype=np.int64)
        x0 = self.x0
        delta_in = np.zeros_like(x0)
        for c, v in zip(tcols, vals):
            delta_in[mask, c] = v - x0[mask, c]
        delta = delta_in.copy()
        f = self.flat
        cap = 0.0 if self.s.beta_cap is None else float(self.s.beta_cap)
        RW0 = self.RW0
        RW = RW0
        lig = self.lig_genes
        steps: list[dict[str, float]] = []
        t_recv = t_prop = 0.0
        pin_mask = delta_in != 0 if self.s.reference_compat else None
        out = np.empty_like(x0)
        state = x0  # where derivatives are taken: the previous step's x1 (first pass: baseline)
        x = x0
        for _ in range(n_prop):
            ts = time.perf_counter()
            G = state  # values <= MIN_EXPRESSION read as 0 inside the kernel
            RW_splash = RW0 if self.s.reference_compat else RW
            x1 = x0 + delta
            if len(lig):
                L1 = filtered(x1[:, lig])
                dL = L1 - self.L0
                RW1 = RW0 + self._received(dL)
                delta[:, lig] += (RW1 - RW0) - (x1[:, lig] - x0[:, lig])
            else:
                RW1 = RW0
            tr = time.perf_counter()
            with numba_threads(self.n_threads):
                _kernels.propagate(G, RW_splash, RW0, self.lig_col, delta, f["target"], f["coefs"], f["coef_ptr"],
                                   f["n_cols"], f["mapping_id"], f["mappings"], f["kind_ptr"], f["coef_col"],
                                   f["a"], f["b"], f["slot_a"], f["slot_b"], f["mods"], f["mod_ptr"],
                                   float(self.s.beta_scale_factor), cap, self.max_mods, _keys.MIN_EXPRESSION, out)
            delta, out = out, delta
            if pin_mask is not None:
                delta[pin_mask] = delta_in[pin_mask]
            else:
                for c in tcols:
                    delta[mask, c] = delta_in[mask, c]
            x = np.clip(x0 + delta, self.lo, self.hi)
            delta = x - x0
            RW = RW1
            state = x1
            te = time.perf_counter()
            t_recv += tr - ts
            t_prop += te - tr
            steps.append({"received_s": tr - ts, "propagate_s": te - tr})
            if on_step is not None:
                on_step(len(steps), n_prop)
        # the clipped state itself, not x0 + (x − x0): that sum can land 1 ulp above the observed maximum
        result = x
        for c, v in zip(tcols, vals):
            result[mask, c] = v
        delta = result - x0
        timings = {"received_s": t_recv, "propagate_s": t_prop, "total_s": time.perf_counter() - t_start,
                   "prepare_s": self.prepare_seconds}
        return PerturbResult(tissue=self.tissue, expression=result, delta=delta, targets=names, desired=vals,
                             scope=mask, n_propagation=n_prop, scope_label=scope_label, timings=timings, steps=steps)


def perturb(tissue: Tissue, betabase: Betabase, genes: str | Sequence[str], desired: float | Sequence[float] = 0.0,
            *, cells: Sequence[Any] | np.ndarray | None = None, cell_types: Sequence[str] | None = None,
            clusters: Sequence[int] | None = None, n_propagation: int | None = None,
            settings: PerturbSettings | None = None, config: SpaceshipConfig | None = None,
            ligand_signaling: Mapping[str, str | None] | None = None) -> PerturbResult:
    """Simulate a knockout (``desired=0``), overexpression or any level of ``genes`` (SPEC §7).

    Parameters
    ----------
    tissue : Tissue
        Base expression and coordinates.
    betabase : Betabase
        Trained models (``Betabase.from_dir(run_dir, tissue)``).
    genes, desired : one gene and value, or lists of equal length.
    cells, cell_types, clusters : the scope (default: all cells); see :func:`resolve_scope`.
    n_propagation : int, optional
        Propagation steps (default ``[perturbation].n_propagation``).
    settings, config : kernel and perturbation settings (``settings`` wins).

    Returns
    -------
    PerturbResult
    """
    s = settings or (PerturbSettings.from_config(config) if config is not None else PerturbSettings())
    mask, label = resolve_scope(tissue, cells, cell_types=cell_types, clusters=clusters)
    return Perturber(tissue, betabase, s, ligand_signaling=ligand_signaling).run(
        genes, desired, scope=mask, scope_label=label, n_propagation=n_propagation)
