"""The prior network: base GRN, ligand–receptor pairs and NicheNet ligand→TF links (SPEC §2.2).

One parquet per species, ``{species}_network.parquet``, in long format:

=============  ========  =======================================================================
column         type      meaning
=============  ========  =======================================================================
``source``     string    TF (``grn``), ligand (``lr``, ``nichenet``)
``target``     string    target gene (``grn``), receptor (``lr``), TF (``nichenet``)
``edge_type``  string    ``grn``, ``lr`` or ``nichenet``
``weight``     float     NicheNet regulatory potential; 1.0 for the other edge types
``signaling``  string    ``lr`` only: ``Secreted Signaling``, ``ECM-Receptor``, ``Cell-Cell Contact``
=============  ========  =======================================================================

``lr`` rows are kept in database order: a ligand's signaling type (and so its radius when
``per_ligand_radius`` is on) comes from its first ``lr`` row.

This module reads the real sources (:func:`read_base_grn`, :func:`read_lr_table` /
:func:`expand_cellchat`, :func:`read_nichenet`), assembles and writes the file
(:func:`build_network`, :func:`write_network`), finds and loads it (:func:`resolve_network_dir`,
:func:`load_network`) and offers a typed view with fast lookups (:class:`Network`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, short_list
from .atomic import atomic_write

if TYPE_CHECKING:
    from ..config import SpaceshipConfig

log = logging.getLogger("spacetravlr_py.io")

SOURCE, TARGET, EDGE_TYPE, WEIGHT, SIGNALING = _keys.NETWORK_COLUMNS
REQUIRED_COLUMNS: tuple[str, ...] = (SOURCE, TARGET, EDGE_TYPE)
"""Columns a network file must have; ``weight`` (default 1.0) and ``signaling`` are optional."""

LR_COLUMNS: tuple[str, ...] = ("ligand", "receptor", "pathway", "signaling")
"""Columns of an expanded ligand–receptor table (:func:`expand_cellchat`)."""
COMPLEX_SEP = "_"
"""Subunits of a multi-subunit complex are joined by this character (CellChat, LIANA)."""

_LIANA_COLUMNS = ("source_genesymbol", "target_genesymbol")
_CPDB_COLUMNS = ("0", "1", "2", "3")
_WIDE_GRN_TARGET = "gene_short_name"
_WIDE_GRN_PEAK = "peak_id"
_SPECIES_HINT = 'set [data].species = "mouse" or "human"'
_BUILD_HINT = "spacetravlr network build --grn BASE_GRN --lr LR_TABLE -o DIR"

# --------------------------------------------------------------------------------------------------
# Species
# --------------------------------------------------------------------------------------------------

_HAS_LETTER = re.compile(r"[A-Za-z]")
_HUMAN_ORF = re.compile(r"^C\d+orf\d+", re.IGNORECASE)


def _symbol_style(symbol: str) -> str | None:
    """``"mouse"`` for ``Abc1``-style symbols, ``"human"`` for ``ABC1``, else None."""
    if symbol.startswith("ENSMUSG"):
        return "mouse"
    if symbol.startswith("ENSG"):
        return "human"
    if _HUMAN_ORF.match(symbol):  # C1orf112: human despite the lowercase letters
        return "human"
    letters = [c for c in symbol if c.isalpha()]
    if not letters:
        return None
    if all(c.isupper() for c in letters):
        return "human"
    if letters[0].isupper() and any(c.islower() for c in letters):
        return "mouse"
    return None


def species_votes(names: Iterable[object], n: int = 100) -> tuple[int, int, list[str]]:
    """Count mouse-style and human-style symbols among the first ``n`` that contain letters.

    Returns
    -------
    (mouse, human, examined)
        Vote counts and the symbols examined.
    """
    examined: list[str] = []
    for name in names:
        s = str(name).strip()
        if _HAS_LETTER.search(s):
            examined.append(s)
            if len(examined) >= n:
                break
    mouse = human = 0
    for s in examined:
        style = _symbol_style(s)
        if style == "mouse":
            mouse += 1
        elif style == "human":
            human += 1
    return mouse, human, examined


def guess_species(names: Iterable[object], n: int = 100) -> str | None:
    """Like :func:`infer_species` but returns None instead of raising when undecided."""
    mouse, human, _ = species_votes(names, n)
    if mouse > human:
        return "mouse"
    if human > mouse:
        return "human"
    return None


def infer_species(var_names: Iterable[object], *, n: int = 100, hint: str = _SPECIES_HINT,
                  what: str = "var_names") -> str:
    """Infer ``"mouse"`` or ``"human"`` from gene symbols by majority vote.

    Up to the first ``n`` symbols that contain letters vote: ``Abc1`` (first letter upper case,
    some lower case letters) is mouse, ``ABC1`` (all letters upper case) is human. Ensembl ids
    (``ENSMUSG…`` / ``ENSG…``) and ``C1orf112``-style human names are recognised too.

    Parameters
    ----------
    var_names
        Gene symbols, e.g. ``adata.var_names``.
    n
        How many symbols with letters to examine.
    hint
        The fix suggested in the error message.
    what
        What the symbols are, for the error message.

    Returns
    -------
    str
        ``"mouse"`` or ``"human"``.

    Raises
    ------
    InputError
        On a tie (including no usable symbol at all).
    """
    mouse, human, examined = species_votes(var_names, n)
    if mouse > human:
        return "mouse"
    if human > mouse:
        return "human"
    raise InputError(
        f"cannot tell the species from {what}: {mouse} mouse-style (Abc1) and {human} human-style (ABC1) "
        f"symbols among the first {len(examined)} with letters (e.g. {short_list(examined, 4)}); {hint}"
    )


def _check_species(species: str | None) -> str:
    if species not in _keys.SPECIES:
        raise InputError(f"unknown species {species!r}; use one of {', '.join(_keys.SPECIES)}")
    return species


def network_filename(species: str) -> str:
    """``{species}_network.parquet``."""
    return _keys.NETWORK_FILE.format(species=_check_species(species))


# --------------------------------------------------------------------------------------------------
# Finding and loading the network file
# --------------------------------------------------------------------------------------------------


def package_data_dir() -> Path:
    """The ``data`` folder shipped inside the installed package."""
    import spacetravlr_py

    return Path(spacetravlr_py.__file__).resolve().parent / "data"


def _as_dir(p: str | os.PathLike[str], fname: str) -> Path:
    path = Path(p).expanduser()
    if path.name == fname and not path.is_dir():
        return path.parent
    return path


def resolve_network_dir(configured: str | os.PathLike[str] | None, species: str) -> Path:
    """Find the folder holding ``{species}_network.parquet``.

    Order: ``configured`` (``[grn].network_data_dir`` or ``--network-dir``) → env
    ``SPACETRAVLR_DATA_DIR`` → the package's ``data`` folder → a ``data/`` folder in the current
    directory or any of its parents (``./data`` first).

    An explicitly configured folder must hold the file: it is an error rather than a silent
    fall-back when it does not. The folder used is logged on ``spacetravlr_py.io``.

    Parameters
    ----------
    configured
        The configured folder (a path to the file itself is accepted too), or None.
    species
        ``"mouse"`` or ``"human"``.

    Returns
    -------
    Path
        The folder containing the file.

    Raises
    ------
    InputError
        When no candidate folder holds the file (the message lists where it looked).
    """
    fname = network_filename(species)
    if configured is not None and str(configured) != "":
        d = _as_dir(configured, fname)
        if (d / fname).is_file():
            log.info("network: using %s (configured folder)", d / fname)
            return d
        raise InputError(
            f"network_data_dir {d} has no {fname}; fix [grn].network_data_dir / --network-dir "
            f"or build it with `{_BUILD_HINT.replace('DIR', str(d))}`"
        )
    looked: list[str] = []
    candidates: list[tuple[Path, str]] = []
    env = os.environ.get(_keys.DATA_DIR_ENV)
    if env:
        candidates.append((_as_dir(env, fname), f"${_keys.DATA_DIR_ENV}"))
    candidates.append((package_data_dir(), "package data"))
    for d, why in candidates:
        if (d / fname).is_file():
            log.info("network: using %s (%s)", d / fname, why)
            return d
        looked.append(f"{d} ({why})")
    cwd = Path.cwd().resolve()
    for i, base in enumerate((cwd, *cwd.parents)):
        d = base / "data"
        if (d / fname).is_file():
            log.info("network: using %s (found walking up from %s)", d / fname, cwd)
            return d
        if i == 0:
            looked.append(f"{d} and the data/ folders of its {len(cwd.parents)} parent folders")
    raise InputError(
        f"no {fname} found (looked in: {'; '.join(looked)}); build one with `{_BUILD_HINT}` and set "
        f"[grn].network_data_dir (or ${_keys.DATA_DIR_ENV}) to DIR"
    )


def find_network_file(path_or_dir: str | os.PathLike[str] | None, species: str | None = None) -> Path:
    """Path of the network parquet from a file, a folder or nothing (resolution order).

    A folder without ``species`` is accepted when it holds exactly one ``*_network.parquet``.
    """
    if path_or_dir is None or str(path_or_dir) == "":
        if species is None:
            raise InputError(f"cannot locate the network without a species; {_SPECIES_HINT}")
        return resolve_network_dir(None, species) / network_filename(species)
    p = Path(path_or_dir).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise InputError(f"network path {p} does not exist; pass the folder holding "
                         f"{_keys.NETWORK_FILE} or build it with `{_BUILD_HINT}`")
    if species is not None:
        return resolve_network_dir(p, species) / network_filename(species)
    found = sorted(p.glob(_keys.NETWORK_FILE.format(species="*")))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(f"{p} holds no {_keys.NETWORK_FILE} file; build one with "
                         f"`{_BUILD_HINT.replace('DIR', str(p))}`")
    raise InputError(f"{p} holds several network files ({short_list(f.name for f in found)}); "
                     f"{_SPECIES_HINT} to choose one")


def validate_network(df: pd.DataFrame, where: str = "network") -> pd.DataFrame:
    """Check and normalise a long network table; returns a new frame with the five columns.

    ``weight`` defaults to 1.0 and ``signaling`` to missing when absent. Errors name ``where``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{where}: missing column {missing[0]!r} (found columns: {short_list(df.columns)}); a network "
            f"needs {', '.join(REQUIRED_COLUMNS)} (weight, signaling optional) — rebuild it with "
            f"`{_BUILD_HINT}`"
        )
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    for c in (SOURCE, TARGET, EDGE_TYPE):
        col = df[c]
        values = col.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(values, skipna=False) != "string":  # all-str columns skip this
            na = pd.isna(values)
            if na.any():
                row = int(np.flatnonzero(na)[0])
                raise InputError(f"{where}: column {c!r} is empty in row {row}; every edge needs "
                                 f"{SOURCE}, {TARGET} and {EDGE_TYPE}")
            values = col.astype(str).to_numpy(dtype=object)
        out[c] = values
    bad = sorted(set(pd.unique(out[EDGE_TYPE])) - set(_keys.EDGE_TYPES))
    if bad:
        raise InputError(f"{where}: unknown {EDGE_TYPE} value(s) {short_list(bad, 4)}; allowed: "
                         f"{', '.join(_keys.EDGE_TYPES)}")
    if WEIGHT in df.columns:
        w = pd.to_numeric(df[WEIGHT], errors="coerce")
        finite = np.isfinite(w.to_numpy(dtype=np.float64, na_value=np.nan))
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise InputError(f"{where}: column {WEIGHT!r} is not a finite number in row {row} "
                             f"({df[WEIGHT].iloc[row]}); weights must be finite floats")
        out[WEIGHT] = w.to_numpy(dtype=np.float64)
    else:
        out[WEIGHT] = 1.0
    if SIGNALING in df.columns:
        sig = df[SIGNALING].astype(object).to_numpy()
        out[SIGNALING] = np.where(pd.isna(sig), None, sig)
    else:
        out[SIGNALING] = None
    return out


