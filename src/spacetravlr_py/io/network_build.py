"""Building ``{species}_network.parquet`` from database sources (SPEC §2.2).

Reads the real sources — a base GRN (CellOracle wide ``TF_info_matrix`` or a long ``source,target``
table, :func:`read_base_grn`), a ligand–receptor database (CellChat, LIANA / OmniPath or CellPhoneDB
v4, :func:`read_lr_table` / :func:`expand_cellchat`) and an optional NicheNet ligand–target matrix
(:func:`read_nichenet`) — and assembles the long network table (:func:`build_network`), to be
written with :func:`spacetravlr_py.io.network.write_network`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, short_list
from .network import EDGE_TYPE, SIGNALING, SOURCE, TARGET, WEIGHT
from .species import check_species, guess_species

log = logging.getLogger("spacetravlr_py.io")

LR_COLUMNS: tuple[str, ...] = ("ligand", "receptor", "pathway", "signaling")
"""Columns of an expanded ligand–receptor table (:func:`expand_cellchat`)."""
COMPLEX_SEP = "_"
"""Subunits of a multi-subunit complex are joined by this character (CellChat, LIANA)."""

_LIANA_COLUMNS = ("source_genesymbol", "target_genesymbol")
_CPDB_COLUMNS = ("0", "1", "2", "3")
_WIDE_GRN_TARGET = "gene_short_name"
_WIDE_GRN_PEAK = "peak_id"

# --------------------------------------------------------------------------------------------------
# Reading sources
# --------------------------------------------------------------------------------------------------


def _is_parquet(path: Path) -> bool:
    return any(s.lower() in (".parquet", ".pq") for s in path.suffixes)


def _text_sep(path: Path) -> str:
    """Field separator of a text table: tab for ``.tsv``/``.txt``/``.tab``, else comma."""
    return "\t" if any(s.lower() in (".tsv", ".txt", ".tab") for s in path.suffixes) else ","


def _read_table(path: Path, what: str) -> pd.DataFrame:
    """Read a parquet / csv / tsv table; a leading unnamed (index) column is dropped."""
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist; check the path")
    try:
        df = pd.read_parquet(path) if _is_parquet(path) else pd.read_csv(path, sep=_text_sep(path))
    except InputError:
        raise
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise InputError(f"cannot read {what} file {path} ({type(e).__name__}: {first}); expected "
                         "parquet, csv or tsv") from e
    if len(df.columns) and (str(df.columns[0]).startswith("Unnamed: ") or str(df.columns[0]) == ""):
        df = df.iloc[:, 1:]
    df.columns = [str(c) for c in df.columns]
    return df


def _clean_names(s: pd.Series) -> pd.Series:
    """Gene names as stripped ``str``; missing values as None."""
    out = s.astype(object).where(s.notna(), None)
    return out.map(lambda x: None if x is None else str(x).strip())


def expand_cellchat(df: pd.DataFrame, *, resource: str | None = None,
                    where: str = "LR table") -> pd.DataFrame:
    """Expand a ligand–receptor table to one row per ligand-subunit × receptor-subunit pair.

    Accepted layouts (detected by column names):

    - CellChat: ``ligand, receptor[, pathway][, signaling]``;
    - LIANA / OmniPath: ``source_genesymbol, target_genesymbol[, resource]`` (pick one ``resource``
      when the table holds several);
    - CellPhoneDB v4 as shipped by commot: columns ``0, 1, 2, 3`` = ligand, receptor, pathway, type.

    Complexes joined by ``_`` expand to every subunit pair (ligand subunits outer, receptor
    subunits inner), database row order is kept, ``(ligand, receptor)`` duplicates keep the first row.

    Returns
    -------
    pandas.DataFrame
        Columns ``ligand, receptor, pathway, signaling`` (missing values as None).
    """
    cols = {str(c).lower(): c for c in df.columns}
    if "ligand" in cols and "receptor" in cols:
        if resource is not None:
            log.warning("%s: no 'resource' column; --lr-resource %s ignored", where, resource)
        lig, rec = df[cols["ligand"]], df[cols["receptor"]]
        pathway = df[cols["pathway"]] if "pathway" in cols else None
        signaling = df[cols["signaling"]] if "signaling" in cols else None
    elif all(c in cols for c in _LIANA_COLUMNS):
        if "resource" in cols:
            res = df[cols["resource"]].astype(str)
            names = list(dict.fromkeys(res))
            if resource is not None:
                if resource not in names:
                    raise InputError(f"{where}: resource {resource!r} not in the table; available: "
                                     f"{short_list(names, 20)}")
                df = df.loc[(res == resource).to_numpy()]
            elif len(names) > 1:
                raise InputError(f"{where}: holds {len(names)} LR resources ({short_list(names, 20)}); "
                                 "choose one with --lr-resource NAME (e.g. consensus or mouseconsensus)")
        lig, rec = df[cols[_LIANA_COLUMNS[0]]], df[cols[_LIANA_COLUMNS[1]]]
        pathway = signaling = None
    elif [str(c) for c in df.columns[:4]] == list(_CPDB_COLUMNS):
        if resource is not None:
            log.warning("%s: no 'resource' column; --lr-resource %s ignored", where, resource)
        lig, rec, pathway, signaling = (df.iloc[:, i] for i in range(4))
    else:
        raise InputError(
            f"{where}: unrecognised ligand–receptor columns ({short_list(df.columns)}); expected CellChat "
            "'ligand,receptor,pathway,signaling', LIANA 'source_genesymbol,target_genesymbol' or "
            "CellPhoneDB v4 '0,1,2,3'"
        )
    n = len(df)
    none = pd.Series([None] * n, index=df.index, dtype=object)
    t = pd.DataFrame({
        "ligand": _clean_names(lig),
        "receptor": _clean_names(rec),
        "pathway": _clean_names(pathway) if pathway is not None else none,
        "signaling": _clean_names(signaling) if signaling is not None else none,
    }).reset_index(drop=True)
    bad = t["ligand"].isna() | t["receptor"].isna() | (t["ligand"] == "") | (t["receptor"] == "")
    if bad.any():
        log.warning("%s: skipped %d row(s) without a ligand or receptor", where, int(bad.sum()))
        t = t.loc[~bad.to_numpy()]
    t["ligand"] = t["ligand"].str.split(COMPLEX_SEP)
    t = t.explode("ligand")
    t["receptor"] = t["receptor"].str.split(COMPLEX_SEP)
    t = t.explode("receptor")
    t = t.loc[(t["ligand"] != "").to_numpy() & (t["receptor"] != "").to_numpy()]
    t = t.drop_duplicates(["ligand", "receptor"], keep="first").reset_index(drop=True)
    for c in LR_COLUMNS:
        t[c] = t[c].astype(object).where(t[c].notna(), None)
    return t[list(LR_COLUMNS)]


def read_lr_table(path: str | os.PathLike[str], *, resource: str | None = None) -> pd.DataFrame:
    """Read a ligand–receptor database file (csv/tsv/parquet) and :func:`expand_cellchat` it."""
    p = Path(path).expanduser()
    return expand_cellchat(_read_table(p, "LR table"), resource=resource, where=str(p))


def _grn_from_wide(columns: list[str], targets: pd.Series, column: Callable[[str], np.ndarray],
                   where: str) -> pd.DataFrame:
    """Edges of a wide TF_info_matrix; ``column(name)`` returns a TF column as a numeric array."""
    tf_cols = [c for c in columns if c not in (_WIDE_GRN_TARGET, _WIDE_GRN_PEAK)]
    if not tf_cols:
        raise InputError(f"{where}: wide base GRN has no TF columns besides {_WIDE_GRN_PEAK}, "
                         f"{_WIDE_GRN_TARGET}")
    targets = _clean_names(targets)
    keep = (targets.notna() & (targets != "")).to_numpy()
    tcodes, tuniq = pd.factorize(targets, sort=True)
    tf_names = np.asarray([str(c).strip() for c in tf_cols], dtype=object)
    order = np.argsort(tf_names, kind="stable")  # TF code = rank of its name
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    # occupancy of (target, TF): duplicates across peaks collapse; nonzero() gives (target, TF) order
    occ = np.zeros((len(tuniq), len(tf_cols)), dtype=bool)
    for j, c in enumerate(tf_cols):
        v = column(c)
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_):
            raise InputError(f"{where}: TF column {c!r} is not 0/1 numbers ({v.dtype}); a CellOracle "
                             f"TF_info_matrix has {_WIDE_GRN_PEAK}, {_WIDE_GRN_TARGET}, then one 0/1 column "
                             "per TF")
        hit = v > 0
        if v.dtype.kind == "f":
            hit &= ~np.isnan(v)
        rows = np.flatnonzero(hit & keep)
        occ[tcodes[rows], rank[j]] = True
    ti, si = np.nonzero(occ)
    tgt = np.asarray(tuniq, dtype=object)[ti]
    src = tf_names[order][si]
    return pd.DataFrame({SOURCE: src, TARGET: tgt})


def _frame_column(df: pd.DataFrame) -> Callable[[str], np.ndarray]:
    def get(c: str) -> np.ndarray:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col):
            return col.to_numpy(dtype=object)
        return col.to_numpy(dtype=np.float64, na_value=np.nan)

    return get


def _grn_from_long(df: pd.DataFrame, where: str) -> pd.DataFrame:
    cols = {c.lower(): c for c in df.columns}
    s, t = _clean_names(df[cols[SOURCE]]), _clean_names(df[cols[TARGET]])
    ok = (s.notna() & t.notna()).to_numpy()
    if not ok.all():
        log.warning("%s: skipped %d GRN row(s) with an empty source or target", where, int((~ok).sum()))
    out = pd.DataFrame({SOURCE: s[ok].astype(str).to_numpy(), TARGET: t[ok].astype(str).to_numpy()})
    out = out.drop_duplicates().sort_values([TARGET, SOURCE], kind="stable").reset_index(drop=True)
    return out


def grn_edges(df: pd.DataFrame, where: str = "base GRN") -> pd.DataFrame:
    """Convert an in-memory base GRN (wide TF_info_matrix or long ``source,target``) to edges.

    Returns
    -------
    pandas.DataFrame
        Columns ``source`` (TF) and ``target``, deduplicated, sorted by ``(target, source)``.
    """
    cols = {str(c).lower() for c in df.columns}
    if _WIDE_GRN_TARGET in df.columns:
        return _grn_from_wide([str(c) for c in df.columns], df[_WIDE_GRN_TARGET], _frame_column(df), where)
    if SOURCE in cols and TARGET in cols:
        return _grn_from_long(df, where)
    raise InputError(
        f"{where}: unrecognised base GRN columns ({short_list(df.columns)}); expected a CellOracle "
        f"TF_info_matrix ('{_WIDE_GRN_PEAK}', '{_WIDE_GRN_TARGET}', one 0/1 column per TF) or a long "
        f"table with '{SOURCE}' (TF) and '{TARGET}' columns"
    )


def read_base_grn(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a base GRN file into ``source`` (TF) → ``target`` edges.

    Accepts the CellOracle wide ``TF_info_matrix`` parquet (``peak_id``, ``gene_short_name`` then
    one 0/1 column per TF; a value > 0 is an edge TF → ``gene_short_name``), deduplicated across
    peaks, or a long parquet/csv/tsv table with ``source,target`` columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``source, target``, deduplicated, sorted by ``(target, source)``.
    """
    p = Path(path).expanduser()
    if p.is_file() and _is_parquet(p):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p)
        except Exception as e:
            raise InputError(f"cannot read base GRN file {p} as parquet ({type(e).__name__}); expected a "
                             "CellOracle TF_info_matrix parquet or a source,target table") from e
        names = [str(c) for c in table.column_names]
        if _WIDE_GRN_TARGET in names:  # fast path: no pandas frame of 1,000+ float columns
            def column(c: str) -> np.ndarray:
                return np.asarray(table.column(c).to_numpy())

            return _grn_from_wide(names, table.column(_WIDE_GRN_TARGET).to_pandas(), column, str(p))
        df = table.to_pandas()
        if len(df.columns) and str(df.columns[0]).startswith("Unnamed: "):
            df = df.iloc[:, 1:]
        return grn_edges(df, str(p))
    return grn_edges(_read_table(p, "base GRN"), str(p))


