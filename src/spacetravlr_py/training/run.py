"""The training run (SPEC §5.3): inputs → run folder → pending genes → trainer × executor → manifest.

>>> import spacetravlr_py as st
>>> cfg = st.SpaceshipConfig().with_overrides({"data.adata_path": "tissue.h5ad",
...                                            "execution.output_dir": "run1"})  # doctest: +SKIP
>>> result = st.train(cfg)                                                      # doctest: +SKIP

:func:`train` wires one trainer (what a gene's model is), one executor (who fits the genes) and one
reporter (who hears about it); the run folder itself is :mod:`spacetravlr_py.rundir`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys
from ..config import SpaceshipConfig
from ..errors import InputError, near_matches, short_list
from ..io.anndata import Tissue
from ..io.tfprior import TfPrior
from ..rundir import Manifest, RunDir, check_folder_holds_this_run, dataset_fingerprint
from ..rundir.manifest import COMPLETE, COMPLETE_WITH_FAILURES, INTERRUPTED, PARTIAL, RUNNING, LigandRecord
from .conditions import write_minimal_if_asked
from .context import ExtraModulators, TrainingContext, build_context, selector_for
from .control import RunControl, graceful_interrupts
from .executors import Executor, executor_for
from .gene import GeneJob
from .reporters import LogReporter, Reporter, RunEnd, RunStart, Tally
from .results import DONE, FAILED, ORPHAN, SKIPPED, GeneOutcome
from .trainer import Trainer, trainer_for


@dataclass
class RunResult:
    """Summary of a training run."""

    run_dir: Path
    counts: dict[str, int]
    outcomes: list[GeneOutcome] = field(default_factory=list)
    interrupted: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, RunResult] = field(default_factory=dict)
    """A run per condition: each group's result (its ``out_dir`` is the group's folder)."""


def versions() -> dict[str, str]:
    """Versions of the packages that determine the results."""
    import importlib.metadata

    import numba
    import pandas
    import scipy

    from .. import __version__

    return {"spacetravlr": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "numba": numba.__version__, "pandas": pandas.__version__,
            "anndata": importlib.metadata.version("anndata")}


def default_output_dir(cfg: SpaceshipConfig) -> Path:
    """``./{h5ad_stem}_{YYYY-MM-DD}`` when ``[execution].output_dir`` is empty."""
    stem = Path(cfg.data.adata_path).stem or "spacetravlr"
    return Path.cwd() / f"{stem}_{_dt.date.today().isoformat()}"


def select_genes(tissue: Tissue, genes: Sequence[str], max_genes: int | None) -> list[str]:
    """The work queue: ``genes`` (validated) or every gene of the panel, capped at ``max_genes``."""
    if genes:
        missing = [g for g in genes if not tissue.has_gene(g)]
        if missing:
            g = missing[0]
            more = f" ({len(missing) - 1} more missing: {short_list(missing[1:], 5)})" if len(missing) > 1 else ""
            raise InputError(f"--genes: '{g}' is not a gene of {tissue.path or 'the dataset'}"
                             f"{near_matches(g, tissue.all_genes)}{more}")
        queue = list(dict.fromkeys(genes))
    else:
        queue = list(tissue.all_genes)
    return queue[:max_genes] if max_genes is not None else queue


def check_clusters(tissue: Tissue) -> list[str]:
    """One warning line per cluster with fewer than 2 cells (its model cannot be fitted: zero betas)."""
    sizes = tissue.cluster_sizes()
    return [f"warning: obs['{tissue.cluster_annot}']: cluster '{lab}' has {int(n)} cell; its model cannot be "
            "fitted and its betas are zero (merge it into another cell type or drop its cells to model it)"
            for lab, n in zip(tissue.cluster_labels, sizes) if n < 2]


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class _Collector(Reporter):
    """Forwards every event to the run's reporter and keeps the outcomes and counts for the manifest."""

    def __init__(self, inner: Reporter, total: int) -> None:
        self.inner = inner
        self.tally = Tally(total)
        self.outcomes: list[GeneOutcome] = []

    def message(self, text: str) -> None:
        self.inner.message(text)

    def warning(self, text: str) -> None:
        self.inner.warning(text)

    def gene_started(self, gene: str, worker: int) -> None:
        self.inner.gene_started(gene, worker)

    def gene_finished(self, outcome: GeneOutcome) -> None:
        self.tally.add(outcome)
        if outcome.status != SKIPPED:
            self.outcomes.append(outcome)
        self.inner.gene_finished(outcome)