def load_network(path_or_dir: str | os.PathLike[str] | None = None,
                 species: str | None = None) -> pd.DataFrame:
    """Read and validate a ``{species}_network.parquet``.

    Parameters
    ----------
    path_or_dir
        The parquet file, the folder holding it, or None to use :func:`resolve_network_dir`.
    species
        ``"mouse"`` or ``"human"``; needed when ``path_or_dir`` is None or a folder with several
        network files.

    Returns
    -------
    pandas.DataFrame
        Columns ``source, target, edge_type, weight, signaling``, rows in file order.
    """
    path = find_network_file(path_or_dir, species)
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several exception types for a file that is not parquet
        first = str(e).splitlines()[0] if str(e) else ""
        raise InputError(f"cannot read network file {path} as parquet ({type(e).__name__}: {first}); "
                         f"rebuild it with `{_BUILD_HINT}`") from e
    out = validate_network(df, str(path))
    log.info("network: loaded %s (%d edges)", path, len(out))
    out.attrs["path"] = str(path)
    return out


# --------------------------------------------------------------------------------------------------
# Counts and the typed view
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkCounts:
    """Sizes of a network table (distinct edges and genes per edge type)."""

    grn_edges: int
    tfs: int
    targets: int
    lr_pairs: int
    ligands: int
    receptors: int
    nichenet_edges: int
    nichenet_ligands: int
    nichenet_tfs: int

    def rows(self) -> list[tuple[str, int]]:
        """``(label, value)`` rows for a printed table."""
        return [
            ("grn edges", self.grn_edges), ("TFs", self.tfs), ("GRN targets", self.targets),
            ("LR pairs", self.lr_pairs), ("ligands", self.ligands), ("receptors", self.receptors),
            ("NicheNet edges", self.nichenet_edges), ("NicheNet ligands", self.nichenet_ligands),
            ("NicheNet TFs", self.nichenet_tfs),
        ]