def nichenet_edges(df: pd.DataFrame, *, min_weight: float = 0.0,
                   where: str = "NicheNet matrix") -> pd.DataFrame:
    """Convert a NicheNet ligand–target matrix (index = targets, columns = ligands) to edges.

    A long table with ``source`` (ligand), ``target`` and ``weight`` columns is accepted too.
    Entries with ``weight > min_weight`` are kept, ligand-major (matrix column order).

    Returns
    -------
    pandas.DataFrame
        Columns ``source`` (ligand), ``target``, ``weight`` (float64).
    """
    lower = {str(c).lower(): c for c in df.columns}
    if {SOURCE, TARGET, WEIGHT} <= set(lower):
        w = pd.to_numeric(df[lower[WEIGHT]], errors="coerce").to_numpy(dtype=np.float64)
        keep = np.isfinite(w) & (w > min_weight)
        out = pd.DataFrame({SOURCE: df[lower[SOURCE]].astype(str).to_numpy()[keep],
                            TARGET: df[lower[TARGET]].astype(str).to_numpy()[keep], WEIGHT: w[keep]})
        return out.drop_duplicates([SOURCE, TARGET]).reset_index(drop=True)
    if len(df.columns) and not pd.api.types.is_numeric_dtype(df[df.columns[0]]) and not isinstance(
            df.index, pd.MultiIndex) and pd.api.types.is_integer_dtype(df.index):
        df = df.set_index(df.columns[0])  # a matrix written without its index: the first column holds targets
    nonnum = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if nonnum:
        raise InputError(f"{where}: column(s) {short_list(nonnum, 4)} are not numeric; expected a "
                         "ligand–target matrix with target genes as index (first column) and one numeric "
                         "column per ligand")
    m = df.to_numpy(dtype=np.float64, na_value=0.0)
    lig_idx, tgt_idx = np.nonzero(m.T > min_weight)
    ligands = np.asarray([str(c) for c in df.columns], dtype=object)
    targets = np.asarray([str(i) for i in df.index], dtype=object)
    out = pd.DataFrame({SOURCE: ligands[lig_idx], TARGET: targets[tgt_idx], WEIGHT: m[tgt_idx, lig_idx]})
    return out.drop_duplicates([SOURCE, TARGET]).reset_index(drop=True)