@dataclass
class _Inputs:
    """Everything validated before the run folder is touched."""

    cfg: SpaceshipConfig
    tissue: Tissue
    network: Any
    species: str
    network_path: Path | None
    queue: list[str]
    extras: ExtraModulators
    warnings: list[str]
    fingerprint: dict[str, Any] = field(default_factory=dict)
    tf_prior: TfPrior | None = None


def _validated_inputs(cfg: SpaceshipConfig, rd: RunDir, tissue: Tissue | None, network: Any) -> _Inputs:
    """Load and check every input; nothing is written, so a bad input leaves no output behind."""
    from ..io.anndata import tissue_from_config
    from ..io.network import network_for

    rd.check_writable()
    if cfg.execution.scheduler:  # a bad address or a missing extra is one line before any work
        from ..scaleout import check_scheduler

        check_scheduler(cfg.execution.scheduler)
    if cfg.data.adata_path:
        cfg = cfg.with_overrides({"data.adata_path": str(Path(cfg.data.adata_path).expanduser().resolve())},
                                 source="dataset path")
    if tissue is None:  # the panel first, then only the columns the queue's models read
        tissue = tissue_from_config(cfg, genes=[], keep_float32=True)
    warnings = check_clusters(tissue)
    queue = select_genes(tissue, cfg.training.genes, cfg.training.max_genes)
    if network is None:
        network, species, net_path = network_for(cfg, tissue.all_genes)
    else:
        species, net_path = cfg.data.species or "", None
    extras = ExtraModulators.from_config(cfg)
    # the modulator genes now (a superset: before max_ligands); targets are read in chunks while training
    tissue = tissue.with_genes(selector_for(cfg, tissue, network, extras, rank_ligands=False).modulator_genes(queue))
    prior = None
    if cfg.grn.tf_priors:
        from ..io.tfprior import read_tf_prior

        prior = read_tf_prior(cfg.grn.tf_priors, var_names=tissue.all_genes, cluster_labels=tissue.cluster_labels,
                              cluster_annot=tissue.cluster_annot, network=network)
        warnings += [f"warning: {n}" for n in prior.notes]
    cfg = cfg.with_overrides({"execution.output_dir": str(rd.root)}, source="output directory")
    fingerprint = dataset_fingerprint(tissue)  # scans the whole layer: a NaN anywhere stops here
    check_folder_holds_this_run(rd, cfg, tissue)
    return _Inputs(cfg, tissue, network, species, net_path, queue, extras, warnings, fingerprint, prior)


def _manifest(inp: _Inputs, rd: RunDir, ctx: TrainingContext | None, col: _Collector, status: str,
              started: str, timings: dict[str, Any], previous: Manifest | None) -> Manifest:
    """The manifest at the end of a run (what earlier runs in the folder recorded is kept)."""
    done, orph = rd.scan(inp.queue)
    failed = {o.gene: o.reason for o in col.outcomes if o.status == FAILED}
    accounted = set(done) | set(orph) | set(failed)
    unfinished = [g for g in inp.queue if g not in accounted]
    if status != INTERRUPTED:
        status = PARTIAL if unfinished else (COMPLETE_WITH_FAILURES if failed else COMPLETE)
    sp = inp.cfg.spatial
    m = Manifest(status=status, started=started, finished=_now(), dataset=inp.fingerprint,
                 network=str(inp.network_path) if inp.network_path else None, species=inp.species,
                 output_dir=str(rd.root),
                 genes={"queued": len(inp.queue), "done": done, "orphaned": orph, "failed": failed,
                        "unfinished": unfinished},
                 counts={"done": len(done), "orphaned": len(orph), "failed": len(failed),
                         "unfinished": len(unfinished)},
                 timings=timings, received_ligands=ctx.received_info if ctx is not None else [],
                 n_parallel=inp.cfg.execution.n_parallel, versions=versions(), mode=inp.cfg.training.mode,
                 cluster_labels=[str(c) for c in inp.tissue.cluster_labels],
                 spatial={"kernel": sp.kernel, "scale": sp.weighted_ligand_scale_factor, "radius": sp.radius,
                          "contact_distance": sp.contact_distance, "per_ligand_radius": sp.per_ligand_radius})
    if rd.minimal_h5ad.is_file():
        m.minimal_h5ad = _keys.MINIMAL_H5AD
    if previous is not None:
        m.ligands = dict(previous.ligands)
        m.modulators = dict(previous.modulators)
    if ctx is not None:
        m.ligands = {name: LigandRecord(signaling=ctx.selector.signaling.get(name), radius=r)
                     for name, r in ctx.ligand_radius.items()}
    m.modulators.update({o.gene: o.families for o in col.outcomes if o.families})
    if inp.tf_prior is not None:
        before = previous.tf_priors if previous is not None and isinstance(previous.tf_priors, dict) else {}
        masked = dict(before["masked"]) if isinstance(before.get("masked"), dict) else {}
        masked.update({o.gene: o.tf_masks for o in col.outcomes if o.tf_masks})
        m.tf_priors = {**inp.tf_prior.summary(), "masked": masked}
    return m