def network_counts(df: pd.DataFrame) -> NetworkCounts:
    """Count distinct edges and genes of a long network table."""
    et = df[EDGE_TYPE].to_numpy()

    src, tgt = df[SOURCE].to_numpy(), df[TARGET].to_numpy()

    def part(kind: str) -> tuple[int, int, int]:
        mask = et == kind
        if not mask.any():
            return (0, 0, 0)
        scodes, suniq = pd.factorize(src[mask])
        tcodes, tuniq = pd.factorize(tgt[mask])
        pairs = _sorted_unique(scodes.astype(np.int64) * max(len(tuniq), 1) + tcodes.astype(np.int64))
        return (len(pairs), len(suniq), len(tuniq))

    g, lr, nn = part(_keys.EDGE_GRN), part(_keys.EDGE_LR), part(_keys.EDGE_NICHENET)
    return NetworkCounts(g[0], g[1], g[2], lr[0], lr[1], lr[2], nn[0], nn[1], nn[2])


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int64 array (sort + diff; already-sorted input is O(n))."""
    if a.size > 1 and not bool(np.all(a[1:] >= a[:-1])):
        a = np.sort(a)
    if a.size <= 1:
        return a
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


class _PairIndex:
    """Deduplicated ``key -> sorted values`` lookup over two string columns, built once with numpy."""

    def __init__(self, keys: pd.Series, values: pd.Series) -> None:
        kcodes, kuniq = pd.factorize(keys, sort=True)
        vcodes, vuniq = pd.factorize(values, sort=True)
        nv = max(len(vuniq), 1)
        combined = _sorted_unique(kcodes.astype(np.int64) * nv + vcodes.astype(np.int64))
        k = combined // nv
        self._values = np.asarray(vuniq, dtype=object)[combined % nv]
        ar = np.arange(len(kuniq))
        self._start = np.searchsorted(k, ar, side="left")
        self._end = np.searchsorted(k, ar, side="right")
        self._pos: dict[str, int] = {str(name): i for i, name in enumerate(kuniq)}

    def get(self, key: str) -> list[str]:
        i = self._pos.get(key)
        if i is None:
            return []
        return list(self._values[self._start[i]:self._end[i]])

    def keys(self) -> list[str]:
        return list(self._pos)


@dataclass
class Network:
    """Typed view of a network table with lookups for modulator selection (SPEC §4).

    Build it with :meth:`from_frame` or :meth:`load`; the indexes are computed once.

    Attributes
    ----------
    frame : pandas.DataFrame
        The validated long table.
    species : str or None
    path : Path or None
        The file it was read from.
    ligand_signaling : dict
        ``{ligand: signaling}`` from each ligand's first ``lr`` row in file (database) order.
    """

    frame: pd.DataFrame
    species: str | None = None
    path: Path | None = None
    ligand_signaling: dict[str, str | None] = field(init=False, repr=False)
    _tfs_of: _PairIndex = field(init=False, repr=False)
    _targets_idx: _PairIndex | None = field(init=False, repr=False, default=None)
    _lr: list[tuple[str, str]] = field(init=False, repr=False)
    _lr_signaling: list[str | None] = field(init=False, repr=False)
    _nichenet: list[tuple[str, str, float]] = field(init=False, repr=False)
    _nichenet_into: dict[str, list[tuple[str, float]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        df = self.frame
        et = df[EDGE_TYPE].to_numpy()
        grn = df.loc[et == _keys.EDGE_GRN]
        self._tfs_of = _PairIndex(grn[TARGET], grn[SOURCE])

        lr = df.loc[et == _keys.EDGE_LR, [SOURCE, TARGET, SIGNALING]].drop_duplicates([SOURCE, TARGET])
        sig = [None if pd.isna(s) else str(s) for s in lr[SIGNALING].tolist()]
        self._lr = list(zip(lr[SOURCE].tolist(), lr[TARGET].tolist()))
        self._lr_signaling = sig
        first: dict[str, str | None] = {}
        for (lig, _), s in zip(self._lr, sig):
            first.setdefault(lig, s)
        self.ligand_signaling = first

        nn = df.loc[et == _keys.EDGE_NICHENET, [SOURCE, TARGET, WEIGHT]].drop_duplicates([SOURCE, TARGET])
        self._nichenet = list(zip(nn[SOURCE].tolist(), nn[TARGET].tolist(),
                                  nn[WEIGHT].astype(float).tolist()))
        into: dict[str, list[tuple[str, float]]] = {}
        for lig, tf, w in self._nichenet:
            into.setdefault(tf, []).append((lig, w))
        self._nichenet_into = into

    def _targets_of(self) -> _PairIndex:
        """TF -> targets index, built on first use (training only needs target -> TFs)."""
        if self._targets_idx is None:
            grn = self.frame.loc[self.frame[EDGE_TYPE].to_numpy() == _keys.EDGE_GRN]
            self._targets_idx = _PairIndex(grn[SOURCE], grn[TARGET])
        return self._targets_idx

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_frame(cls, df: pd.DataFrame, species: str | None = None, *, validate: bool = True) -> Network:
        """Wrap a long network table (validated unless ``validate=False``)."""
        frame = validate_network(df) if validate else df
        path = df.attrs.get("path")
        return cls(frame, species=species, path=Path(path) if path else None)

    @classmethod
    def load(cls, path_or_dir: str | os.PathLike[str] | None = None, species: str | None = None) -> Network:
        """:func:`load_network` then wrap; the species is taken from the file name when not given."""
        df = load_network(path_or_dir, species)
        path = Path(df.attrs["path"])
        if species is None:
            stem = path.name.split("_")[0]
            species = stem if stem in _keys.SPECIES else None
        return cls(df, species=species, path=path)

    # -- lookups ----------------------------------------------------------------------------------
    def tfs_of(self, target: str) -> list[str]:
        """TFs with a ``grn`` edge into ``target``: deduplicated, sorted (may include ``target``)."""
        return self._tfs_of.get(target)

    def targets_of(self, tf: str) -> list[str]:
        """Targets of ``tf``'s ``grn`` edges: deduplicated, sorted."""
        return self._targets_of().get(tf)

    def lr_pairs(self) -> list[tuple[str, str]]:
        """``(ligand, receptor)`` of every ``lr`` edge, deduplicated, in file (database) order."""
        return list(self._lr)

    def lr_signaling(self) -> list[tuple[str, str, str | None]]:
        """``(ligand, receptor, signaling)`` in the order of :meth:`lr_pairs`."""
        return [(lig, rec, s) for (lig, rec), s in zip(self._lr, self._lr_signaling)]

    def ligand_signaling_among(self, genes: Collection[str]) -> dict[str, str | None]:
        """Signaling of each ligand from its first ``lr`` row whose ligand *and* receptor are in ``genes``.

        This is how the Python reference 0.1.18 picks a ligand's radius (the expanded CellChat table
        restricted to ``var_names``, then the first row per ligand); it can differ from
        :attr:`ligand_signaling` when a ligand's first receptor is not measured.
        """
        present = genes if isinstance(genes, set | frozenset | dict) else set(genes)
        out: dict[str, str | None] = {}
        for (lig, rec), s in zip(self._lr, self._lr_signaling):
            if lig in present and rec in present:
                out.setdefault(lig, s)
        return out

    def nichenet_edges(self) -> list[tuple[str, str, float]]:
        """``(ligand, tf, weight)`` of every ``nichenet`` edge, deduplicated, in file order."""
        return list(self._nichenet)

    def nichenet_into(self, tf: str) -> list[tuple[str, float]]:
        """``(ligand, weight)`` of the ``nichenet`` edges into ``tf``, in file order."""
        return list(self._nichenet_into.get(tf, ()))

    # -- summaries --------------------------------------------------------------------------------
    @property
    def tfs(self) -> list[str]:
        """Sorted sources of ``grn`` edges."""
        return self._targets_of().keys()

    @property
    def grn_targets(self) -> list[str]:
        """Sorted targets of ``grn`` edges."""
        return self._tfs_of.keys()

    @property
    def ligands(self) -> list[str]:
        """Ligands of ``lr`` edges in order of first appearance."""
        return list(self.ligand_signaling)

    @property
    def receptors(self) -> list[str]:
        """Receptors of ``lr`` edges in order of first appearance."""
        return list(dict.fromkeys(r for _, r in self._lr))

    @property
    def counts(self) -> NetworkCounts:
        return network_counts(self.frame)


