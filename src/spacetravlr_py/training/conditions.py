"""A run per condition (``--condition OBS_COL``): one ordinary run per group under ``conditions/``.

:func:`~.run.train` hands a configuration with ``[data].condition`` set (and no ``condition_group``) to
:func:`train_conditions`, which checks every group first (a missing column, a group without a cluster of
2 cells: one line, nothing written), writes the parent run's repro TOML and manifest (with the
``label ↔ folder`` map), then trains each group with :func:`~.run.train` into its own folder, on that
group's cells only, with the whole dataset's cluster labels (see :mod:`spacetravlr_py.io.conditions`).
Running the command again, or ``--join-output-dir`` on the parent folder, continues every group.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _keys
from ..config import SpaceshipConfig
from ..io.atomic import atomic_write_text
from ..rundir import Manifest, RunDir, check_folder_holds_this_run, dataset_fingerprint
from ..rundir.conditions import condition_dir, folder_names, recorded_groups
from ..rundir.manifest import COMPLETE, COMPLETE_WITH_FAILURES, INTERRUPTED, PARTIAL, RUNNING
from .reporters import LogReporter, Reporter

if TYPE_CHECKING:
    from ..io.anndata import Tissue
    from .control import RunControl
    from .executors import Executor
    from .run import RunResult
    from .trainer import Trainer


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _group_status(res: RunResult) -> str:
    status = str(res.manifest.get("status", RUNNING))
    return INTERRUPTED if res.interrupted else status


def _parent_status(results: dict[str, RunResult], n_groups: int) -> str:
    if any(r.interrupted for r in results.values()):
        return INTERRUPTED
    statuses = [_group_status(r) for r in results.values()]
    if len(results) < n_groups or PARTIAL in statuses:
        return PARTIAL
    return COMPLETE_WITH_FAILURES if COMPLETE_WITH_FAILURES in statuses else COMPLETE


def train_conditions(cfg: SpaceshipConfig, *, trainer: Trainer | None = None, executor: Executor | None = None,
                     reporter: Reporter | None = None, control: RunControl | None = None,
                     tissue: Tissue | None = None, network: Any = None) -> RunResult:
    """Train one model set per group of ``[data].condition`` into ``{output_dir}/conditions/{folder}/``.

    Parameters are those of :func:`~.run.train`; ``tissue`` is the whole dataset. Returns the parent run's
    :class:`~.run.RunResult`: counts summed over the groups, ``conditions`` holding each group's result.
    """
    from ..io.anndata import tissue_from_config
    from ..io.conditions import check_group, condition_groups, subset_tissue
    from ..io.network import network_for
    from .run import default_output_dir, train

    reporter = reporter or LogReporter()
    column = str(cfg.data.condition)
    started = _now()
    rd = RunDir(Path(cfg.execution.output_dir) if cfg.execution.output_dir else default_output_dir(cfg))
    rd.check_writable()
    if cfg.data.adata_path:
        cfg = cfg.with_overrides({"data.adata_path": str(Path(cfg.data.adata_path).expanduser().resolve())},
                                 source="dataset path")
    full = tissue if tissue is not None else tissue_from_config(cfg)
    groups, warnings = condition_groups(full, column)
    for g in groups:  # every group is checked before anything is written
        check_group(full, g, column)
    species, net_path = cfg.data.species or "", None
    if network is None:
        network, species, net_path = network_for(cfg, full.var_names)
    cfg = cfg.with_overrides({"execution.output_dir": str(rd.root)}, source="output directory")
    check_folder_holds_this_run(rd, cfg, full)
    names = folder_names([g.label for g in groups], taken=recorded_groups(rd.root))
    rd.prepare()
    if not rd.repro_toml.exists():
        cfg.dump_toml(rd.repro_toml)
    record = {"column": column, "groups": [{"label": g.label, "folder": names[g.label], "n_cells": g.n_cells}
                                           for g in groups]}
    parent = Manifest(status=RUNNING, started=started, dataset=dataset_fingerprint(full), species=species,
                      network=str(net_path) if net_path else None, output_dir=str(rd.root),
                      cluster_labels=[str(c) for c in full.cluster_labels], mode=cfg.training.mode,
                      conditions=record)
    parent.write(rd.manifest_json)
    for w in warnings:
        reporter.warning(w)
    write_minimal_if_asked(cfg, rd, reporter)
    results: dict[str, RunResult] = {}
    for g in groups:
        child = condition_dir(rd.root, names[g.label])
        child.mkdir(parents=True, exist_ok=True)
        atomic_write_text(child / _keys.CONDITION_LABEL_FILE, g.label.replace("\n", " ").replace("\r", " ") + "\n")
        child_cfg = cfg.with_overrides({"data.condition_group": g.label, "execution.output_dir": str(child)},
                                       source=f"condition '{g.label}'")
        reporter.message(f"condition obs['{column}'] = '{g.label}': {g.n_cells} cells → {child}")
        res = train(child_cfg, trainer=trainer, executor=executor, reporter=reporter, control=control,
                    tissue=subset_tissue(full, g.cells), network=network)
        results[g.label] = res
        if res.interrupted:
            break
    return _finish(cfg, rd, parent, record, results, len(groups))


def _finish(cfg: SpaceshipConfig, rd: RunDir, parent: Manifest, record: dict[str, Any],
            results: dict[str, RunResult], n_groups: int) -> RunResult:
    from .run import RunResult

    counts: dict[str, int] = {}
    for res in results.values():
        for k, v in res.counts.items():
            counts[k] = counts.get(k, 0) + v
    for entry in record["groups"]:
        got = results.get(entry["label"])
        entry["status"] = _group_status(got) if got is not None else "not started"
        entry["counts"] = dict(got.counts) if got is not None else {}
    parent.status = _parent_status(results, n_groups)
    parent.finished = _now()
    parent.counts = counts
    parent.conditions = record
    if rd.minimal_h5ad.is_file():
        parent.minimal_h5ad = _keys.MINIMAL_H5AD
    parent.write(rd.manifest_json)
    cfg.dump_toml(rd.repro_toml)
    interrupted = any(r.interrupted for r in results.values())
    return RunResult(out_dir=rd.root, counts=counts, outcomes=[o for r in results.values() for o in r.outcomes],
                     interrupted=interrupted, manifest=parent.to_dict(), conditions=results)


def write_minimal_if_asked(cfg: SpaceshipConfig, rd: RunDir, reporter: Reporter) -> None:
    """``--write-minimal-repro-h5ad``: write the run folder's minimal ``.h5ad`` unless it is there already.

    A condition folder of a parent run uses the parent's file (written before the groups are trained).
    """
    from ..io.minimal import write_minimal_h5ad
    from ..rundir.conditions import parent_run

    if not cfg.execution.write_minimal_repro_h5ad:
        return
    home = parent_run(rd.root) if cfg.data.condition_group is not None else None
    target = (home or rd.root) / _keys.MINIMAL_H5AD
    if target.is_file():
        return
    write_minimal_h5ad(cfg.data.adata_path, target, layer=cfg.data.layer, cluster_annot=cfg.data.cluster_annot,
                       obs_columns=[cfg.data.condition] if cfg.data.condition else [])
    reporter.message(f"wrote {target} (what perturbation and the viewer read when [data].adata_path is gone)")
