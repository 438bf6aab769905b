"""What a run folder says about its training, gathered once for the report.

Sources: the manifest (genes done / orphaned / failed / unfinished, timings, modulators by family per
gene), ``log/{gene}.log`` (one row per cluster: in-sample R², whether the R² gate kept it, and in full
mode the held-out R² of lasso and CNN and the choice; the status and reason of orphans), the betadata
files (genes on disk) and the dataset.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError
from ..naming import KIND_NAMES
from ..rundir import Manifest, RunDir

if TYPE_CHECKING:
    from ..config import SpaceshipConfig
    from ..io.anndata import Tissue

FIT_COLUMNS: tuple[str, ...] = ("gene", "cluster", "label", "n_cells", "n_modulators", "r2", "kept",
                                "heldout_r2_lasso", "heldout_r2_cnn", "choice")
"""Columns of :attr:`RunFacts.fits`: one row per (gene, cluster) model read from the logs."""
GENE_COLUMNS: tuple[str, ...] = ("gene", "status", "reason", "seconds", "mean_r2", "mean_heldout_r2",
                                 "n_clusters_kept", *KIND_NAMES, "n_modulators")
"""Columns of :attr:`RunFacts.genes`: one row per queued gene. ``mean_r2``: mean in-sample R² of the
cluster models the R² gate kept; ``mean_heldout_r2`` (full mode): mean held-out R² of the model each of
those clusters kept (the CNN's when chosen, else the lasso's)."""
STATUSES: tuple[str, ...] = ("done", "orphan", "failed", "unfinished")


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return math.nan


def parse_gene_log(text: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The per-cluster table and the ``key<TAB>value`` lines (``status``, ``reason``...) of a gene log.

    The table starts at the header ``cluster<TAB>label<TAB>...`` and runs while the first field is a
    cluster id; full mode's extra lines (``cnn``, ``loss``...) are not part of it.
    """
    rows: list[dict[str, Any]] = []
    keys: dict[str, str] = {}
    head: list[str] | None = None
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "cluster" and len(f) > 2 and f[1] == "label":
            head = f
            continue
        if head is not None and f[0].isdigit() and len(f) == len(head):
            rows.append(dict(zip(head, f)))
            continue
        head = None
        if len(f) >= 2 and f[0] in ("status", "reason", "gene"):
            keys.setdefault(f[0], "\t".join(f[1:]))
    return rows, keys


def _int(s: str) -> int:
    v = _num(s)
    return int(v) if math.isfinite(v) else 0


def _fit_rows(gene: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(gene, int(r["cluster"]), r.get("label", ""), _int(r.get("n_cells", "")), _int(r.get("n_modulators", "")),
             _num(r.get("r2", "")), r.get("kept", "") == "True", _num(r.get("heldout_r2_lasso", "")),
             _num(r.get("heldout_r2_cnn", "")), r.get("choice", "")) for r in rows]


@dataclass
class RunFacts:
    """A training run as the report shows it.

    Attributes
    ----------
    run_dir : the run folder.
    cfg : the run's configuration (repro TOML).
    tissue : the dataset.
    manifest : the manifest (None for a folder without one).
    fits : DataFrame, columns :data:`FIT_COLUMNS` (every cluster model found in the logs).
    genes : DataFrame, columns :data:`GENE_COLUMNS` (every gene of the manifest's queue, or on disk).
    warnings : one line each.
    """

    run_dir: Path
    cfg: SpaceshipConfig
    tissue: Tissue
    manifest: Manifest | None
    fits: pd.DataFrame
    genes: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    h5ad: str = ""

    @property
    def full_mode(self) -> bool:
        """True when the logs hold held-out R² (full mode)."""
        return bool(self.fits["heldout_r2_lasso"].notna().any() or self.fits["heldout_r2_cnn"].notna().any())

    @property
    def mode(self) -> str:
        return self.manifest.mode if self.manifest is not None else self.cfg.training.mode

    def count(self, status: str) -> int:
        return int((self.genes["status"] == status).sum())


def _status_of(man: Manifest | None, rd: RunDir) -> dict[str, tuple[str, str]]:
    """``gene -> (status, reason)`` from the manifest, else from the files of the folder."""
    out: dict[str, tuple[str, str]] = {}
    if man is not None and man.genes:
        g = man.genes
        for x in g.get("done", []):
            out[x] = ("done", "")
        for x in g.get("orphaned", []):
            out[x] = ("orphan", "")
        for x, why in (g.get("failed") or {}).items():
            out[x] = ("failed", str(why))
        for x in g.get("unfinished", []):
            out[x] = ("unfinished", "")
        return out
    for x in sorted(rd.betadata_files()):
        out[x] = ("done", "")
    for p in sorted(rd.root.glob("*" + Path(_keys.ORPHAN_FILE).suffix)):
        out.setdefault(p.stem, ("orphan", ""))
    return out


