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
RESULT_KEYS = ("data.adata_path", "data.layer", "data.cluster_annot", "data.species", "data.condition",
               "data.condition_group", "spatial", "grn",
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
             overlay: Callable[[SpaceshipConfig], SpaceshipConfig] | None = None,
             condition: str | None = None) -> TrainedRun:
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
    condition : str, optional
        A run per condition: the group to open (its label or folder name); the result is that group's
        own run folder (``conditions/{folder}/``). Required for such a run, unless ``path`` is a
        condition folder already.

    When ``[data].adata_path`` does not exist and the run folder (or, for a condition folder, its parent
    run) holds ``spacetravlr_minimal_repro.h5ad``, the configuration reads that file instead, with a note.
    """
    p, cfg, rd = _locate(path, overrides, overlay)
    if cfg.data.condition or condition is not None:
        picked = _pick_condition(cfg, p, rd, condition)
        if isinstance(picked, Path):  # the group's own run folder
            return open_run(picked / _keys.REPRO_TOML, overrides=overrides, overlay=overlay)
        cfg = picked
    cfg = _minimal_fallback(cfg, p, rd)
    return TrainedRun(cfg=cfg, toml=p.resolve(), dir=rd, manifest=Manifest.read(rd.manifest_json))


def run_folder(path: str | os.PathLike[str]) -> Path:
    """The run folder a repro TOML (or a folder holding one) belongs to, by the rules of :func:`open_run`."""
    return _locate(path, None, None)[2].root


def _locate(path: str | os.PathLike[str], overrides: dict[str, Any] | None,
            overlay: Callable[[SpaceshipConfig], SpaceshipConfig] | None) -> tuple[Path, SpaceshipConfig, RunDir]:
    """The TOML, its configuration (overlay, then overrides) and its run folder."""
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
    return p, cfg, rd


def _pick_condition(cfg: SpaceshipConfig, p: Path, rd: RunDir, condition: str | None) -> SpaceshipConfig | Path:
    """The configuration of a condition folder, or the folder of ``condition`` in a run per condition."""
    from .conditions import condition_folder, own_label, parent_run, recorded_groups

    group = cfg.data.condition_group
    if not cfg.data.condition:
        raise InputError(f"{p}: --condition {condition}: this run was not trained per condition "
                         "([data].condition is not set); drop --condition")
    if group is None:
        label = own_label(rd.root)  # a condition folder written by the Rust seed
        if label is not None and condition in (None, label, rd.root.name):
            return cfg.with_overrides({"data.condition_group": label}, source=str(p))
        if condition is None:
            from ..errors import short_list

            raise InputError(f"{p}: the run trains one model set per obs['{cfg.data.condition}'] group; pick one "
                             f"with --condition GROUP (conditions: {short_list(recorded_groups(rd.root))})")
        if label is None:
            return condition_folder(rd.root, condition, where=str(p))
        group = label
    parent = parent_run(rd.root)
    other_label = parent is not None and condition in recorded_groups(parent)  # labels win over folder names
    if condition is not None and condition != group and (condition != rd.root.name or other_label):
        raise InputError(f"{p}: this run folder holds condition '{group}', not '{condition}'; open the parent "
                         "run folder to pick another condition")
    return cfg


def _minimal_fallback(cfg: SpaceshipConfig, p: Path, rd: RunDir) -> SpaceshipConfig:
    """``[data].adata_path`` is gone: read the run's minimal ``.h5ad`` instead (with a note), if there is one."""
    from .conditions import parent_run

    if Path(cfg.data.adata_path).exists():
        return cfg
    for folder in (rd.root, parent_run(rd.root)):
        alt = folder / _keys.MINIMAL_H5AD if folder is not None else None
        if alt is not None and alt.is_file():
            note = (f"{p}: [data].adata_path {cfg.data.adata_path} does not exist; reading the run's minimal copy "
                    f"{alt}")
            new = cfg.with_overrides({"data.adata_path": str(alt)}, source=f"{p} (minimal .h5ad)")
            new.notes.append(note)
            log.warning("%s", note)
            return new
    return cfg


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