def _summary_line(col: _Collector, inp: _Inputs, m: Manifest, interrupted: bool, pending: set[str]) -> str:
    line = col.tally.summary()
    unfinished = m.genes["unfinished"]
    if unfinished and not interrupted:
        line += f"; {len(unfinished)} still locked by other processes"
    if interrupted:  # a gene whose file was written as the interrupt arrived is on disk but not reported
        done, orph = m.genes["done"], m.genes["orphaned"]
        seen = {o.gene for o in col.outcomes} | (set(inp.queue) - pending)
        late = sum(1 for g in (*done, *orph) if g not in seen)
        if late:
            line += f"; {late} more written while stopping (on disk: {len(done)} done, {len(orph)} orphaned)"
    return line


@contextlib.contextmanager
def _abort_reported(reporter: Reporter) -> Iterator[None]:
    try:
        yield
    except Exception as e:
        reporter.aborted(e)
        raise


def _open_folder(inp: _Inputs, rd: RunDir, started: str, reporter: Reporter) -> Manifest | None:
    """Create the run folder, clean what dead processes left, write the repro TOML (and the minimal
    h5ad when asked) and a first manifest; return the manifest of earlier runs in the folder."""
    rd.prepare()
    rd.clean_leftovers()
    if not rd.repro_toml.exists():
        inp.cfg.dump_toml(rd.repro_toml)
    write_minimal_if_asked(inp.cfg, rd, reporter)
    previous = Manifest.read(rd.manifest_json)
    if previous is None:
        # written at once so that a killed first run still records which dataset the folder belongs to
        Manifest(status=RUNNING, started=started, dataset=inp.fingerprint).write(rd.manifest_json)
    return previous


def _run_start(inp: _Inputs, rd: RunDir) -> RunStart:
    t, cfg = inp.tissue, inp.cfg
    return RunStart(config=cfg.to_dict(), output_dir=str(rd.root), dataset=str(t.path or "in memory"),
                    n_cells=t.n_cells, n_genes=t.n_panel_genes, n_clusters=t.n_clusters,
                    cluster_annot=t.cluster_annot,
                    layer=t.layer, network=str(inp.network_path) if inp.network_path else None,
                    species=inp.species, mode=cfg.training.mode, n_queued=len(inp.queue),
                    n_workers=cfg.execution.n_parallel, warnings=inp.warnings)


