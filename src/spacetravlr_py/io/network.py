"""The prior network file: base GRN, ligand–receptor pairs and NicheNet ligand→TF links (SPEC §2.2).

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

This module finds, validates, loads and writes the file (:func:`resolve_network_dir`,
:func:`load_network`, :func:`validate_network`, :func:`write_network`) and offers a typed view with
fast lookups (:class:`Network`). Building the file from database sources (CellChat, LIANA,
CellPhoneDB, base GRN, NicheNet) is :mod:`spacetravlr_py.io.network_build`; telling the species from
gene symbols is :mod:`spacetravlr_py.io.species` (:func:`infer_species` and :func:`guess_species`
are re-exported here for the callers that load a network for a dataset).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, short_list
from .atomic import atomic_write
from .species import SPECIES_HINT, check_species, guess_species, infer_species

__all__ = [
    "BUILD_HINT", "EDGE_TYPE", "REQUIRED_COLUMNS", "SIGNALING", "SOURCE", "TARGET", "WEIGHT", "Network",
    "NetworkCounts", "find_network_file", "guess_species", "infer_species", "load_network",
    "network_counts", "network_filename", "network_for", "package_data_dir", "resolve_network_dir",
    "validate_network", "write_network",
]

if TYPE_CHECKING:
    from ..config import SpaceshipConfig

log = logging.getLogger("spacetravlr_py.io")

SOURCE, TARGET, EDGE_TYPE, WEIGHT, SIGNALING = _keys.NETWORK_COLUMNS
REQUIRED_COLUMNS: tuple[str, ...] = (SOURCE, TARGET, EDGE_TYPE)
"""Columns a network file must have; ``weight`` (default 1.0) and ``signaling`` are optional."""
BUILD_HINT = "spacetravlr network build --grn BASE_GRN --lr LR_TABLE -o DIR"
"""The command named in errors about a missing or unreadable network file."""


def network_filename(species: str) -> str:
    """``{species}_network.parquet``."""
    return _keys.NETWORK_FILE.format(species=check_species(species))

# --------------------------------------------------------------------------------------------------
# Finding, loading and writing the network file
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
            f"or build it with `{BUILD_HINT.replace('DIR', str(d))}`"
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
        f"no {fname} found (looked in: {'; '.join(looked)}); build one with `{BUILD_HINT}` and set "
        f"[grn].network_data_dir (or ${_keys.DATA_DIR_ENV}) to DIR"
    )


def find_network_file(path_or_dir: str | os.PathLike[str] | None, species: str | None = None) -> Path:
    """Path of the network parquet from a file, a folder or nothing (resolution order).

    A folder without ``species`` is accepted when it holds exactly one ``*_network.parquet``.
    """
    if path_or_dir is None or str(path_or_dir) == "":
        if species is None:
            raise InputError(f"cannot locate the network without a species; {SPECIES_HINT}")
        return resolve_network_dir(None, species) / network_filename(species)
    p = Path(path_or_dir).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise InputError(f"network path {p} does not exist; pass the folder holding "
                         f"{_keys.NETWORK_FILE} or build it with `{BUILD_HINT}`")
    if species is not None:
        return resolve_network_dir(p, species) / network_filename(species)
    found = sorted(p.glob(_keys.NETWORK_FILE.format(species="*")))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(f"{p} holds no {_keys.NETWORK_FILE} file; build one with "
                         f"`{BUILD_HINT.replace('DIR', str(p))}`")
    raise InputError(f"{p} holds several network files ({short_list(f.name for f in found)}); "
                     f"{SPECIES_HINT} to choose one")


def validate_network(df: pd.DataFrame, where: str = "network") -> pd.DataFrame:
    """Check and normalise a long network table; returns a new frame with the five columns.

    ``weight`` defaults to 1.0 and ``signaling`` to missing when absent. Errors name ``where``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{where}: missing column {missing[0]!r} (found columns: {short_list(df.columns)}); a network "
            f"needs {', '.join(REQUIRED_COLUMNS)} (weight, signaling optional) — rebuild it with "
            f"`{BUILD_HINT}`"
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
                         f"rebuild it with `{BUILD_HINT}`") from e
    out = validate_network(df, str(path))
    log.info("network: loaded %s (%d edges)", path, len(out))
    out.attrs["path"] = str(path)
    return out


def network_for(cfg: SpaceshipConfig, var_names: Sequence[str]) -> tuple[pd.DataFrame, str, Path]:
    """The network of a run: ``{species}_network.parquet`` found by the SPEC §2.2 resolution order
    (species from ``[data].species`` or inferred from ``var_names``). Returns (table, species, path)."""
    species = cfg.data.species or infer_species(var_names)
    directory = resolve_network_dir(cfg.grn.network_data_dir, species)
    path = directory / _keys.NETWORK_FILE.format(species=species)
    return load_network(path), species, path



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
