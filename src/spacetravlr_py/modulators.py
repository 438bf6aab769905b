"""Modulators of a target gene and its design matrix (SPEC §4, §5.1).

Pure functions of the network, the genes present and the configuration. A
:class:`ModulatorSelector` indexes the network once per run; ``select(target)`` is then cheap.

Families (group ids of the sparse group lasso):

* 0 — TFs: sources of ``grn`` edges into the target; feature = TF expression.
* 1 — ``L$R``: ligand–receptor pairs; feature = received(L) × expression(R).
* 2 — ``L#TF``: ligand–TF pairs from ``nichenet`` edges; feature = received(L) × expression(TF).
* 3 — extra modulators chosen by the user; feature = expression.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import _keys, naming
from .errors import InputError
from .naming import parse_lr as parse_lr  # re-exported: callers read extra LR pairs with the modulators

TFL_TOP_LIGANDS = 5
"""Each TF keeps its 5 strongest ligands (by NicheNet weight) as ``L#TF`` modulators."""


@dataclass(frozen=True)
class Modulators:
    """The modulators of one target gene, in design-matrix column order."""

    target: str
    tfs: tuple[str, ...] = ()
    lr_pairs: tuple[tuple[str, str], ...] = ()
    tfl_pairs: tuple[tuple[str, str], ...] = ()
    """``(ligand, tf)`` pairs."""
    extras: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Column names: ``TF``, ``L$R``, ``L#TF``, extra genes."""
        return (list(self.tfs) + [naming.lr_name(l, r) for l, r in self.lr_pairs]
                + [naming.tfl_name(l, t) for l, t in self.tfl_pairs] + list(self.extras))

    @property
    def groups(self) -> np.ndarray:
        """Group id per column (0 TF, 1 LR, 2 TF–ligand, 3 extra)."""
        return np.array([naming.TF] * len(self.tfs) + [naming.LR] * len(self.lr_pairs)
                        + [naming.TFL] * len(self.tfl_pairs) + [naming.EXTRA] * len(self.extras),
                        dtype=np.int64)

    @property
    def n(self) -> int:
        return len(self.tfs) + len(self.lr_pairs) + len(self.tfl_pairs) + len(self.extras)

    @property
    def is_orphan(self) -> bool:
        """A target with no modulators is an orphan (nothing to fit)."""
        return self.n == 0

    @property
    def ligands(self) -> list[str]:
        """Every ligand whose received amount the design matrix needs (LR and TF–ligand)."""
        return list(dict.fromkeys([l for l, _ in self.lr_pairs] + [l for l, _ in self.tfl_pairs]))