# --------------------------------------------------------------------------------------------------
# Reading sources
# --------------------------------------------------------------------------------------------------


def _is_parquet(path: Path) -> bool:
    return any(s.lower() in (".parquet", ".pq") for s in path.suffixes)


def _read_table(path: Path, what: str) -> pd.DataFrame:
    """Read a parquet / csv / tsv table; a leading unnamed (index) column is dropped."""
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist; check the path")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if _is_parquet(path):
            df = pd.read_parquet(path)
        else:
            sep = "\t" if any(s in (".tsv", ".txt", ".tab") for s in suffixes) else ","
            df = pd.read_csv(path, sep=sep)
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
    suffixes = [s.lower() for s in p.suffixes]
    if _is_parquet(p):
        df = _read_table(p, "NicheNet")
    else:
        sep = "\t" if any(s in (".tsv", ".txt", ".tab") for s in suffixes) else ","
        try:
            df = pd.read_csv(p, sep=sep, index_col=0)
        except Exception as e:
            raise InputError(f"cannot read NicheNet file {p} ({type(e).__name__}); expected parquet or csv "
                             "with target genes in the first column and one column per ligand") from e
        if {SOURCE, TARGET} <= {str(c).lower() for c in df.columns}:
            df = df.reset_index(drop=True)
    return nichenet_edges(df, min_weight=min_weight, where=str(p))


