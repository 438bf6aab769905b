"""Batch perturbations from a TOML file, and the knockout screen.

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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .propagate import PerturbResult
from .session import RunSession, write_result

_JOB_KEYS = {"gene", "genes", "desired_expr", "n_propagation", "beta_scale_factor", "out_dir", "out", "cells_csv",
             "cells_csv_column", "cells_csv_columns", "cells_obs_file", "cell_types", "name"}


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
    extra: dict[str, Any] = field(default_factory=dict)


def _fmt_value(v: float) -> str:
    return f"{round(v, 2):g}"


def default_name(genes: Sequence[str], desired: Sequence[float], n_propagation: int, scope: str = "") -> str:
    """``Foxo1_4n_0x`` (``_``-joined for several genes; ``@scope`` when the scope is a subset)."""
    name = "_".join(f"{g}_{n_propagation}n_{_fmt_value(v)}x" for g, v in zip(genes, desired))
    return f"{name}@{scope}" if scope else name


def parse_batch(path: str | os.PathLike[str], default_n_propagation: int) -> list[BatchJob]:
    """Read and validate a batch TOML; one clear line per mistake."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"batch file {p} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"batch file {p}: cannot read ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"batch file {p}: not valid TOML ({e})") from None
    base = p.parent
    top = {k: v for k, v in raw.items() if k != "jobs"}
    jobs_raw = raw.get("jobs", [])
    if not isinstance(jobs_raw, list):
        raise InputError(f"{p}: 'jobs' must be an array of tables ([[jobs]])")
    specs: list[tuple[str, dict[str, Any]]] = []
    if "gene" in top or "genes" in top:
        specs.append(("top level", top))
    for i, j in enumerate(jobs_raw):
        if not isinstance(j, dict):
            raise InputError(f"{p}: jobs[{i}] must be a table")
        specs.append((f"jobs[{i}]", {**_inherited(top, j), **j}))
    if not specs:
        raise InputError(f"{p}: no perturbation: set gene = \"...\" or genes = [...] (or [[jobs]] tables)")
    out: list[BatchJob] = []
    for where, spec in specs:
        out.extend(_jobs_of(spec, f"{p}: {where}", base, default_n_propagation))
    names = [str(j.out) for j in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"{p}: two jobs write the same output {sorted(dup)[0]}; set distinct out/out_dir")
    return out


_OWN_KEYS = ("gene", "genes", "desired_expr", "cells_csv_column", "cells_csv_columns", "out", "name")
"""Top-level keys that describe the top-level job itself (not inherited by [[jobs]] when it has one)."""
_SCOPE_KEYS = ("cells_csv_column", "cells_csv_columns", "cells_obs_file", "cell_types")
"""A job that sets any of these replaces the inherited scope as a whole."""


