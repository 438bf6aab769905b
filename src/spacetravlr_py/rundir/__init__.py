"""The run folder: every path of a run, locks, the dataset fingerprint and the typed manifest.

Training writes runs through it; perturbation, the viewer, the MCP server, the dashboard and reports open
runs through it (:func:`open_run`). It never imports training.
"""

from __future__ import annotations

from .fingerprint import check_same_dataset, dataset_fingerprint
from .layout import RunDir
from .manifest import LigandRecord, Manifest
from .run import TrainedRun, check_folder_holds_this_run, open_run, result_settings

__all__ = ["LigandRecord", "Manifest", "RunDir", "TrainedRun", "check_folder_holds_this_run",
           "check_same_dataset", "dataset_fingerprint", "open_run", "result_settings"]
