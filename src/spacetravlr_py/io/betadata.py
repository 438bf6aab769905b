"""Betadata files: one per target gene, the fitted coefficients (SPEC §5.3–5.4).

On disk (written by this package): Arrow IPC / feather (LZ4), first column ``Cluster`` (seed mode, one
row per cluster, label strings) or ``CellID`` (full mode, one row per cell), then ``beta0``, then
``beta_<modulator>``; all-zero modulator columns are dropped.

Read: feather, parquet or csv, written by us, by the Rust seed or by the Python reference (index of
cell ids, extra obs columns ignored), with or without the ``beta_`` prefix, ``beta0`` or ``beta_0``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, short_list
from ..naming import modulator_kind
from .atomic import atomic_write


@dataclass
class BetaFrame:
    """Coefficients of one target gene.

    Attributes
    ----------
    gene : str
        Target gene.
    row_kind : {"Cluster", "CellID"}
        Rows are cluster labels (seed mode) or cell ids (full mode / reference files).
    row_ids : list of str
        One label or cell id per row.
    intercept : (R,) float64
        ``beta0`` per row.
    modulators : list of str
        Modulator names without prefix: ``TF``, ``L$R``, ``L#TF`` or an extra gene.
    coefs : (R, M) float64
        ``coefs[r, m]`` is the coefficient of ``modulators[m]`` in row ``r``.
    groups : (M,) int
        Modulator family (0 TF/extra, 1 LR, 2 TF–ligand; 3 extra when known from training).
    disk_float32 : bool
        Written as float32 (full mode's per-cell betas: half the size; they are float32 network outputs).
    """

    gene: str
    row_kind: str
    row_ids: list[str]
    intercept: np.ndarray
    modulators: list[str]
    coefs: np.ndarray
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    disk_float32: bool = False

    def __post_init__(self) -> None:
        self.intercept = np.asarray(self.intercept, dtype=np.float64)
        # C order: kernels read one row (a cell or cluster) of betas at a time
        self.coefs = np.ascontiguousarray(
            np.asarray(self.coefs, dtype=np.float64).reshape(len(self.row_ids), len(self.modulators)))
        if len(self.groups) != len(self.modulators):
            self.groups = np.array([modulator_kind(m) for m in self.modulators], dtype=np.int64)

    @property
    def n_rows(self) -> int:
        return len(self.row_ids)

    def to_dataframe(self, *, drop_zero: bool = True) -> pd.DataFrame:
        """The on-disk table: id column, ``beta0``, ``beta_*`` (all-zero columns dropped)."""
        cols: dict[str, object] = {self.row_kind: list(self.row_ids), _keys.INTERCEPT: self.intercept}
        for j, m in enumerate(self.modulators):
            c = self.coefs[:, j]
            if drop_zero and not np.any(c):
                continue
            cols[_keys.BETA_PREFIX + m] = c
        return pd.DataFrame(cols)

    def is_all_zero(self) -> bool:
        return not (np.any(self.coefs) or np.any(self.intercept))


def betadata_path(out_dir: str | os.PathLike[str], gene: str) -> Path:
    """``out_dir/{gene}_betadata.feather``."""
    return Path(out_dir) / _keys.BETADATA_FEATHER.format(gene=gene)


def write_betadata(path: str | os.PathLike[str], frame: BetaFrame) -> Path:
    """Atomically write ``frame`` as Arrow IPC (LZ4): float64 coefficients, float32 when
    ``frame.disk_float32``."""
    import pyarrow as pa
    import pyarrow.feather as feather

    df = frame.to_dataframe()
    if frame.disk_float32:
        df = df.astype({c: np.float32 for c in df.columns[1:]})
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({b"spacetravlr.gene": frame.gene.encode()})
    return atomic_write(path, lambda p: feather.write_feather(table, p, compression="lz4"))


_ID_COLUMNS = (_keys.CLUSTER_COL, _keys.CELLID_COL, "Unnamed: 0", "", "index", "NAME")
"""First columns that hold row ids (the last three: a table saved with its index)."""
_SUFFIX_RE = re.compile(re.escape(_keys.BETADATA_SUFFIX) + r"\.(feather|parquet|csv)$")


def gene_of_path(path: str | os.PathLike[str]) -> str:
    """``FOXO1_betadata.parquet`` -> ``FOXO1``."""
    name = Path(path).name
    m = _SUFFIX_RE.search(name)
    if not m:
        raise InputError(f"{path}: not a betadata file (expected <gene>_betadata.feather|parquet|csv)")
    return name[: m.start()]


def _read_table(p: Path) -> pd.DataFrame:
    ext = p.suffix.lower()
    try:
        if ext == ".feather":
            import pyarrow.feather as feather

            return feather.read_table(p).to_pandas()
        if ext == ".parquet":
            return pd.read_parquet(p)
        if ext == ".csv":
            # ids stay strings (cluster "01" or cell id "1e5" must not become numbers), and floats
            # are parsed exactly (pandas' default parser can be 1 ulp off)
            head = pd.read_csv(p, nrows=0).columns
            id_col = [c for c in head[:1] if c in _ID_COLUMNS]
            return pd.read_csv(p, dtype=dict.fromkeys(id_col, str), float_precision="round_trip")
    except FileNotFoundError:
        raise InputError(f"{p}: betadata file not found") from None
    except Exception as e:
        raise InputError(f"{p}: cannot read betadata ({e.__class__.__name__}: {e})") from None
    raise InputError(f"{p}: unsupported betadata format '{ext}' (use .feather, .parquet or .csv)")


def _row_ids(col: pd.Series, source: str) -> list[str]:
    """Row ids as text; integer-valued numbers (the seed's cluster ids, also as floats) without ``.0``."""
    if col.isna().any():
        raise InputError(f"{source}: {int(col.isna().sum())} rows have no id in column '{col.name or 'index'}'; "
                         "every row needs a cluster or cell id")
    if pd.api.types.is_float_dtype(col) and np.all(np.isfinite(col)) and np.all(col == np.round(col)):
        return [str(int(v)) for v in col.tolist()]
    return [str(v) for v in col.tolist()]


def _check_rows(row_ids: list[str], what: str, source: str) -> None:
    """One row per cluster or cell: no empty table, no repeated id."""
    if not row_ids:
        raise InputError(f"{source}: no rows; a betadata file holds one row per cluster or per cell "
                         "(delete it, or write <gene>.orphan for a gene without a model)")
    repeated = pd.Index(row_ids).duplicated()
    if repeated.any():
        dup = row_ids[int(np.argmax(repeated))]
        raise InputError(f"{source}: {what} '{dup}' has {row_ids.count(dup)} rows; each cluster or cell "
                         "needs exactly one row")


def frame_from_table(df: pd.DataFrame, gene: str, *, source: str = "<table>") -> BetaFrame:
    """Interpret a betadata table in any of the accepted layouts."""
    cols = [str(c) for c in df.columns]
    row_kind = _keys.CELLID_COL
    if df.index.name in (_keys.CLUSTER_COL, _keys.CELLID_COL):
        # the id column saved as the (named) index, e.g. by DataFrame.to_parquet
        df = df.reset_index()
        cols = [str(c) for c in df.columns]
    if cols and cols[0] in (_keys.CLUSTER_COL, _keys.CELLID_COL):
        row_kind = cols[0]
        row_ids = _row_ids(df.iloc[:, 0], source)
        body = df.iloc[:, 1:]
    elif cols and cols[0] in _ID_COLUMNS:
        # a CSV written with its index: the first column holds the ids
        row_ids = _row_ids(df.iloc[:, 0], source)
        body = df.iloc[:, 1:]
    else:
        row_ids = _row_ids(pd.Series(df.index), source)
        body = df
    _check_rows(row_ids, row_kind if cols and cols[0] == row_kind else "row id", source)
    names = [str(c) for c in body.columns]
    intercept_col = next((c for c in names if c in _keys.INTERCEPT_ALIASES), None)
    has_prefix = any(c.startswith(_keys.BETA_PREFIX) and c not in _keys.INTERCEPT_ALIASES for c in names)
    mod_cols: list[str] = []
    mods: list[str] = []
    for c in names:
        if c == intercept_col or c in (_keys.CLUSTER_COL, _keys.CELLID_COL):
            continue
        if has_prefix:
            if c.startswith(_keys.BETA_PREFIX):
                mod_cols.append(c)
                mods.append(c[len(_keys.BETA_PREFIX):])
        elif pd.api.types.is_numeric_dtype(body[c]) and not pd.api.types.is_bool_dtype(body[c]):
            mod_cols.append(c)
            mods.append(c)
    if len(set(mods)) != len(mods):
        dup = sorted({m for m in mods if mods.count(m) > 1})
        raise InputError(f"{source}: duplicate modulator columns {dup}")
    if intercept_col is None and not mod_cols:
        raise InputError(f"{source}: no beta columns (expected beta0 and beta_<modulator> columns; "
                         f"found: {short_list(names)})")
    for c in [*([intercept_col] if intercept_col else []), *mod_cols]:
        if not (pd.api.types.is_numeric_dtype(body[c]) and not pd.api.types.is_bool_dtype(body[c])):
            raise InputError(f"{source}: column '{c}' is not numeric (dtype {body[c].dtype}); "
                             "beta columns hold numbers")
    coefs = body[mod_cols].to_numpy(dtype=np.float64) if mod_cols else np.zeros((len(row_ids), 0))
    intercept = body[intercept_col].to_numpy(dtype=np.float64) if intercept_col else np.zeros(len(row_ids))
    if not (np.isfinite(coefs).all() and np.isfinite(intercept).all()):
        allc = np.column_stack([intercept, coefs])
        bad = ~np.isfinite(allc)
        r, c = np.argwhere(bad)[0]
        col = (intercept_col or _keys.INTERCEPT) if c == 0 else mod_cols[c - 1]
        raise InputError(f"{source}: {int(bad.sum())} NaN/inf coefficients in {int(bad.any(axis=0).sum())} "
                         f"columns; first at row '{row_ids[r]}', column '{col}'; betadata must be finite")
    return BetaFrame(gene=gene, row_kind=row_kind, row_ids=row_ids, intercept=intercept,
                     modulators=mods, coefs=coefs)


def read_betadata(path: str | os.PathLike[str], gene: str | None = None) -> BetaFrame:
    """Read one betadata file (feather, parquet or csv) into a :class:`BetaFrame`.

    The gene defaults to the file-name stem before ``_betadata``.
    """
    p = Path(path)
    g = gene if gene is not None else gene_of_path(p)
    return frame_from_table(_read_table(p), g, source=str(p))


def list_betadata(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """``{gene: path}`` of every betadata file in ``directory`` (feather preferred over parquet/csv)."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{d}: betadata directory not found")
    found: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(_keys.BETADATA_EXTS)}
    for p in sorted(d.iterdir()):
        if not p.is_file() or not _SUFFIX_RE.search(p.name) or p.name.startswith("."):
            continue
        g = gene_of_path(p)
        if g not in found or rank[p.suffix.lower()] < rank[found[g].suffix.lower()]:
            found[g] = p
    return found
