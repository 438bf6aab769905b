"""A training run opened for perturbation: repro TOML → tissue, Betabase, Perturber.

Used by ``spacetravlr-perturb`` (single export, batch, screen, interactive) and reusable by any
front end: the tissue, the betadata and the received-ligand operators are loaded once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys
from ..betadata.betabase import Betabase, read_frames
from ..betadata.frame import list_betadata
from ..config import SpaceshipConfig
from ..errors import InputError
from ..io.anndata import Tissue, tissue_from_config
from ..rundir import TrainedRun, open_run
from .propagate import Perturber, PerturbResult, PerturbSettings, resolve_scope

log = logging.getLogger("spacetravlr_py.perturbation")


def read_cells_csv(path: str | os.PathLike[str], column: str) -> list[str]:
    """Obs names listed in ``column`` of a CSV whose columns are lists of cells (blank cells ignored)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"cells CSV {p} not found; check --cells-csv / cells_csv")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except Exception as e:
        raise InputError(f"{p}: cannot read cells CSV ({e})") from None
    if column not in df.columns:
        from ..errors import near_matches, short_list

        raise InputError(f"{p}: no column '{column}'{near_matches(column, df.columns)} "
                         f"(columns: {short_list(df.columns)}); set --cells-csv-column")
    vals = [v.strip() for v in df[column].tolist() if v and v.strip()]
    if not vals:
        raise InputError(f"{p}: column '{column}' lists no cells")
    return vals


def read_obs_file(path: str | os.PathLike[str]) -> list[str]:
    """One obs name per line (``#`` comments)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"cells file {p}: cannot read ({e.strerror or e})") from None
    vals = [ln.split("#", 1)[0].strip() for ln in lines]
    vals = [v for v in vals if v]
    if not vals:
        raise InputError(f"cells file {p} lists no cells")
    return vals


@dataclass
class RunSession:
    """Everything needed to perturb the genes of one training run."""

    cfg: SpaceshipConfig
    run_dir: Path
    tissue: Tissue
    betabase: Betabase
    perturber: Perturber
    load_seconds: float = 0.0

    @classmethod
    def open(cls, run_toml: str | os.PathLike[str], *, n_threads: int | None = None,
             overrides: dict[str, Any] | None = None,
             overlay: Callable[[SpaceshipConfig], SpaceshipConfig] | None = None,
             condition: str | None = None) -> RunSession:
        """Open the run described by a repro TOML (or a run folder): tissue, betadata, perturbation engine.

        The betadata are read from the TOML's ``[execution].output_dir`` (SPEC §2.3); each ligand's
        radius comes from what training recorded in the manifest (older runs: from the network).
        ``overlay`` (e.g. :meth:`~spacetravlr_py.perturbation.overlay.PerturbToml.apply`) changes the run's
        configuration before ``overrides`` (command-line values). ``condition`` picks a group of a run per
        condition (its label or folder; :func:`~spacetravlr_py.perturbation.compare.list_conditions` lists
        them): the session then holds that group's cells and betas.
        """
        t0 = time.perf_counter()
        run = open_run(run_toml, overrides=overrides, overlay=overlay, condition=condition)
        cfg = run.cfg
        # the panel first; then only the genes the betadata name (targets and modulators) are loaded
        tissue = tissue_from_config(cfg, genes=[], keep_float32=True)
        run.check_dataset(tissue)
        bb = Betabase(read_frames(_betadata_files(run.dir.root)), tissue)
        tissue = bb.tissue
        perturber = Perturber(tissue, bb, PerturbSettings.from_config(cfg),
                              ligand_signaling=ligand_signaling(run, tissue), n_threads=n_threads)
        return cls(cfg=cfg, run_dir=run.dir.root, tissue=tissue, betabase=bb, perturber=perturber,
                   load_seconds=time.perf_counter() - t0)

    def scope(self, *, cells_csv: str | None = None, cells_csv_column: str | None = None,
              cells_obs_file: str | None = None, cell_types: Sequence[str] | None = None,
              clusters: Sequence[int] | None = None) -> tuple[np.ndarray, str]:
        """Resolve a scope given as a cells CSV column, an obs file, cell types or cluster ids."""
        cells: list[str] | None = None
        label = ""
        if cells_csv and cells_csv_column:
            cells = read_cells_csv(cells_csv, cells_csv_column)
            label = f"{Path(cells_csv).name}:{cells_csv_column}"
        elif cells_csv and cells_csv_column is None:
            raise InputError(f"cells CSV {cells_csv} given without a column; add --cells-csv-column")
        elif cells_csv_column and not cells_csv:
            raise InputError(f"cells CSV column '{cells_csv_column}' given without a cells CSV; add --cells-csv")
        elif cells_obs_file:
            cells = read_obs_file(cells_obs_file)
            label = Path(cells_obs_file).name
        mask, desc = resolve_scope(self.tissue, cells, cell_types=cell_types, clusters=clusters)
        return mask, (label or desc)  # the cell count is reported next to the label by the callers

    def run(self, genes: str | Sequence[str], desired: float | Sequence[float] = 0.0, *,
            scope: np.ndarray | None = None, scope_label: str = "all cells",
            n_propagation: int | None = None, on_step: Callable[[int, int], None] | None = None) -> PerturbResult:
        return self.perturber.run(genes, desired, scope=scope, scope_label=scope_label, n_propagation=n_propagation,
                                  on_step=on_step)


def _betadata_files(folder: Path) -> dict[str, Path]:
    files = list_betadata(folder)
    if not files:
        raise InputError(f"{folder}: no *_betadata.feather/.parquet/.csv files; train first "
                         "(spacetravlr) or point to the folder that holds them")
    return files


def ligand_signaling(run: TrainedRun, tissue: Tissue) -> dict[str, str | None] | None:
    """Each ligand's CellChat class as training resolved it (the manifest), for ``per_ligand_radius``.

    Runs whose manifest predates this record (or other tools' runs) fall back to the network, which is
    then loaded once; None when no ligand needs a class.
    """
    if run.manifest is not None and run.manifest.has_ligands:
        return run.manifest.ligand_signaling()
    if not run.cfg.spatial.per_ligand_radius:
        return None
    from ..io.network import Network, network_for

    table, _, path = network_for(run.cfg, tissue.all_genes)
    log.info("ligand classes from the network %s (the run's manifest does not record them)", path)
    sig = Network.from_frame(table, validate=False).ligand_signaling_among(tissue.all_genes)
    return {k: (v or _keys.SECRETED) for k, v in sig.items()}  # a row without a class counts as secreted


def write_result(result: PerturbResult, out: str | os.PathLike[str], *, summary: bool = True,
                 changed_only: bool = False) -> dict[str, Path]:
    """Atomically write the simulated expression (feather: ``CellID`` + every gene of the panel, or only
    the genes that moved with ``changed_only``) and a JSON summary.

    The feather is streamed in row blocks (:func:`~spacetravlr_py.perturbation.export.write_expression`):
    genes that did not move are read from the layer block by block, never as a full-width matrix.
    """
    from ..io.atomic import atomic_write_text
    from .export import write_expression

    out_p = Path(out)
    if out_p.suffix.lower() not in (".feather", ".arrow", ".ipc"):
        out_p = out_p.with_suffix(out_p.suffix + ".feather") if out_p.suffix else out_p.with_suffix(".feather")
    write_expression(result, out_p, changed_only=changed_only)
    paths = {"expression": out_p}
    if summary:
        js = out_p.with_suffix(".json")
        atomic_write_text(js, json.dumps(result.summary(), indent=1))
        paths["summary"] = js
    return paths
