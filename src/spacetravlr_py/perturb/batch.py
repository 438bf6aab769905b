"""Batch perturbations from a TOML file (the knockout screen is :mod:`spacetravlr_py.perturb.screen`).

Besides the format below, the seed's batch keys are read: ``parallelism`` (top level: jobs run at once;
``--batch-parallelism`` wins), ``compound_genes = [...]`` (= ``gene = [...]``), ``genes = "Foxo1"``, per-gene lists of
``n_propagation`` / ``beta_scale_factor`` / ``out`` (or one-element lists, broadcast), and the spatial
overrides ``radius``, ``ligand_grid_factor``, ``contact_distance`` — ``[spatial].radius``,
``[perturbation].ligand_grid_factor`` and ``[spatial].contact_distance`` of the run for these jobs: the
received ligands are recomputed once per distinct setting, so a job equals a perturbation of a run whose
repro TOML holds those values.

Batch file (relative paths resolve against the batch file's folder)::

    out_dir = "perturbations"         # each job writes <out_dir>/<name>.feather and .json
    n_propagation = 4                 # optional, default from the run TOML
    beta_scale_factor = 1.0           # optional
    cells_csv = "cells.csv"           # optional shared cells CSV (columns = lists of obs names)

    genes = ["Foxo1", "Pax5"]         # one job per gene (or gene = "Foxo1" for one job)
    desired_expr = [0, 3.5]           # scalar or one value per gene
    cells_csv_columns = ["tumour", ""]  # one scope per gene; "" = all cells

    [[jobs]]                          # more jobs; keys as above override the top level
    gene = ["Irf4", "Spi1"]           # a list under `gene` = one simultaneous perturbation
    desired_expr = [0, 0]
    cells_obs_file = "selected.txt"   # one obs name per line
    out = "irf4_spi1_ko.feather"      # explicit output path (single job only)
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tomllib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .propagate import Perturber, PerturbResult
from .session import RunSession, write_result

SPATIAL_KEYS = ("radius", "ligand_grid_factor", "contact_distance")
"""Job keys that change the received-ligand kernel (recomputed once per distinct setting)."""
_GENE_KEYS = ("gene", "genes", "compound_genes")
_JOB_KEYS = {*_GENE_KEYS, "desired_expr", "n_propagation", "beta_scale_factor", "out_dir", "out", "cells_csv",
             "cells_csv_column", "cells_csv_columns", "cells_obs_file", "cell_types", "name", *SPATIAL_KEYS}


@dataclass
class BatchJob:
    """One perturbation of a batch."""

    genes: list[str]
    desired: list[float]
    out: Path
    n_propagation: int | None = None
    beta_scale_factor: float | None = None
    cells_csv: str | None = None
    cells_csv_column: str | None = None
    cells_obs_file: str | None = None
    cell_types: list[str] | None = None
    radius: float | None = None
    ligand_grid_factor: float | None = None
    contact_distance: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def spatial(self) -> dict[str, float]:
        """The spatial overrides this job sets (``{}``: the run's kernel)."""
        return {k: float(v) for k in SPATIAL_KEYS if (v := getattr(self, k)) is not None}


@dataclass
class BatchSpec:
    """The jobs of a batch file and its ``parallelism`` (None: not set in the file)."""

    jobs: list[BatchJob]
    parallelism: int | None = None


def _fmt_value(v: float) -> str:
    return f"{round(v, 2):g}"


def default_name(genes: Sequence[str], desired: Sequence[float], n_propagation: int, scope: str = "") -> str:
    """``Foxo1_4n_0x`` (``_``-joined for several genes; ``@scope`` when the scope is a subset)."""
    name = "_".join(f"{g}_{n_propagation}n_{_fmt_value(v)}x" for g, v in zip(genes, desired))
    return f"{name}@{scope}" if scope else name


def parse_batch(path: str | os.PathLike[str], default_n_propagation: int) -> list[BatchJob]:
    """Read and validate a batch TOML; one clear line per mistake."""
    return read_batch(path, default_n_propagation).jobs


def read_batch(path: str | os.PathLike[str], default_n_propagation: int) -> BatchSpec:
    """Read and validate a batch TOML (jobs and ``parallelism``); one clear line per mistake."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"batch file {p} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"batch file {p}: not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"batch file {p}: cannot read ({e})") from None
    return batch_from_table(raw, str(p), p.parent, default_n_propagation)


def batch_from_table(raw: Mapping[str, Any], label: str, base: Path, default_n_propagation: int) -> BatchSpec:
    """Jobs of a batch table (a batch file, or the job fields of a perturbation TOML).

    Relative paths resolve against ``base``; errors start with ``label``.
    """
    raw = dict(raw)
    par = raw.pop("parallelism", None)
    if par is not None and (isinstance(par, bool) or not isinstance(par, int) or par < 1):
        raise InputError(f"{label}: parallelism = {par!r}: expected an integer >= 1 (jobs run at once)")
    top = {k: v for k, v in raw.items() if k != "jobs"}
    jobs_raw = raw.get("jobs", [])
    if not isinstance(jobs_raw, list):
        raise InputError(f"{label}: 'jobs' must be an array of tables ([[jobs]])")
    specs: list[tuple[str, dict[str, Any]]] = []
    if any(k in top for k in _GENE_KEYS):
        specs.append(("top level", top))
    for i, j in enumerate(jobs_raw):
        if not isinstance(j, dict):
            raise InputError(f"{label}: jobs[{i}] must be a table")
        if "parallelism" in j:
            raise InputError(f"{label}: jobs[{i}]: parallelism goes at the top level of the file (all jobs)")
        specs.append((f"jobs[{i}]", {**_inherited(top, j), **j}))
    if not specs:
        raise InputError(f"{label}: no perturbation: set gene = \"...\" or genes = [...] (or [[jobs]] tables)")
    out: list[BatchJob] = []
    for where, spec in specs:
        out.extend(_jobs_of(spec, f"{label}: {where}", base, default_n_propagation))
    names = [str(j.out) for j in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"{label}: two jobs write the same output {sorted(dup)[0]}; set distinct out/out_dir")
    return BatchSpec(jobs=out, parallelism=par)


_OWN_KEYS = (*_GENE_KEYS, "desired_expr", "cells_csv_column", "cells_csv_columns", "out", "name")
"""Top-level keys that describe the top-level job itself (not inherited by [[jobs]] when it has one)."""
_PER_GENE = ("n_propagation", "beta_scale_factor")
"""Keys that may be one value per gene of a ``genes = [...]`` job."""
_SCOPE_KEYS = ("cells_csv_column", "cells_csv_columns", "cells_obs_file", "cell_types")
"""A job that sets any of these replaces the inherited scope as a whole."""


def _inherited(top: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys a [[jobs]] table inherits: shared settings, not the top-level job's own genes/values."""
    top_is_job = any(k in top for k in _GENE_KEYS)
    # per-gene lists of the top-level job are its own too
    own = {k for k, v in top.items() if k in _OWN_KEYS or (isinstance(v, list) and k in _PER_GENE)}
    out = {k: v for k, v in top.items() if k not in _GENE_KEYS and not (top_is_job and k in own)}
    if any(k in job for k in _SCOPE_KEYS):
        out = {k: v for k, v in out.items() if k not in _SCOPE_KEYS}
    return out


def _resolve(base: Path, v: Any, key: str = "", where: str = "") -> str | None:
    """A path of the file, absolute (relative ones against ``base``); None when empty."""
    if v is None or v == "":
        return None
    if not isinstance(v, str) or "\x00" in v:
        raise InputError(f"{where}: {key} = {v!r}: expected a path (a string without NUL characters)")
    return str((base / os.path.expanduser(v)).resolve())


def _number(spec: dict[str, Any], key: str, where: str, *, ge: float = 0.0, strict: bool = False) -> float | None:
    """An optional finite number ``>= ge`` (``> ge`` when ``strict``)."""
    v = spec.get(key)
    if v is None:
        return None
    ok = not isinstance(v, bool) and isinstance(v, int | float) and np.isfinite(v) and (v > ge if strict else v >= ge)
    if not ok:
        raise InputError(f"{where}: {key} = {v!r}: expected a finite number {'>' if strict else '>='} {ge:g}")
    return float(v)


def _per_gene(spec: dict[str, Any], key: str, n: int, where: str, default: Any) -> list[Any]:
    """A scalar, a one-element list (broadcast) or one value per gene."""
    v = spec.get(key, default)
    if not isinstance(v, list):
        return [v] * n
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise InputError(f"{where}: {key} has {len(v)} values for {n} genes; give one per gene or a single value")
    return list(v)


def _n_prop(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"{where}: n_propagation = {v!r}: expected an integer >= 1")
    return int(v)


def _desired(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
        raise InputError(f"{where}: desired_expr value {v!r}: expected a finite number >= 0")
    return float(v)


def _gene_list(spec: dict[str, Any], where: str) -> tuple[str, list[str]]:
    """``("gene", [...])`` for one perturbation (``gene`` or ``compound_genes``), ``("genes", [...])`` for
    one job per gene."""
    given = [k for k in _GENE_KEYS if k in spec]
    if len(given) > 1:
        raise InputError(f"{where}: give either {given[0]} or {given[1]}, not both")
    if not given:
        raise InputError(f"{where}: no gene: set gene = \"...\" (one perturbation) or genes = [...] (one job each)")
    key = given[0]
    g = spec[key]
    genes = g if isinstance(g, list) else [g]
    if not genes or not all(isinstance(x, str) and x.strip() for x in genes):
        want = "a gene name or a list of names" if key != "genes" else "a non-empty list of gene names"
        raise InputError(f"{where}: {key} = {g!r}: expected {want}")
    return ("genes" if key == "genes" else "gene"), [x.strip() for x in genes]


def _jobs_of(spec: dict[str, Any], where: str, base: Path, default_n: int) -> list[BatchJob]:
    unknown = sorted(set(spec) - _JOB_KEYS)
    if unknown:
        from ..errors import near_matches

        raise InputError(f"{where}: unknown key '{unknown[0]}'{near_matches(unknown[0], _JOB_KEYS)}")
    kind, genes = _gene_list(spec, where)
    spatial = dict(radius=_number(spec, "radius", where, strict=True),
                   ligand_grid_factor=_number(spec, "ligand_grid_factor", where, strict=True),
                   contact_distance=_number(spec, "contact_distance", where, strict=True))
    cell_types = spec.get("cell_types")
    if isinstance(cell_types, str):
        cell_types = [cell_types]
    if cell_types is not None and not (isinstance(cell_types, list) and cell_types
                                       and all(isinstance(c, str) and c for c in cell_types)):
        raise InputError(f"{where}: cell_types = {cell_types!r}: expected a cell type or a list of them")
    cells_csv = _resolve(base, spec.get("cells_csv"), "cells_csv", where)
    many = spec.get("cells_csv_columns")
    col1 = spec.get("cells_csv_column")
    if col1 is not None and not isinstance(col1, str):
        raise InputError(f"{where}: cells_csv_column = {col1!r}: expected a column name")
    csv_cols = [col1, *(many if isinstance(many, list) else [many])]
    if cells_csv is None and any(c for c in csv_cols):
        raise InputError(f"{where}: a cells CSV column is named but cells_csv is not set; add cells_csv = \"...\"")
    if spec.get("cells_obs_file") and any(c for c in csv_cols):
        raise InputError(f"{where}: give either cells_obs_file or a cells CSV column, not both")
    obs_file = _resolve(base, spec.get("cells_obs_file"), "cells_obs_file", where)
    common = dict(cells_csv=cells_csv, cells_obs_file=obs_file, cell_types=cell_types, **spatial)
    out_dir = _resolve(base, spec.get("out_dir"), "out_dir", where) or str(base)
    if kind == "gene":
        if "cells_csv_columns" in spec:
            raise InputError(f"{where}: cells_csv_columns goes with genes = [...]; use cells_csv_column")
        n_prop = _n_prop(spec.get("n_propagation", default_n), where)
        vals = [_desired(v, where) for v in _per_gene(spec, "desired_expr", len(genes), where, 0.0)]
        bsf = _number(spec, "beta_scale_factor", where)
        name = spec.get("name") or default_name(genes, vals, n_prop, col1 or "")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where}: name = {name!r}: expected a file name")
        out = spec.get("out")
        if out is not None and not (isinstance(out, str) and out.strip()):
            raise InputError(f"{where}: out = {out!r}: expected one output path")
        path = _resolve(base, out, "out", where) if out else str(Path(out_dir) / f"{name}.feather")
        return [BatchJob(genes=genes, desired=vals, out=Path(str(path)), n_propagation=n_prop,
                         beta_scale_factor=bsf, cells_csv_column=col1 or None, **common)]  # type: ignore[arg-type]
    if spec.get("name"):
        raise InputError(f"{where}: 'name' names one job; with genes = [...] the names are automatic")
    n = len(genes)
    vals = [_desired(v, where) for v in _per_gene(spec, "desired_expr", n, where, 0.0)]
    props = [_n_prop(v, where) for v in _per_gene(spec, "n_propagation", n, where, default_n)]
    scales = [_number({"beta_scale_factor": v}, "beta_scale_factor", where)
              for v in _per_gene(spec, "beta_scale_factor", n, where, None)]
    if many is not None:
        cols = _per_gene(spec, "cells_csv_columns", n, where, "")
        if not all(isinstance(c, str) for c in cols):
            raise InputError(f"{where}: cells_csv_columns = {many!r}: expected column names (\"\" = all cells)")
    else:
        cols = [col1 or ""] * n
    outs = spec.get("out")
    if outs is not None and not (isinstance(outs, list) and len(outs) == n
                                 and all(isinstance(o, str) and o.strip() for o in outs)):
        raise InputError(f"{where}: with genes = [...], out lists one path per gene ({n}); or use out_dir")
    jobs = []
    for k, (g, v, c) in enumerate(zip(genes, vals, cols)):
        path = (_resolve(base, outs[k], "out", where) if outs is not None
                else str(Path(out_dir) / f"{default_name([g], [v], props[k], c)}.feather"))
        jobs.append(BatchJob(genes=[g], desired=[v], out=Path(str(path)), n_propagation=props[k],
                             beta_scale_factor=scales[k], cells_csv_column=c or None,
                             **common))  # type: ignore[arg-type]
    return jobs


def perturber_for(session: RunSession, job: BatchJob) -> Perturber:
    """The session's perturber, or one whose received ligands use the job's spatial overrides.

    The overrides replace ``radius``, ``ligand_grid_factor`` and ``contact_distance`` of the run's
    settings; everything else (kernel, scale, per-ligand radii, compat mode) stays the run's, so the
    result equals a perturbation of a run whose repro TOML holds those values.
    """
    base = session.perturber
    over: dict[str, Any] = job.spatial()
    settings = dataclasses.replace(base.s, **over)
    if settings == base.s:
        return base
    return Perturber(session.tissue, session.betabase, settings, ligand_signaling=base.ligand_signaling,
                     n_threads=base.n_threads)


def run_job(session: RunSession, job: BatchJob, *, perturber: Perturber | None = None
            ) -> tuple[PerturbResult, dict[str, Path]]:
    """Run one batch job and write its outputs (``perturber``: prepared by :func:`perturber_for`)."""
    mask, label = session.scope(cells_csv=job.cells_csv if job.cells_csv_column else None,
                                cells_csv_column=job.cells_csv_column, cells_obs_file=job.cells_obs_file,
                                cell_types=job.cell_types)
    if perturber is None:
        perturber = perturber_for(session, job)
    if job.beta_scale_factor is not None and job.beta_scale_factor != perturber.s.beta_scale_factor:
        # a shallow copy shares the prepared operators; only the scale of the splash terms differs
        perturber = copy.copy(perturber)
        perturber.s = dataclasses.replace(perturber.s, beta_scale_factor=float(job.beta_scale_factor))
    res = perturber.run(job.genes, job.desired, scope=mask, scope_label=label, n_propagation=job.n_propagation)
    return res, write_result(res, job.out)


def run_batch(session: RunSession, jobs: Sequence[BatchJob], *, parallelism: int = 1,
              on_done: Any = None) -> list[tuple[BatchJob, PerturbResult, dict[str, Path]]]:
    """Run ``jobs`` (``parallelism`` at a time, threads sharing the loaded run).

    Received ligands for the jobs' spatial overrides are computed once per distinct setting, before
    the first job runs.
    """
    from .._threads import default_threads

    threads_each = max(1, default_threads() // max(1, parallelism))
    prepared: dict[tuple[tuple[str, float], ...], Perturber] = {}
    for job in jobs:
        key = tuple(sorted(job.spatial().items()))
        if key not in prepared:
            prepared[key] = perturber_for(session, job)

    def one(job: BatchJob) -> tuple[BatchJob, PerturbResult, dict[str, Path]]:
        from .._threads import numba_threads

        with numba_threads(threads_each if parallelism > 1 else None):
            res, paths = run_job(session, job, perturber=prepared[tuple(sorted(job.spatial().items()))])
        if on_done is not None:
            on_done(job, res, paths)
        return job, res, paths

    if parallelism <= 1:
        return [one(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=parallelism) as ex:
        return list(ex.map(one, jobs))