def _train_pending(inp: _Inputs, rd: RunDir, pending: list[str], trainer: Trainer, executor: Executor | None,
                   col: _Collector, control: RunControl) -> tuple[TrainingContext | None, float, bool]:
    """Report finished genes as skipped, build the context, let the executor train the rest.

    Returns the context (None when nothing was pending), when training started, and whether it was
    interrupted (Ctrl-C, SIGTERM or a stop request).
    """
    cfg = inp.cfg
    ctx: TrainingContext | None = None
    t_ctx = time.perf_counter()
    with graceful_interrupts(), _abort_reported(col.inner):
        try:
            pending_set = set(pending)
            for g in inp.queue:
                if g not in pending_set:
                    col.gene_finished(GeneOutcome(g, SKIPPED))
            if pending:
                ctx = build_context(cfg, inp.tissue, inp.network, pending, extras=inp.extras, tf_prior=inp.tf_prior)
                trainer.prepare(ctx)
                for note in getattr(trainer, "notes", []):  # e.g. full mode: clusters too small to hold out
                    col.warning(note)
                for line in ctx.received_info:
                    col.message(line)
            t_ctx = time.perf_counter()
            if ctx is not None:
                ex = executor or executor_for(cfg.execution.n_parallel, len(pending), cfg.execution.scheduler)
                col.message(ex.describe(len(pending)))
                job = GeneJob(ctx=ctx, trainer=trainer, run_dir=rd, stale_lock_secs=cfg.execution.stale_lock_secs)
                ex.run(job, pending, col, control)
        except KeyboardInterrupt:
            col.message("interrupted: finished genes are kept; run the same command again to continue")
            return ctx, t_ctx, True
    return ctx, t_ctx, False


def train(cfg: SpaceshipConfig, *, trainer: Trainer | None = None, executor: Executor | None = None,
          reporter: Reporter | None = None, control: RunControl | None = None, tissue: Tissue | None = None,
          network: Any = None) -> RunResult:
    """Train every gene of the queue and write betadata into the run folder (SPEC §5.3).

    Parameters
    ----------
    cfg : SpaceshipConfig
        The validated configuration.
    trainer : Trainer, optional
        How a gene is fitted (default: the trainer of ``[training].mode``).
    executor : Executor, optional
        Who fits the pending genes (default: this process, or ``[execution].n_parallel`` processes).
    reporter : Reporter, optional
        Who hears the run's events (default :class:`~.reporters.LogReporter`: Python logging). Programs
        pass a console reporter or the dashboard.
    control : RunControl, optional
        Pause / stop requests from a front end (Ctrl-C and SIGTERM always stop the run cleanly).
    tissue, network
        Already loaded inputs (otherwise read from ``cfg``).

    Returns
    -------
    RunResult
        ``interrupted`` is True when stopped; finished genes are on disk either way.
    """
    if cfg.data.condition and cfg.data.condition_group is None:  # one run per group, under conditions/
        from .conditions import train_conditions

        return train_conditions(cfg, trainer=trainer, executor=executor, reporter=reporter, control=control,
                                tissue=tissue, network=network)
    trainer = trainer or trainer_for(cfg)
    reporter = reporter or LogReporter()
    control = control or RunControl()
    started, t_start = _now(), time.perf_counter()
    rd = RunDir(Path(cfg.execution.output_dir) if cfg.execution.output_dir else default_output_dir(cfg))
    inp = _validated_inputs(cfg, rd, tissue, network)
    cfg = inp.cfg
    previous = _open_folder(inp, rd, started, reporter)
    t_loaded = time.perf_counter()
    col = _Collector(reporter, len(inp.queue))
    reporter.run_started(_run_start(inp, rd))
    pending = [g for g in inp.queue if not rd.is_finished(g)]
    ctx, t_ctx, interrupted = _train_pending(inp, rd, pending, trainer, executor, col, control)
    rd.remove_dead_locks()
    timings = {"load_s": round(t_loaded - t_start, 4), "received_ligands_s": round(t_ctx - t_loaded, 4),
               "train_s": round(time.perf_counter() - t_ctx, 4), "total_s": round(time.perf_counter() - t_start, 4),
               "per_gene_s": {o.gene: round(o.seconds, 5) for o in col.outcomes}}
    m = _manifest(inp, rd, ctx, col, INTERRUPTED if interrupted else RUNNING, started, timings, previous)
    m.write(rd.manifest_json)
    cfg.dump_toml(rd.repro_toml)
    counts = {DONE: m.counts["done"], ORPHAN: m.counts["orphaned"], FAILED: m.counts["failed"],
              "unfinished": m.counts["unfinished"]}
    reporter.run_finished(RunEnd(counts=counts, interrupted=interrupted,
                                 summary=_summary_line(col, inp, m, interrupted, set(pending)),
                                 manifest=m.to_dict()))
    return RunResult(run_dir=rd.root, counts=counts, outcomes=col.outcomes, interrupted=interrupted,
                     manifest=m.to_dict())