def _inherited(top: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys a [[jobs]] table inherits: shared settings, not the top-level job's own genes/values."""
    top_is_job = "gene" in top or "genes" in top
    out = {k: v for k, v in top.items() if k not in ("gene", "genes") and not (top_is_job and k in _OWN_KEYS)}
    if any(k in job for k in _SCOPE_KEYS):
        out = {k: v for k, v in out.items() if k not in _SCOPE_KEYS}
    return out


def _resolve(base: Path, v: Any) -> str | None:
    if v is None or v == "":
        return None
    return str((base / Path(str(v)).expanduser()).resolve())


def _jobs_of(spec: dict[str, Any], where: str, base: Path, default_n: int) -> list[BatchJob]:
    unknown = sorted(set(spec) - _JOB_KEYS)
    if unknown:
        from ..errors import near_matches

        raise InputError(f"{where}: unknown key '{unknown[0]}'{near_matches(unknown[0], _JOB_KEYS)}")
    if "gene" in spec and "genes" in spec:
        raise InputError(f"{where}: give either gene or genes, not both")
    if "gene" not in spec and "genes" not in spec:
        raise InputError(f"{where}: no gene: set gene = \"...\" (one perturbation) or genes = [...] (one job each)")
    n_prop = spec.get("n_propagation", default_n)
    if not isinstance(n_prop, int) or isinstance(n_prop, bool) or n_prop < 1:
        raise InputError(f"{where}: n_propagation = {n_prop!r}: expected an integer >= 1")
    bsf = spec.get("beta_scale_factor")
    if bsf is not None and (isinstance(bsf, bool) or not isinstance(bsf, int | float) or bsf < 0):
        raise InputError(f"{where}: beta_scale_factor = {bsf!r}: expected a number >= 0")
    des = spec.get("desired_expr", 0.0)

    def values(n: int) -> list[float]:
        vals = des if isinstance(des, list) else [des] * n
        if len(vals) != n:
            raise InputError(f"{where}: desired_expr has {len(vals)} values for {n} genes; give one per gene "
                             "or a single value")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
                raise InputError(f"{where}: desired_expr value {v!r}: expected a finite number >= 0")
        return [float(v) for v in vals]

    cell_types = spec.get("cell_types")
    if isinstance(cell_types, str):
        cell_types = [cell_types]
    if cell_types is not None and not (isinstance(cell_types, list) and cell_types
                                       and all(isinstance(c, str) and c for c in cell_types)):
        raise InputError(f"{where}: cell_types = {cell_types!r}: expected a cell type or a list of them")
    cells_csv = _resolve(base, spec.get("cells_csv"))
    many = spec.get("cells_csv_columns")
    csv_cols = [spec.get("cells_csv_column"), *(many if isinstance(many, list) else [])]
    if cells_csv is None and any(c for c in csv_cols):
        raise InputError(f"{where}: a cells CSV column is named but cells_csv is not set; add cells_csv = \"...\"")
    if spec.get("cells_obs_file") and any(c for c in csv_cols):
        raise InputError(f"{where}: give either cells_obs_file or a cells CSV column, not both")
    common = dict(n_propagation=n_prop, beta_scale_factor=bsf, cells_csv=cells_csv,
                  cells_obs_file=_resolve(base, spec.get("cells_obs_file")), cell_types=cell_types)
    out_dir = _resolve(base, spec.get("out_dir")) or str(base)
    if "gene" in spec:
        g = spec["gene"]
        genes = g if isinstance(g, list) else [g]
        if not genes or not all(isinstance(x, str) and x for x in genes):
            raise InputError(f"{where}: gene = {g!r}: expected a gene name or a list of names")
        vals = values(len(genes))
        col = spec.get("cells_csv_column")
        if "cells_csv_columns" in spec:
            raise InputError(f"{where}: cells_csv_columns goes with genes = [...]; use cells_csv_column")
        name = spec.get("name") or default_name(genes, vals, n_prop, col or "")
        out = _resolve(base, spec["out"]) if spec.get("out") else str(Path(out_dir) / f"{name}.feather")
        return [BatchJob(genes=genes, desired=vals, out=Path(str(out)), cells_csv_column=col or None,
                         **common)]  # type: ignore[arg-type]
    genes = spec["genes"]
    if not isinstance(genes, list) or not genes or not all(isinstance(x, str) and x for x in genes):
        raise InputError(f"{where}: genes = {genes!r}: expected a non-empty list of gene names")
    if spec.get("out"):
        raise InputError(f"{where}: 'out' names one file; with genes = [...] use out_dir")
    if spec.get("name"):
        raise InputError(f"{where}: 'name' names one job; with genes = [...] the names are automatic")
    vals = values(len(genes))
    cols = spec.get("cells_csv_columns")
    if cols is not None:
        if not isinstance(cols, list) or len(cols) != len(genes):
            raise InputError(f"{where}: cells_csv_columns has {len(cols) if isinstance(cols, list) else 'no list of'} "
                             f"entries for {len(genes)} genes; give one column per gene (\"\" = all cells)")
    else:
        cols = [spec.get("cells_csv_column") or ""] * len(genes)
    jobs = []
    for g, v, c in zip(genes, vals, cols):
        name = default_name([g], [v], n_prop, c)
        jobs.append(BatchJob(genes=[g], desired=[v], out=Path(out_dir) / f"{name}.feather",
                             cells_csv_column=c or None, **common))  # type: ignore[arg-type]
    return jobs


def run_job(session: RunSession, job: BatchJob) -> tuple[PerturbResult, dict[str, Path]]:
    """Run one batch job and write its outputs."""
    mask, label = session.scope(cells_csv=job.cells_csv if job.cells_csv_column else None,
                                cells_csv_column=job.cells_csv_column, cells_obs_file=job.cells_obs_file,
                                cell_types=job.cell_types)
    perturber = session.perturber
    if job.beta_scale_factor is not None and job.beta_scale_factor != perturber.s.beta_scale_factor:
        # a shallow copy shares the prepared operators; only the scale of the splash terms differs
        perturber = copy.copy(perturber)
        perturber.s = dataclasses.replace(perturber.s, beta_scale_factor=float(job.beta_scale_factor))
    res = perturber.run(job.genes, job.desired, scope=mask, scope_label=label, n_propagation=job.n_propagation)
    return res, write_result(res, job.out)


def run_batch(session: RunSession, jobs: Sequence[BatchJob], *, parallelism: int = 1,
              on_done: Any = None) -> list[tuple[BatchJob, PerturbResult, dict[str, Path]]]:
    """Run ``jobs`` (``parallelism`` at a time, threads sharing the loaded run)."""
    from .._threads import default_threads

    threads_each = max(1, default_threads() // max(1, parallelism))

    def one(job: BatchJob) -> tuple[BatchJob, PerturbResult, dict[str, Path]]:
        from .._threads import numba_threads

        with numba_threads(threads_each if parallelism > 1 else None):
            res, paths = run_job(session, job)
        if on_done is not None:
            on_done(job, res, paths)
        return job, res, paths

    if parallelism <= 1:
        return [one(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=parallelism) as ex:
        return list(ex.map(one, jobs))


def screen(session: RunSession, *, mode: str = "knockout", genes: Sequence[str] | None = None,
           n_propagation: int | None = None, on_done: Any = None) -> list[dict[str, Any]]:
    """Perturb every TF, ligand and receptor with betas, one at a time; rank genes by impact.

    ``mode="knockout"`` sets the gene to 0, ``"overexpress"`` to its maximum observed value. Impact =
    mean |Δ| over all cells and all other genes.
    """
    if mode not in ("knockout", "overexpress"):
        raise InputError(f"screen mode must be knockout or overexpress, got {mode!r}")
    roles = session.betabase.roles()
    role_of: dict[str, list[str]] = {}
    for role, gs in roles.items():
        for g in gs:
            role_of.setdefault(g, []).append(role)
    cands = sorted(role_of) if genes is None else list(genes)
    x0 = session.tissue.expression
    gi = session.tissue.gene_index
    from ..errors import near_matches

    for g in cands:  # all checked before the first run
        if g not in gi:
            raise InputError(f"screen: gene '{g}' is not in the dataset{near_matches(g, session.tissue.var_names)}")
    rows: list[dict[str, Any]] = []
    for g in cands:
        v = 0.0 if mode == "knockout" else float(x0[:, gi[g]].max())
        res = session.run(g, v, n_propagation=n_propagation)
        top = res.top_genes(5)
        keep = np.ones(session.tissue.n_genes, dtype=bool)
        keep[gi[g]] = False
        impact = float(np.abs(res.delta[:, keep]).mean()) if keep.any() else 0.0
        row = {"gene": g, "roles": ",".join(sorted(role_of.get(g, []))), "desired_expr": v, "impact": impact,
               "n_genes_changed": int(np.count_nonzero(np.abs(res.delta[:, keep]).max(axis=0) > 0)),
               "top_affected": ";".join(f"{t}:{m:.4g}" for t, m in top)}
        rows.append(row)
        if on_done is not None:
            on_done(row)
    rows.sort(key=lambda r: (-float(r["impact"]), str(r["gene"])))
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    return rows
