"""TF priors (``--tf-prior``, ``[grn].tf_priors``): which TFs may regulate a target in each cell type.

The table has three columns, ``source`` (TF), ``target`` and ``cell_type`` (a label of
``[data].cluster_annot``), in CSV, TSV, parquet or feather (Arrow IPC). A row allows TF ``source`` to
regulate ``target`` in cells of ``cell_type``. The rule, for a target the prior names:

* in a cell type the prior names, a TF of the target (a ``grn`` source of the network, SPEC §4) is
  allowed only if a row lists it for (target, cell type); outside, its column **and its ``L#TF``
  columns** (the TF's response to a received ligand, regulating the same target) are left out of that
  cluster's lasso, so their betas are exactly 0;
* a cell type of the dataset that the prior never names is not restricted (the prior says nothing
  about it; a warning lists such cell types), and neither is a target the prior never names.

The prior restricts the network's TFs: a row whose TF is not a ``grn`` source of the target in the
network adds nothing (counted in a warning). The Rust seed instead replaces the target's TFs by the
prior's and masks only TF columns.

Rows naming genes that are not in the dataset or cell types that are not cluster labels are ignored
with one warning line giving the counts; when no row is left, or no cell type matches, reading fails
with one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, near_matches, short_list

if TYPE_CHECKING:
    from ..modulators import Modulators

COLUMNS = ("source", "target", "cell_type")
_READERS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet",
            ".feather": "feather", ".arrow": "feather", ".ipc": "feather"}


@dataclass(frozen=True)
class TfPrior:
    """A TF prior matched to a dataset.

    Attributes
    ----------
    path : str
        The file it was read from.
    allowed : dict
        ``target → cell type → frozenset of allowed TFs`` (cell types named in the prior for that target).
    cell_types : frozenset of str
        Cell types (cluster labels) the prior names; other cell types are not restricted.
    """

    path: str
    allowed: dict[str, dict[str, frozenset[str]]]
    cell_types: frozenset[str]
    n_rows: int = 0
    notes: list[str] = field(default_factory=list, compare=False)

    def allowed_tfs(self, target: str, cell_type: str) -> frozenset[str] | None:
        """The TFs allowed for ``target`` in ``cell_type``, or None when the prior does not restrict them."""
        per = self.allowed.get(target)
        if per is None or cell_type not in self.cell_types:
            return None
        return per.get(cell_type, frozenset())

    def feature_mask(self, mods: Modulators, cluster_labels: Sequence[str]) -> np.ndarray | None:
        """``(K, p)`` bool: ``False`` where feature ``j`` (in :attr:`Modulators.names` order) is left out of
        cluster ``k``'s fit — a TF column or an ``L#TF`` column whose TF is not allowed there. None when the
        prior leaves every feature of every cluster in."""
        if mods.target not in self.allowed:
            return None
        tf_of = ([*mods.tfs] + [None] * len(mods.lr_pairs) + [t for _, t in mods.tfl_pairs]
                 + [None] * len(mods.extras))
        mask = np.ones((len(cluster_labels), mods.n), dtype=bool)
        for k, lab in enumerate(cluster_labels):
            ok = self.allowed_tfs(mods.target, str(lab))
            if ok is not None:
                mask[k] = [t is None or t in ok for t in tf_of]
        return None if mask.all() else mask

    def masked_tfs(self, mods: Modulators, cluster_labels: Sequence[str]) -> dict[str, list[str]]:
        """``{cell type: TFs left out}`` for the cell types where the prior leaves out at least one TF of
        ``mods`` (as a TF column or through its ``L#TF`` columns)."""
        out: dict[str, list[str]] = {}
        tfs = sorted({*mods.tfs, *(t for _, t in mods.tfl_pairs)})
        for lab in cluster_labels:
            ok = self.allowed_tfs(mods.target, str(lab))
            if ok is not None:
                gone = [t for t in tfs if t not in ok]
                if gone:
                    out[str(lab)] = gone
        return out

    def log_lines(self, mods: Modulators, cluster_labels: Sequence[str]) -> list[str]:
        """Lines of ``log/{gene}.log``: ``tf_prior <cell type> allowed=A,B masked=C`` per restricted cell type."""
        tfs = sorted({*mods.tfs, *(t for _, t in mods.tfl_pairs)})
        lines = []
        for lab in cluster_labels:
            ok = self.allowed_tfs(mods.target, str(lab))
            if ok is not None:
                allowed = [t for t in tfs if t in ok]
                masked = [t for t in tfs if t not in ok]
                lines.append(f"tf_prior\t{lab}\tallowed={','.join(allowed)}\tmasked={','.join(masked)}")
        return lines

    def summary(self) -> dict[str, Any]:
        """What the manifest records about the prior itself."""
        return {"path": self.path, "rows": self.n_rows, "targets": len(self.allowed),
                "cell_types": sorted(self.cell_types)}


def _read_table(p: Path) -> pd.DataFrame:
    kind = _READERS.get(p.suffix.lower())
    if kind is None:
        raise InputError(f"TF prior {p}: unknown file type '{p.suffix}'; use .csv, .tsv, .parquet or .feather "
                         "with columns source, target, cell_type")
    if not p.is_file():
        raise InputError(f"TF prior {p} not found; check --tf-prior / [grn].tf_priors")
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(p, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False)
        if kind == "parquet":
            return pd.read_parquet(p)
        return pd.read_feather(p)
    except Exception as e:  # a damaged or foreign file: one line
        raise InputError(f"TF prior {p}: cannot read as {kind} ({e.__class__.__name__}: {e})") from None


def _as_str(col: pd.Series) -> pd.Series:
    """Column values as stripped strings ("" for missing); integer-valued numbers without ``.0``."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        vals = pd.to_numeric(col, errors="coerce")
        finite = vals.notna()
        if finite.any() and np.all(np.mod(vals[finite].to_numpy(dtype=float), 1.0) == 0.0):
            return pd.Series(["" if not f else str(int(v)) for v, f in zip(vals, finite)], index=col.index)
    return col.astype(object).where(col.notna(), "").astype(str).str.strip()


def _columns(df: pd.DataFrame, p: Path) -> pd.DataFrame:
    lower = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in COLUMNS if c not in lower]
    if missing:
        raise InputError(f"TF prior {p}: no column '{missing[0]}'{near_matches(missing[0], map(str, df.columns))} "
                         f"(columns: {short_list(df.columns)}); the table needs source, target, cell_type")
    out = pd.DataFrame({c: _as_str(df[lower[c]]) for c in COLUMNS})
    if out.empty:
        raise InputError(f"TF prior {p}: the table has no rows")
    return out


def read_tf_prior(path: str | os.PathLike[str], *, var_names: Sequence[str], cluster_labels: Sequence[str],
                  cluster_annot: str = _keys.DEFAULT_CLUSTER_ANNOT,
                  network: Any = None) -> TfPrior:
    """Read a TF prior and match it to the dataset's genes and cluster labels.

    Parameters
    ----------
    path : path
        CSV / TSV / parquet / feather with columns ``source``, ``target``, ``cell_type``.
    var_names, cluster_labels
        The dataset's genes and the labels of ``[data].cluster_annot`` (cluster id order).
    network : DataFrame, optional
        The long network table; when given, prior links that are not ``grn`` edges are counted in a note.

    Returns
    -------
    TfPrior
        ``notes`` holds one warning line per partial match (rows ignored, cell types not restricted).

    Raises
    ------
    InputError
        Unreadable file, missing columns, no row naming two genes of the dataset, or no cell type matching a
        cluster label.
    """
    p = Path(os.path.expanduser(path))
    df = _columns(_read_table(p), p)
    n_all = len(df)
    notes: list[str] = []
    empty = (df == "").any(axis=1)
    if empty.any():
        notes.append(f"TF prior {p}: {int(empty.sum())} of {n_all} rows have an empty field and are ignored")
        df = df[~empty]
    genes = set(map(str, var_names))
    known = df["source"].isin(genes) & df["target"].isin(genes)
    if not known.any():
        ex = df["source"].iloc[0] if len(df) else ""
        raise InputError(f"TF prior {p}: no row names two genes of the dataset (e.g. source '{ex}'"
                         f"{near_matches(ex, genes)}); check the species and gene symbols of the table")
    if not known.all():
        bad = pd.unique(pd.concat([df.loc[~known, "source"], df.loc[~known, "target"]]))
        bad = [g for g in bad if g not in genes]
        notes.append(f"TF prior {p}: {int((~known).sum())} of {n_all} rows name {len(bad)} genes that are not in "
                     f"the dataset and are ignored ({short_list(bad, 5)})")
        df = df[known]
    labels = [str(c) for c in cluster_labels]
    ct_known = df["cell_type"].isin(labels)
    if not ct_known.any():
        ex = str(df["cell_type"].iloc[0])
        raise InputError(f"TF prior {p}: no cell_type is a label of obs['{cluster_annot}'] (e.g. '{ex}'"
                         f"{near_matches(ex, labels)}; labels: {short_list(labels)}); match the table's cell "
                         "types to [data].cluster_annot")
    if not ct_known.all():
        bad_ct = sorted(set(df.loc[~ct_known, "cell_type"]))
        notes.append(f"TF prior {p}: {int((~ct_known).sum())} rows name {len(bad_ct)} cell types that are not labels "
                     f"of obs['{cluster_annot}'] and are ignored ({short_list(bad_ct, 5)})")
        df = df[ct_known]
    named = set(df["cell_type"])
    free = [lab for lab in labels if lab not in named]
    if free:
        notes.append(f"TF prior {p}: {len(free)} cell types of obs['{cluster_annot}'] have no row in the prior; "
                     f"their TFs are not restricted ({short_list(free, 5)})")
    notes += _network_note(df, network, p)
    allowed: dict[str, dict[str, frozenset[str]]] = {}
    for (tgt, ct), grp in df.groupby(["target", "cell_type"], sort=True):
        allowed.setdefault(str(tgt), {})[str(ct)] = frozenset(map(str, grp["source"]))
    return TfPrior(path=str(p.resolve()), allowed=allowed, cell_types=frozenset(named), n_rows=len(df), notes=notes)


def _network_note(df: pd.DataFrame, network: Any, p: Path) -> list[str]:
    """A note counting prior links that are not grn edges of the network (they add nothing)."""
    if not isinstance(network, pd.DataFrame) or not {"source", "target", "edge_type"} <= set(network.columns):
        return []
    grn = network[network["edge_type"] == _keys.EDGE_GRN]
    edges = set(zip(grn["source"].astype(str), grn["target"].astype(str)))
    links = set(zip(df["source"], df["target"]))
    extra = [f"{s}→{t}" for s, t in sorted(links) if (s, t) not in edges]
    if not extra:
        return []
    return [f"TF prior {p}: {len(extra)} of {len(links)} TF→target links are not grn edges of the network and add "
            f"nothing (the prior restricts the network's TFs; it does not add TFs): {short_list(extra, 3)}"]
