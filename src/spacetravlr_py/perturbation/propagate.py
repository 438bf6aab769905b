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

Memory: the state is held over the *state genes* only — the trained genes and every gene their models
read (TFs, ligands, receptors) — never over the whole panel: genes outside the models cannot change
(Δ = 0). Two float64 (cells × state genes) buffers rotate through the steps (the change and the
previous step's change, which defines where derivatives are taken), the base expression is the
tissue's (float32 when the layer is), and ligand-width arrays hold the received amounts. The arithmetic
is the full-width algorithm's, operation for operation, so results are bit-identical. (One difference
at the edge of the model: a gene outside the state genes is never clipped. The full-width algorithm
clipped every gene to ``[0, max]``, which moved only negative values of genes no model reads.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
from .result import HeldColumns, PerturbResult
from .splash import filtered

__all__ = ["PerturbResult", "PerturbSettings", "Perturber", "perturb", "resolve_scope"]

log = logging.getLogger("spacetravlr_py.perturbation")


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


@dataclass
class StateIndex:
    """The state genes of a Betabase: the tissue columns a perturbation holds, and the Betabase's flat
    arrays (:meth:`Betabase.flat`) with their gene indices renumbered to positions among them.

    State genes = every model target and every gene a model reads (TFs, ligands, receptors, extras),
    in tissue column order; ``lig`` are the ligands' positions (in :meth:`Betabase.ligands` order) and
    ``lig_col[s]`` the column of state gene ``s`` among the ligands (−1: not a ligand).
    """

    cols: np.ndarray
    flat: dict[str, np.ndarray]
    lig: np.ndarray
    lig_col: np.ndarray

    @classmethod
    def of(cls, betabase: Betabase, n_genes: int) -> StateIndex:
        f = betabase.flat()
        b = f["b"]
        cols = np.unique(np.concatenate([f["target"], f["a"], b[b >= 0], f["mods"]])).astype(np.int64)
        remap = np.full(n_genes, -1, dtype=np.int64)
        remap[cols] = np.arange(len(cols))
        flat = dict(f)
        flat["target"], flat["a"], flat["mods"] = remap[f["target"]], remap[f["a"]], remap[f["mods"]]
        flat["b"] = np.where(b >= 0, remap[np.maximum(b, 0)], -1)
        lig = remap[betabase.ligands()]
        lig_col = np.full(len(cols), -1, dtype=np.int64)
        lig_col[lig] = np.arange(len(lig))
        return cls(cols=cols, flat=flat, lig=lig, lig_col=lig_col)


class Perturber:
    """Prepared perturbation engine for one tissue and one Betabase (reuse it for many jobs).

    Parameters
    ----------
    tissue : Tissue
        Base expression x0 (``tissue.expression``), coordinates, clusters. It may hold a subset of the
        panel's genes; the Betabase's tissue (which holds every gene its models name) is used when the
        two differ.
    betabase : Betabase
    settings : PerturbSettings
    ligand_signaling : dict, optional
        CellChat ``signaling`` per ligand (for ``per_ligand_radius``).
    n_threads : int, optional
    """

    def __init__(self, tissue: Tissue, betabase: Betabase, settings: PerturbSettings | None = None, *,
                 ligand_signaling: Mapping[str, str | None] | None = None, n_threads: int | None = None,
                 operators: ReceivedOperators | None = None) -> None:
        if list(tissue.var_names) != betabase.var_names:
            if betabase.tissue.n_cells != tissue.n_cells:
                raise ValueError("the Betabase was built on another tissue (different number of cells)")
            tissue = betabase.tissue
        self.tissue = tissue
        self.bb = betabase
        self.s = settings or PerturbSettings()
        self.n_threads = n_threads
        t0 = time.perf_counter()
        self.flat = betabase.flat()
        self.state = StateIndex.of(betabase, tissue.n_genes)
        cols = self.state.cols
        X = tissue.expression
        every = len(cols) == tissue.n_genes and np.array_equal(cols, np.arange(tissue.n_genes))
        # the base expression of the state genes, in the tissue's dtype (float32 stays float32)
        self.x0_state = X if every else np.ascontiguousarray(X[:, cols])
        self.lig_genes = betabase.ligands()
        self.ligand_signaling = ligand_signaling  # kept: a perturber with other radii is built from it
        self.lig_radius, self._no_received = self._ligand_radii(ligand_signaling)
        s = self.s
        self.operators = operators or ReceivedOperators(
            tissue.coords, kernel=s.kernel, scale=s.scale, method=s.received_method,
            approx_above_cells=s.approx_above_cells, grid_factor=s.ligand_grid_factor, n_threads=n_threads)
        lig = self.state.lig
        # received ligands at baseline; the baseline ligand expression L0 is not kept (one column at a
        # time is recomputed where a step needs it)
        self.RW0 = self._received(filtered(self.x0_state[:, lig]) if len(lig) else np.zeros((tissue.n_cells, 0)))
        self.hi = np.asarray(X.max(axis=0), dtype=np.float64) if X.shape[1] else np.zeros(0)
        self.lo = (np.asarray(X.min(axis=0), dtype=np.float64) if self.s.clip == "observed_range"
                   else np.zeros(tissue.n_genes))
        self.max_mods = int(np.diff(self.flat["mod_ptr"]).max()) if len(betabase) else 0
        self._x0: np.ndarray | None = None
        self.prepare_seconds = time.perf_counter() - t0
        self.received_info = [i.describe() for i in self.operators.infos()]

    @property
    def x0(self) -> np.ndarray:
        """(N, G) base expression over ``tissue.var_names`` as float64 (the tissue's own array when it is
        float64; a converted copy, made on first access, otherwise)."""
        if self._x0 is None:
            self._x0 = np.ascontiguousarray(self.tissue.expression, dtype=np.float64)
        return self._x0

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

    def received_change(self, ligands: np.ndarray) -> np.ndarray:
        """(N, n_ligands) change of every ligand's received amount from the base expression to ``ligands``
        ((N, n_ligands) expression of the ligands, columns in :attr:`lig_genes` order), by the kernel the
        perturbation uses."""
        if not len(self.lig_genes):
            return np.zeros((self.tissue.n_cells, 0))
        L = filtered(np.asarray(ligands, dtype=np.float64))
        x0 = self.x0_state
        for k, c in enumerate(self.state.lig.tolist()):
            L[:, k] -= filtered(x0[:, c])  # L1 − L0, one column at a time
        return self._received(L)

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
        for g in names:
            if not self.tissue.has_gene(g):
                raise InputError(f"gene '{g}' is not in the dataset{near_matches(g, self.tissue.all_genes)}")
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
        raises aborts the run (cancellation). The result holds the state genes and the perturbed genes
        (:class:`~spacetravlr_py.perturbation.result.PerturbResult`).
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
        pos = {int(c): k for k, c in enumerate(self.state.cols)}
        in_state = [(pos[gi[g]], v) for g, v in zip(names, vals) if g in gi and gi[g] in pos]
        inert = [(g, v) for g, v in zip(names, vals) if not (g in gi and gi[g] in pos)]
        values, steps, t_recv, t_prop = self._propagate(in_state, mask, n_prop, on_step)
        held = [HeldColumns([self.tissue.var_names[c] for c in self.state.cols], values, x0=self.x0_state)]
        if inert:
            held.append(self._inert_columns(inert, mask))
        timings = {"received_s": t_recv, "propagate_s": t_prop, "total_s": time.perf_counter() - t_start,
                   "prepare_s": self.prepare_seconds}
        return PerturbResult(tissue=self.tissue, targets=names, desired=vals, scope=mask, n_propagation=n_prop,
                             scope_label=scope_label, timings=timings, steps=steps, held=held)

    def _propagate(self, targets: list[tuple[int, float]], mask: np.ndarray, n_prop: int,
                   on_step: Callable[[int, int], None] | None
                   ) -> tuple[np.ndarray, list[dict[str, float]], float, float]:
        """The steps over the state genes; returns the simulated expression (N, state genes) float64.

        ``D`` is the change; ``P`` the change at the start of the previous step (the state where
        derivatives are taken is ``x0 + P``; 0 at the first step), then the kernel's output.
        """
        x0 = self.x0_state
        n, w = x0.shape
        lo, hi = self.lo[self.state.cols], self.hi[self.state.cols]
        pin_cols = np.array([c for c, _ in targets], dtype=np.int64)
        pin_vals = np.zeros((len(targets), n))
        for t, (c, v) in enumerate(targets):
            pin_vals[t, mask] = v - np.asarray(x0[mask, c], dtype=np.float64)
        pin_where = (pin_vals != 0) if self.s.reference_compat else np.broadcast_to(mask, pin_vals.shape).copy()
        D = np.zeros((n, w))
        D[:, pin_cols] = pin_vals.T
        P = np.zeros((n, w))
        f = self.state.flat
        cap = 0.0 if self.s.beta_cap is None else float(self.s.beta_cap)
        RW0 = self.RW0
        RW = RW0
        steps: list[dict[str, float]] = []
        t_recv = t_prop = 0.0
        for step in range(n_prop):
            ts = time.perf_counter()
            RW_splash = RW0 if self.s.reference_compat else RW
            SW, RW1 = self._ligand_step(D) if len(self.state.lig) else (np.zeros((n, 0)), RW0)
            tr = time.perf_counter()
            with numba_threads(self.n_threads):
                _kernels.propagate_state(x0, P, D, SW, self.state.lig_col, RW_splash, RW0, f["target"], f["coefs"],
                                         f["coef_ptr"], f["n_cols"], f["mapping_id"], f["mappings"], f["kind_ptr"],
                                         f["coef_col"], f["a"], f["b"], f["slot_a"], f["slot_b"], f["mods"],
                                         f["mod_ptr"], float(self.s.beta_scale_factor), cap, self.max_mods,
                                         _keys.MIN_EXPRESSION)
                _kernels.pin_and_clip(x0, P, pin_cols, pin_vals, pin_where, lo, hi, step == n_prop - 1)
            del SW
            P, D = D, P  # the change before this step becomes the state of the next one
            RW = RW1
            te = time.perf_counter()
            t_recv += tr - ts
            t_prop += te - tr
            steps.append({"received_s": tr - ts, "propagate_s": te - tr})
            if on_step is not None:
                on_step(len(steps), n_prop)
        del P
        for c, v in targets:  # the perturbed genes exactly at the desired value in scope
            D[mask, c] = v
        return D, steps, t_recv, t_prop

    def _ligand_step(self, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Received ligands of ``x1 = x0 + D`` and the ligands' change after the delta swap.

        Returns ``(SW, RW1)``: ``SW = D[:, lig] + ((RW1 − RW0) − (x1[:, lig] − x0[:, lig]))`` (a ligand acts
        on other cells only through the kernel) and ``RW1 = RW0 + RL(filtered(x1[:, lig]) − L0)``, with the
        full-width algorithm's operations in its order, on ligand-width arrays (four at most) only; the
        ligand columns of x0 and D are visited one at a time instead of copied out.
        """
        lig = self.state.lig.tolist()
        x0 = self.x0_state
        # ligands that did not move anywhere: L1 − L0 = 0, their received amount stays RW0 and SW is 0
        moved = [(k, c) for k, c in enumerate(lig) if D[:, c].any()]
        A = np.empty((D.shape[0], len(moved)))
        B = np.zeros((D.shape[0], len(lig)))
        for j, (k, c) in enumerate(moved):
            np.add(x0[:, c], D[:, c], out=A[:, j])  # x1 on the ligands (float32 x0 converted exactly)
            B[:, k] = filtered(A[:, j])
            B[:, k] -= filtered(x0[:, c])  # L1 − L0
        RW1 = self._received(B)  # all-zero columns are not computed
        del B
        RW1 += self.RW0
        SW = RW1 - self.RW0
        for j, (k, c) in enumerate(moved):
            A[:, j] -= x0[:, c]  # x1 − x0 on the ligands
            SW[:, k] -= A[:, j]
            SW[:, k] += D[:, c]
        del A
        return SW, RW1

    def _inert_columns(self, inert: list[tuple[str, float]], mask: np.ndarray) -> HeldColumns:
        """Perturbed genes outside the state: the desired value in scope, elsewhere their base expression
        clipped as every gene is."""
        gi = self.tissue.gene_index
        base = self.tissue.columns([g for g, _ in inert])
        values = np.empty_like(base)
        for k, (g, v) in enumerate(inert):
            col = base[:, k]
            if g in gi:
                lo, hi = self.lo[gi[g]], self.hi[gi[g]]
            else:
                hi = float(col.max())
                lo = float(col.min()) if self.s.clip == "observed_range" else 0.0
            values[:, k] = np.clip(col, lo, hi)
            values[mask, k] = v
        return HeldColumns([g for g, _ in inert], values, x0=base)


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
