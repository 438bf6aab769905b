"""Opening a trained run, and the rule that one folder holds one run.

>>> from spacetravlr_py.rundir import open_run
>>> run = open_run("runs/a/spacetravlr_run_repro.toml")   # doctest: +SKIP
>>> run.dir.betadata("Foxo1"), run.manifest.ligands       # doctest: +SKIP

The run folder of a TOML is its ``[execution].output_dir`` (SPEC §2.3): an absolute path is the
folder, a relative one resolves against the TOML's folder, an empty one means the TOML's folder. So a
perturbation TOML kept beside the data, pointing at the run, works. One exception keeps copied and moved
runs working: a TOML that lies *inside* a run folder (beside a manifest or betadata files) belongs to that
folder, whatever path it recorded when the run was trained elsewhere.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _keys
from ..config import SpaceshipConfig
from ..errors import ConfigError, InputError
from .fingerprint import check_same_dataset
from .layout import RunDir
from .manifest import Manifest

log = logging.getLogger("spacetravlr_py.rundir")

#: sections/keys whose values change the fitted betas: a run folder never mixes two settings of them
RESULT_KEYS = ("data.adata_path", "data.layer", "data.cluster_annot", "data.species", "spatial", "grn",
               "lasso", "training.mode", "training.epochs", "training.learning_rate",
               "training.score_threshold", "cnn", "perturbation.ligand_grid_factor")


@dataclass
class TrainedRun:
    """A run folder opened through its repro TOML."""

    cfg: SpaceshipConfig
    toml: Path
    dir: RunDir
    manifest: Manifest | None

    def check_dataset(self, tissue: Any) -> None:
        """Raise one line when ``tissue`` is not the dataset the run was trained on."""
        if self.manifest is not None:
            check_same_dataset(self.manifest.dataset, tissue, where=self.dir.manifest_json,
                               what="use the matching .h5ad or run TOML")


def open_run(path: str | os.PathLike[str], *, overrides: dict[str, Any] | None = None,
             overlay: Callable[[SpaceshipConfig], SpaceshipConfig] | None = None) -> TrainedRun:
    """Open a run from its repro TOML (or a folder holding one).

    Parameters
    ----------
    path : path
        ``spacetravlr_run_repro.toml``, any TOML of the same schema with ``[data].adata_path`` (e.g. one
        kept beside the data), or a run folder.
    overrides : dict, optional
        ``{"section.key": value}`` applied on top (e.g. command-line flags).
    overlay : callable, optional
        Applied to the configuration before ``overrides`` (a perturbation TOML's overlay sections).
    """
    p = Path(os.path.expanduser(path))  # not Path.expanduser: it raises for ~unknown_user
    if p.is_dir():
        p = p / _keys.REPRO_TOML
    if not p.is_file():
        raise InputError(f"run TOML {p} not found; pass the {_keys.REPRO_TOML} written by the training run")
    cfg = SpaceshipConfig.from_toml(p)
    if overlay is not None:
        cfg = overlay(cfg)
    if overrides:
        cfg = cfg.with_overrides(overrides, source="command line")
    if not cfg.data.adata_path:
        raise InputError(f"{p}: [data].adata_path is empty; this is not a training run's repro TOML")
    own = p.parent.resolve()
    declared = Path(cfg.execution.output_dir or own).resolve()
    rd = RunDir(declared)
    if declared != own and _holds_run(own):
        log.info("%s lies in a run folder: using %s, not the recorded output_dir %s (the run was moved or "
                 "copied)", p.name, own, declared)
        rd = RunDir(own)
    if not rd.root.is_dir():
        raise InputError(f"{p}: [execution].output_dir {rd.root} is not a folder; point it at the run folder "
                         "(relative paths resolve against the TOML's folder)")
    return TrainedRun(cfg=cfg, toml=p.resolve(), dir=rd, manifest=Manifest.read(rd.manifest_json))


def _holds_run(folder: Path) -> bool:
    """True when ``folder`` holds a run's manifest or betadata."""
    rd = RunDir(folder)
    return rd.manifest_json.is_file() or bool(rd.betadata_files())


def result_settings(cfg: SpaceshipConfig) -> dict[str, Any]:
    """The values of :data:`RESULT_KEYS` as ``{"section.key": value}``."""
    d = cfg.to_dict()
    out: dict[str, Any] = {}
    for key in RESULT_KEYS:
        if "." in key:
            s, k = key.split(".")
            out[key] = d[s].get(k)
        else:
            for k, v in d[key].items():
                out[f"{key}.{k}"] = v
    return out


def check_folder_holds_this_run(rd: RunDir, cfg: SpaceshipConfig, tissue: Any) -> None:
    """A folder holds one run: the same dataset and the same result-affecting settings.

    Raises one line when the folder's repro TOML or manifest belong to another dataset or settings.
    """
    repro = rd.repro_toml
    if repro.exists():
        old = SpaceshipConfig.from_toml(repro)
        if old.data.adata_path and cfg.data.adata_path and \
                Path(old.data.adata_path).resolve() != Path(cfg.data.adata_path).resolve():
            raise InputError(f"{repro}: this folder holds a run of a different dataset ({old.data.adata_path}); "
                             "choose a new --output-dir")
        a, b = result_settings(old), result_settings(cfg)
        diff = [k for k in a if a[k] != b.get(k)]
        if diff:
            k = diff[0]
            raise ConfigError(f"{repro}: the run in this folder used {k} = {a[k]!r}, now {b.get(k)!r}; "
                              "use the same settings to continue it, or choose a new --output-dir")
    man = Manifest.read(rd.manifest_json)
    if man is not None:
        check_same_dataset(man.dataset, tissue, where=rd.manifest_json, what="choose a new --output-dir")