def read_list_file(path: str | os.PathLike[str], *, what: str) -> list[str]:
    """One item per line (or comma-separated), ``#`` starts a comment."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{p}: cannot read {what} file ({e.strerror or e})") from None
    items: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if what == "extra_lr" and _keys.LR_SEP not in line:
            items.append(line)  # "L,R" on one line is one pair
        else:
            items.extend(t.strip() for t in line.split(",") if t.strip())
    return items


@dataclass
class ModulatorSelector:
    """Index of the network restricted to the genes present, built once per run.

    Parameters
    ----------
    network : DataFrame
        Long network table (``source, target, edge_type, weight[, signaling]``).
    var_names : sequence of str
        Genes present in the data.
    ligand_means : mapping or None
        Mean expression per gene, used to rank ligands for ``max_ligands``.
    max_ligands, tf_ligand_cutoff, use_tf, use_lr, use_tfl, extra_lr, extra_modulators
        From ``[grn]`` (files already merged into the lists).
    """

    network: pd.DataFrame
    var_names: Sequence[str]
    ligand_means: dict[str, float] | None = None
    max_ligands: int | None = None
    tf_ligand_cutoff: float = 0.2
    use_tf: bool = True
    use_lr: bool = True
    use_tfl: bool = True
    extra_lr: Sequence[str] = ()
    extra_modulators: Sequence[str] = ()
    _tfs: dict[str, list[str]] = field(init=False, repr=False)
    _pairs: list[tuple[str, str]] = field(init=False, repr=False)
    _tfl: dict[str, list[tuple[str, float]]] = field(init=False, repr=False)
    _extra_lr: list[tuple[str, str]] = field(init=False, repr=False)
    _extra_mods: list[str] = field(init=False, repr=False)
    signaling: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        present = set(self.var_names)
        net = self.network
        pres = pd.Index(list(self.var_names))
        # vectorised filtering: real networks have millions of grn rows
        both = (net["source"].isin(pres) & net["target"].isin(pres)).to_numpy()
        et = net["edge_type"].to_numpy()
        src = net["source"].to_numpy()
        tgt = net["target"].to_numpy()

        g = both & (et == _keys.EDGE_GRN)
        grn = pd.DataFrame({"s": src[g], "t": tgt[g]}).drop_duplicates()
        self._tfs = {str(t): sorted(map(str, grp["s"])) for t, grp in grn.groupby("t", sort=False)}

        lr = both & (et == _keys.EDGE_LR)
        pairs = list(dict.fromkeys(zip(map(str, src[lr]), map(str, tgt[lr]))))
        sig_vals = net["signaling"].to_numpy()[lr] if "signaling" in net.columns else [None] * int(lr.sum())
        self.signaling = {}
        for s_, sg in zip(map(str, src[lr]), sig_vals):
            # a ligand's radius comes from its first lr row (database order) among the genes present,
            # as in the Python reference
            if s_ not in self.signaling:
                self.signaling[s_] = str(sg) if isinstance(sg, str) and sg else _keys.SECRETED
        if self.max_ligands is not None:
            means = self.ligand_means or {}
            uniq = sorted({l for l, _ in pairs})
            ranked = sorted(uniq, key=lambda l: (-means.get(l, 0.0), l))
            keep = set(ranked[: self.max_ligands])
            pairs = [p for p in pairs if p[0] in keep]
        self._pairs = sorted(pairs, key=lambda p: naming.lr_name(*p))

        nn = both & (et == _keys.EDGE_NICHENET)
        w = net["weight"].to_numpy(dtype=np.float64)
        keep = nn & (w > self.tf_ligand_cutoff)
        tfl = pd.DataFrame({"l": src[keep].astype(str), "t": tgt[keep].astype(str), "w": w[keep]})
        tfl = tfl.groupby(["t", "l"], sort=False)["w"].max().reset_index()
        # strongest first, ties by ligand name
        tfl = tfl.sort_values(["t", "w", "l"], ascending=[True, False, True], kind="stable")
        self._tfl = {str(t): list(zip(grp["l"], grp["w"])) for t, grp in tfl.groupby("t", sort=False)}

        self._extra_lr = [p for p in parse_lr(self.extra_lr) if p[0] in present and p[1] in present]
        self._extra_mods = [m for m in dict.fromkeys(self.extra_modulators) if m in present]

    @property
    def lr_pairs(self) -> list[tuple[str, str]]:
        """Database LR pairs present in the data (after ``max_ligands``), sorted by name."""
        return list(self._pairs)

    @property
    def all_lr_pairs(self) -> list[tuple[str, str]]:
        """Every ``L$R`` pair some target may use: database pairs, then extra pairs (none when LR
        modulators are off). ``select(t).lr_pairs`` is this list without the pairs touching ``t``."""
        if not self.use_lr:
            return []
        out = list(self._pairs)
        seen = set(out)
        for p in self._extra_lr:
            if p not in seen:
                out.append(p)
                seen.add(p)
        return out

    @property
    def all_ligands(self) -> list[str]:
        """Every ligand whose received amount some target may need, sorted.

        A superset of ``select(t).ligands`` for every target ``t``: the ligands of the database LR pairs
        (they also feed the ``L#TF`` pairs) and, when LR modulators are on, of the ``extra_lr`` pairs.
        Empty when both the LR and the TF–ligand families are off.
        """
        if not (self.use_lr or self.use_tfl):
            return []
        ligs = {l for l, _ in self._pairs}
        if self.use_lr:
            ligs |= {l for l, _ in self._extra_lr}
        return sorted(ligs)

    def select(self, target: str) -> Modulators:
        """The modulators of ``target`` (SPEC §4)."""
        tfs = [t for t in self._tfs.get(target, []) if t != target]
        db_pairs = [(l, r) for l, r in self._pairs if l != target and r != target]
        lr_ligands = {l for l, _ in db_pairs}
        tfl: list[tuple[str, str]] = []
        if self.use_tfl:
            for tf in tfs:
                cands = [(l, wt) for l, wt in self._tfl.get(tf, []) if l in lr_ligands]
                tfl.extend((l, tf) for l, _ in cands[:TFL_TOP_LIGANDS])
            tfl = sorted(set(tfl), key=lambda p: naming.tfl_name(*p))
        lr: list[tuple[str, str]] = []
        if self.use_lr:
            lr = list(db_pairs)
            seen = set(lr)
            for p in self._extra_lr:
                if target not in p and p not in seen:
                    lr.append(p)
                    seen.add(p)
        if not self.use_tf:
            tfs = []
        used = set(tfs) | {g for p in lr for g in p} | {g for p in tfl for g in p} | {target}
        extras = [m for m in self._extra_mods if m not in used]
        return Modulators(target=target, tfs=tuple(tfs), lr_pairs=tuple(lr), tfl_pairs=tuple(tfl),
                          extras=tuple(extras))


def design_matrix(mods: Modulators, gene: Callable[[str], np.ndarray],
                  received: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Features of ``mods`` for every cell, columns in :attr:`Modulators.names` order.

    Parameters
    ----------
    gene : callable
        ``gene(name) -> (N,)`` expression.
    received : callable
        ``received(ligands) -> (N, len(ligands))`` received amounts (shared cache).

    Returns
    -------
    (N, n_modulators) float64, Fortran order (column slices are contiguous).
    """
    ligs = mods.ligands
    RL = received(ligs) if ligs else None
    li = {l: i for i, l in enumerate(ligs)}
    cols: list[np.ndarray] = [gene(t) for t in mods.tfs]
    assert RL is not None or not (mods.lr_pairs or mods.tfl_pairs)
    for l, r in mods.lr_pairs:
        cols.append(RL[:, li[l]] * gene(r))  # type: ignore[index]
    for l, t in mods.tfl_pairs:
        cols.append(RL[:, li[l]] * gene(t))  # type: ignore[index]
    cols.extend(gene(e) for e in mods.extras)
    if not cols:
        return np.zeros((0, 0))
    return np.asfortranarray(np.column_stack(cols), dtype=np.float64)