# --------------------------------------------------------------------------------------------------
# Building and writing
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
    _check_species(species)
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


def _to_arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    arrays = [
        pa.array(df[SOURCE].to_numpy(dtype=object), type=pa.string()),
        pa.array(df[TARGET].to_numpy(dtype=object), type=pa.string()),
        pa.array(df[EDGE_TYPE].to_numpy(dtype=object), type=pa.string()),
        pa.array(df[WEIGHT].to_numpy(dtype=np.float64), type=pa.float64()),
        pa.array(df[SIGNALING].to_numpy(dtype=object), type=pa.string(), from_pandas=True),
    ]
    return pa.Table.from_arrays(arrays, names=list(_keys.NETWORK_COLUMNS))


def write_network(df: pd.DataFrame, out_dir: str | os.PathLike[str], species: str) -> Path:
    """Validate ``df`` and write it atomically to ``out_dir/{species}_network.parquet``.

    Returns
    -------
    Path
        The file written.
    """
    import pyarrow.parquet as pq

    fname = network_filename(species)
    out = validate_network(df, "network to write")
    table = _to_arrow(out)
    path = Path(out_dir).expanduser() / fname
    if path.parent.exists() and not path.parent.is_dir():
        raise InputError(f"output folder {path.parent} is a file; pass a folder to -o/--out-dir")
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    log.info("network: wrote %s (%d edges)", path, len(out))
    return path


def network_for(cfg: SpaceshipConfig, var_names: Sequence[str]) -> tuple[pd.DataFrame, str, Path]:
    """The network of a run: ``{species}_network.parquet`` found by the SPEC §2.2 resolution order
    (species from ``[data].species`` or inferred from ``var_names``). Returns (table, species, path)."""
    species = cfg.data.species or infer_species(var_names)
    directory = resolve_network_dir(cfg.grn.network_data_dir, species)
    path = directory / _keys.NETWORK_FILE.format(species=species)
    return load_network(path), species, path