def _gene_table(status: dict[str, tuple[str, str]], logs: dict[str, tuple[list[dict[str, Any]], dict[str, str]]],
                man: Manifest | None) -> pd.DataFrame:
    per_gene_s = (man.timings.get("per_gene_s") or {}) if man is not None else {}
    mods = man.modulators if man is not None else {}
    rows = []
    for gene, (st, why) in status.items():
        table, keys = logs.get(gene, ([], {}))
        if not why and st == "orphan":
            why = keys.get("reason", "")
        kept = [_num(r["r2"]) for r in table if r.get("kept") == "True"]
        held = [_num(r.get(f"heldout_r2_{r.get('choice') or 'lasso'}", "")) for r in table if r.get("kept") == "True"]
        held = [h for h in held if math.isfinite(h)]
        fam = mods.get(gene) or {}
        counts = [int(fam.get(k, 0)) for k in KIND_NAMES]
        n_mod = sum(counts) if fam else (int(_num(table[0]["n_modulators"])) if table else 0)
        rows.append((gene, st, why.splitlines()[0] if why else "", float(per_gene_s.get(gene, math.nan)),
                     float(np.mean(kept)) if kept else math.nan, float(np.mean(held)) if held else math.nan,
                     len(kept), *counts, n_mod))
    return pd.DataFrame(rows, columns=list(GENE_COLUMNS))


def read_logs(rd: RunDir, genes: list[str]) -> dict[str, tuple[list[dict[str, Any]], dict[str, str]]]:
    """Parsed ``log/{gene}.log`` of ``genes`` (genes without a log are left out)."""
    out = {}
    for g in genes:
        p = rd.log(g)
        try:
            out[g] = parse_gene_log(p.read_text(encoding="utf-8"))
        except OSError:
            continue
    return out


def _warnings(f: RunFacts) -> list[str]:
    """What a reader should know before trusting the betas, one line each."""
    out: list[str] = []
    m, t = f.manifest, f.tissue
    if m is None:
        out.append(f"no {_keys.MANIFEST_JSON} in the run folder: counts and timings come from the files only")
    elif m.status not in ("complete", "complete_with_failures"):
        out.append(f"run status '{m.status}': {f.count('unfinished')} genes unfinished; continue it with "
                   f"`spacetravlr --join-output-dir {f.run_dir}`")
    if f.count("failed"):
        out.append(f"{f.count('failed')} genes failed (reasons below); rerunning the run folder retries them")
    sizes = t.cluster_sizes()
    for lab, n in zip(t.cluster_labels, sizes):
        if 0 < n < 10:
            out.append(f"cluster '{lab}' has {int(n)} cells: its models rest on very few cells")
    if len(f.fits):
        gate = f.fits.groupby("label", sort=False)["kept"].mean()
        for lab, kept in gate.items():
            if kept < 0.5:
                out.append(f"cluster '{lab}': the R² gate (score_threshold {f.cfg.training.score_threshold:g}) "
                           f"zeroed {100 * (1 - kept):.0f}% of its gene models")
    if f.full_mode and f.fits["heldout_r2_lasso"].isna().any():
        n = int(f.fits["heldout_r2_lasso"].isna().sum())
        out.append(f"{n} cluster models had no held-out cells (cluster too small): their R² is in-sample only")
    if t.umap is None:
        out.append("the dataset has no UMAP (obsm['X_umap']): transitions on the UMAP are unavailable")
    return out


def gather_run_facts(run_dir: str | os.PathLike[str], *, config: str | os.PathLike[str] | None = None,
                     h5ad: str | os.PathLike[str] | None = None,
                     manifest: str | os.PathLike[str] | None = None) -> RunFacts:
    """Read a run folder for the report.

    Parameters
    ----------
    run_dir
        The training run folder.
    config
        Its configuration (default: the run's repro TOML).
    h5ad
        The dataset (default: ``[data].adata_path``).
    manifest
        The manifest (default: the run's; absent: genes and timings from the files).
    """
    from ..config import SpaceshipConfig
    from ..io.cells import load_cells
    from ..rundir.fingerprint import check_same_dataset

    rd = RunDir(run_dir)
    cfg_path = Path(config) if config else rd.repro_toml
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path} not found; pass -c CONFIG or a run folder with {_keys.REPRO_TOML}")
    cfg = SpaceshipConfig.from_toml(cfg_path)
    shown = str(h5ad or cfg.data.adata_path)
    if not shown:
        raise InputError(f"{cfg_path}: [data].adata_path is empty; pass --h5ad")
    tissue = load_cells(shown, cluster_annot=cfg.data.cluster_annot, layer=cfg.data.layer)  # no expression
    man = Manifest.read(Path(manifest) if manifest else rd.manifest_json)
    status = _status_of(man, rd)
    logs = read_logs(rd, list(status))
    fit_rows = [r for g, (tab, _) in logs.items() for r in _fit_rows(g, tab)]
    fits = pd.DataFrame(fit_rows, columns=list(FIT_COLUMNS))
    facts = RunFacts(run_dir=rd.root, cfg=cfg, tissue=tissue, manifest=man, fits=fits,
                     genes=_gene_table(status, logs, man), h5ad=shown)
    facts.warnings = _warnings(facts)
    if man is not None:
        try:  # cell and gene names (the expression is not read)
            names = {k: v for k, v in man.dataset.items() if k != "data_sha1"}
            check_same_dataset(names, tissue, where=rd.manifest_json, what="use the matching .h5ad")
        except InputError as e:
            facts.warnings.insert(0, str(e))
    if not rd.betadata_files():
        facts.warnings.insert(0, f"{rd.root} holds no betadata files: nothing was trained (or they were moved)")
    return facts
