"""Typed results of training: one cluster's fit, one gene's fit, and what happened to a gene in a run.

All are plain picklable dataclasses: they travel from worker processes (or Dask workers) to the process
that writes the run folder and reports progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..io.betadata import BetaFrame

#: what happened to a gene in a run
DONE, ORPHAN, FAILED, SKIPPED, BUSY = "done", "orphan", "failed", "skipped", "busy"
"""``skipped``: already finished in the folder; ``busy``: another process holds its lock."""

LOG_COLUMNS = ("cluster", "label", "n_cells", "n_modulators", "r2", "mse", "iterations", "converged", "kept")


@dataclass
class ClusterFit:
    """The fit of one (gene, cluster) model."""

    label: str
    n_cells: int
    n_modulators: int
    r2: float
    """In-sample R² of the fitted model (before the R² gate)."""
    mse: float
    iterations: int
    converged: bool
    kept: bool
    """False when the R² gate zeroed the cluster's betas."""
    heldout_r2: dict[str, float] = field(default_factory=dict)
    """Held-out R² per model (full mode: ``lasso`` and ``cnn``)."""
    choice: str = ""
    """Which model's betas were kept (full mode: ``lasso`` or ``cnn``)."""


@dataclass
class GeneFit:
    """What a trainer returns for one gene: the betas (None for an orphan) and how the fit went.

    ``artifacts`` are extra files (relative path in the run folder → bytes, e.g. CNN weights) that the
    run writes atomically before the betadata, so a finished gene always has them.
    """

    gene: str
    frame: BetaFrame | None
    reason: str = ""
    clusters: list[ClusterFit] = field(default_factory=list)
    n_modulators: int = 0
    families: dict[str, int] = field(default_factory=dict)
    """Modulators by family (``tf``, ``lr``, ``tfl``, ``extra``)."""
    log_lines: list[str] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)

    @property
    def mean_r2(self) -> float | None:
        kept = [c.r2 for c in self.clusters if c.kept]
        return float(np.mean(kept)) if kept else None

    @property
    def n_clusters_kept(self) -> int:
        return sum(c.kept for c in self.clusters)

    def log_text(self, status: str) -> str:
        """The text of ``log/{gene}.log``: one row per cluster, then the status (and reason)."""
        rows: list[str] = []
        if self.clusters:
            heldout = sorted({k for c in self.clusters for k in c.heldout_r2})
            head = list(LOG_COLUMNS) + [f"heldout_r2_{k}" for k in heldout] + (["choice"] if heldout else [])
            rows.append("\t".join(head))
            for k, c in enumerate(self.clusters):
                cells = [str(k), c.label, str(c.n_cells), str(c.n_modulators), f"{c.r2:.6g}", f"{c.mse:.6g}",
                         str(c.iterations), str(bool(c.converged)), str(bool(c.kept))]
                cells += [f"{c.heldout_r2[h]:.6g}" if h in c.heldout_r2 else "" for h in heldout]
                if heldout:
                    cells.append(c.choice)
                rows.append("\t".join(cells))
        else:
            rows.append(f"gene\t{self.gene}")
        rows += self.log_lines
        rows.append(f"status\t{status}")
        if status != DONE:
            rows.append(f"reason\t{self.reason}")
        return "\n".join(rows) + "\n"


@dataclass
class GeneOutcome:
    """What happened to one gene in a run (for progress reporting and the manifest)."""

    gene: str
    status: str
    seconds: float = 0.0
    mean_r2: float | None = None
    n_modulators: int = 0
    n_clusters_kept: int = 0
    reason: str = ""
    worker: int = 0
    clusters: list[ClusterFit] = field(default_factory=list)
    families: dict[str, int] = field(default_factory=dict)