def read_nichenet(path: str | os.PathLike[str], *, min_weight: float = 0.0) -> pd.DataFrame:
    """Read a NicheNet ligand–target matrix (parquet or csv; index = targets, columns = ligands).

    Returns
    -------
    pandas.DataFrame
        ``source`` (ligand), ``target``, ``weight``, keeping ``weight > min_weight``.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"NicheNet file {p} does not exist; check the path")
    if _is_parquet(p):
        df = _read_table(p, "NicheNet")
    else:
        try:
            df = pd.read_csv(p, sep=_text_sep(p), index_col=0)
        except Exception as e:
            raise InputError(f"cannot read NicheNet file {p} ({type(e).__name__}); expected parquet or csv "
                             "with target genes in the first column and one column per ligand") from e
        if {SOURCE, TARGET} <= {str(c).lower() for c in df.columns}:
            df = df.reset_index(drop=True)
    return nichenet_edges(df, min_weight=min_weight, where=str(p))

# --------------------------------------------------------------------------------------------------
# Assembling
# --------------------------------------------------------------------------------------------------

PathOrFrame: TypeAlias = str | os.PathLike[str] | pd.DataFrame


def _species_check(species: str, grn: pd.DataFrame, lr: pd.DataFrame, grn_name: str, lr_name: str) -> None:
    g = guess_species(grn[TARGET].iloc[:: max(1, len(grn) // 100)]) if len(grn) else None
    lsp = guess_species(lr["ligand"]) if len(lr) else None
    if g is not None and lsp is not None and g != lsp:
        raise InputError(f"the genes of {grn_name} look {g} but those of {lr_name} look {lsp}; use a base "
                         "GRN and an LR table of the same species")
    seen = lsp or g
    if seen is not None and seen != species:
        name = lr_name if lsp else grn_name
        raise InputError(f"species is {species!r} but the gene symbols of {name} look {seen}; pass "
                         f"--species {seen} or use databases of the right species")


def build_network(base_grn: PathOrFrame, lr_table: PathOrFrame, nichenet: PathOrFrame | None = None, *,
                  species: str, lr_resource: str | None = None, nichenet_min_weight: float = 0.0,
                  nichenet_tfs_only: bool = True) -> pd.DataFrame:
    """Assemble the long network table from real sources.

    Parameters
    ----------
    base_grn
        Path to, or frame of, a base GRN (see :func:`read_base_grn`).
    lr_table
        Path to, or frame of, a ligand–receptor database (see :func:`expand_cellchat`).
    nichenet
        Optional path to, or frame of, a NicheNet ligand–target matrix (see :func:`read_nichenet`).
    species
        ``"mouse"`` or ``"human"``; checked against the gene symbols.
    lr_resource
        For LIANA tables holding several resources: which one to use.
    nichenet_min_weight
        Keep NicheNet entries with weight strictly above this.
    nichenet_tfs_only
        Keep only NicheNet edges whose target is a TF of the base GRN (the only ones modulator
        selection uses; the full matrix has millions of entries).

    Returns
    -------
    pandas.DataFrame
        ``source, target, edge_type, weight, signaling``: ``grn`` rows sorted by (target, TF), then
        ``lr`` rows in database order, then ``nichenet`` rows.
    """
    check_species(species)
    if isinstance(base_grn, pd.DataFrame):
        grn = grn_edges(base_grn)
    else:
        grn = read_base_grn(base_grn)
    if isinstance(lr_table, pd.DataFrame):
        lr = expand_cellchat(lr_table, resource=lr_resource)
    else:
        lr = read_lr_table(lr_table, resource=lr_resource)
    if not len(lr):
        raise InputError("the LR table has no ligand–receptor pairs; check the file")
    _species_check(species, grn, lr,
                   "the base GRN" if isinstance(base_grn, pd.DataFrame) else str(base_grn),
                   "the LR table" if isinstance(lr_table, pd.DataFrame) else str(lr_table))
    n_grn, n_lr = len(grn), len(lr)
    src = [grn[SOURCE].to_numpy(dtype=object), lr["ligand"].to_numpy(dtype=object)]
    tgt = [grn[TARGET].to_numpy(dtype=object), lr["receptor"].to_numpy(dtype=object)]
    etype = [np.full(n_grn, _keys.EDGE_GRN, dtype=object), np.full(n_lr, _keys.EDGE_LR, dtype=object)]
    weight = [np.ones(n_grn), np.ones(n_lr)]
    sig = [np.full(n_grn, None, dtype=object), lr["signaling"].to_numpy(dtype=object)]
    if nichenet is not None:
        if isinstance(nichenet, pd.DataFrame):
            nn = nichenet_edges(nichenet, min_weight=nichenet_min_weight)
        else:
            nn = read_nichenet(nichenet, min_weight=nichenet_min_weight)
        if nichenet_tfs_only and len(grn):
            before = len(nn)
            nn = nn.loc[nn[TARGET].isin(set(grn[SOURCE])).to_numpy()]
            log.info("NicheNet: kept %d of %d edges whose target is a base-GRN TF", len(nn), before)
        src.append(nn[SOURCE].to_numpy(dtype=object))
        tgt.append(nn[TARGET].to_numpy(dtype=object))
        etype.append(np.full(len(nn), _keys.EDGE_NICHENET, dtype=object))
        weight.append(nn[WEIGHT].to_numpy(dtype=np.float64))
        sig.append(np.full(len(nn), None, dtype=object))
    return pd.DataFrame({SOURCE: np.concatenate(src), TARGET: np.concatenate(tgt),
                         EDGE_TYPE: np.concatenate(etype), WEIGHT: np.concatenate(weight),
                         SIGNALING: np.concatenate(sig)})
