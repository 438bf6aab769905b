"""The viewer's state: which dataset is loaded (loaded once, in the background), the job manager and the
last perturbation result.

Loading runs on its own thread in two stages — the tissue (``dataset_ready``), then the run's betadata
and perturbation engine (``perturb_ready``) — and publishes each stage only if no newer configure or a
cancel happened meanwhile (a generation counter).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _keys
from ..errors import SpaceTravLRError
from ._errors import ApiError
from .conditions import ConditionChoice
from .dataset import Dataset, cell_types_like, cell_types_of
from .jobs import JobManager
from .security import PathGuard
from .view import ViewState

if TYPE_CHECKING:
    from ..perturbation.propagate import PerturbResult
    from ..perturbation.session import RunSession

log = logging.getLogger("spacetravlr_py.viewer")

RETRY = {"Retry-After": "1"}


@dataclass(frozen=True)
class LoadInputs:
    """A validated dataset to load: an .h5ad, or a run TOML (whose ``[data]`` wins)."""

    adata_path: Path
    layer: str
    cluster_annot: str
    run_toml: Path | None = None
    network_dir: Path | None = None
    condition: ConditionChoice = field(default_factory=ConditionChoice)


@dataclass
class LoadStatus:
    state: str = "empty"  # empty, loading, ready, error, cancelled
    stage: str = "none"  # none, tissue, run, done
    percent: int = 0
    label: str = ""
    error: str | None = None
    t0: float | None = None
    t1: float | None = None

    def to_json(self) -> dict[str, Any]:
        secs = None if self.t0 is None else round((self.t1 or time.perf_counter()) - self.t0, 3)
        return {"state": self.state, "stage": self.stage, "percent": self.percent, "label": self.label,
                "error": self.error, "seconds": secs}


@dataclass(frozen=True)
class LastResult:
    """The last perturbation result and the request it answers (``key``)."""

    key: tuple[Any, ...]
    result: PerturbResult
    job_id: int
    seconds: float


class ViewerState:
    """Everything the routes share. ``guard`` checks paths; ``threads`` caps the perturbation kernels."""

    def __init__(self, guard: PathGuard, *, threads: int | None = None) -> None:
        self.guard = guard
        self.threads = threads
        self.dataset: Dataset | None = None
        self.inputs: LoadInputs | None = None
        self.status = LoadStatus()
        self.jobs = JobManager()
        self.last: LastResult | None = None
        self.view = ViewState()
        self.generation = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()

    # -- configuring ---------------------------------------------------------------------------

    def prepare(self, *, adata_path: str = "", run_toml: str = "", layer: str | None = None,
                cluster_annot: str | None = None, network_dir: str = "", condition: str | None = None) -> LoadInputs:
        """Validate the paths of a configure request (roots, existence, TOML) → :class:`LoadInputs`.

        ``condition`` picks a group of a run per condition (see :mod:`.conditions`); alone (no path), it
        switches the condition of the run open now.
        """
        net = self.guard.check(network_dir, what="network_dir", kind="dir") if network_dir.strip() else None
        if condition is not None and not run_toml.strip() and not adata_path.strip():
            parent = self.inputs.condition.parent_toml if self.inputs is not None else None
            if parent is None:
                raise ApiError(400, "condition: no run per condition is open; give run_toml (the run trained "
                                    "with --condition) with it")
            run_toml = str(parent)
            if net is None and self.inputs is not None:  # the same run: keep its network folder
                net = self.inputs.network_dir
        if run_toml.strip():
            return self._prepare_run(run_toml, net, condition)
        if condition is not None:
            raise ApiError(400, "condition needs run_toml (a run trained with --condition), not adata_path")
        if not adata_path.strip():
            raise ApiError(400, "give adata_path (an .h5ad) or run_toml (a training run's repro TOML)")
        h5 = self.guard.check(adata_path, what="adata_path")
        return LoadInputs(h5, _keys.DEFAULT_LAYER if layer is None else layer,
                          _keys.DEFAULT_CLUSTER_ANNOT if cluster_annot is None else cluster_annot, None, net)

    def _prepare_run(self, run_toml: str, net: Path | None, condition: str | None) -> LoadInputs:
        """A run TOML (or folder) and, for a run per condition, the condition's own run folder."""
        from ..rundir import open_run
        from .conditions import default_note, first_condition, run_conditions

        p = self.guard.check(run_toml, what="run_toml", kind="any")
        if p.is_dir():
            p = self.guard.check(p / _keys.REPRO_TOML, what="run_toml")
        try:
            root, home, groups = run_conditions(p, self.guard.allows)
            picked = first_condition(home, groups) if condition is None and home == root else None
            run = open_run(p, condition=condition if picked is None else picked)
        except SpaceTravLRError as e:
            raise ApiError(400, f"{'condition' if condition is not None else 'run_toml'}: {e}") from None
        cfg = run.cfg
        # the condition's folder, its TOML and the dataset the TOML names must lie under the roots too
        self.guard.check(run.dir.root, what=f"run folder of {p.name}", kind="dir")
        toml = self.guard.check(run.toml, what="run_toml")
        h5 = self.guard.check(cfg.data.adata_path, what=f"[data].adata_path of {p.name}")
        choice = ConditionChoice()
        if cfg.data.condition and cfg.data.condition_group is not None:
            label = cfg.data.condition_group
            note = default_note(cfg.data.condition, label, groups) if picked is not None else None
            parent = home / _keys.REPRO_TOML if groups and (home / _keys.REPRO_TOML).is_file() else None
            choice = ConditionChoice(cfg.data.condition, label, parent, tuple(groups), note)
        return LoadInputs(h5, cfg.data.layer, cfg.data.cluster_annot, toml, net, choice)

    def start(self, inputs: LoadInputs) -> threading.Event:
        """Drop the current dataset and load ``inputs`` in the background; returns the done event."""
        self.jobs.cancel()
        with self._lock:
            self.generation += 1
            gen = self.generation
            self.dataset, self.last, self.inputs = None, None, inputs
            self.status = LoadStatus("loading", "tissue", 0, f"reading {inputs.adata_path.name}",
                                     t0=time.perf_counter())
            done = threading.Event()
            self._done = done
        threading.Thread(target=self._load, args=(gen, inputs, done), name="viewer-load", daemon=True).start()
        return done

    def cancel_load(self) -> bool:
        """Abandon a load in progress (its result is discarded when it finishes)."""
        with self._lock:
            if self.status.state != "loading":
                return False
            self.generation += 1
            self.status.state, self.status.label, self.status.t1 = "cancelled", "cancelled", time.perf_counter()
            self._done.set()
            return True

    def _publish(self, gen: int, **status: Any) -> bool:
        with self._lock:
            if gen != self.generation:
                return False
            for k, v in status.items():
                setattr(self.status, k, v)
            return True

    def _load(self, gen: int, inputs: LoadInputs, done: threading.Event) -> None:
        from ..io.anndata import load_tissue
        from ..perturbation.session import RunSession

        try:
            # the panel; every column only when that is small (wide panels: columns are read on demand)
            tissue = load_tissue(inputs.adata_path, layer=inputs.layer, cluster_annot=inputs.cluster_annot,
                                 require_clusters=inputs.run_toml is not None, genes=[], keep_float32=True)
            cond, whole = inputs.condition, None
            if cond.column is not None and cond.label is not None:  # the cells of the condition only
                from ..io.conditions import condition_tissue

                whole = cell_types_of(tissue)
                tissue = condition_tissue(tissue, cond.column, cond.label)
            if tissue.n_cells * tissue.n_panel_genes * tissue.layer_dtype.itemsize <= EAGER_LOAD_BYTES:
                tissue = tissue.with_genes(tissue.all_genes)
            ds = Dataset.from_tissue(tissue, inputs.adata_path, run_toml=inputs.run_toml,
                                     network_dir=inputs.network_dir)
            if whole is not None:
                ds.cell_types = cell_types_like(tissue, whole)
            with self._lock:
                if gen != self.generation:
                    return
                self.dataset = ds
            if inputs.run_toml is not None:
                self._publish(gen, stage="run", percent=40, label="loading betadata and the perturbation engine")
                ov = {"grn.network_data_dir": str(inputs.network_dir)} if inputs.network_dir else None
                session: RunSession = RunSession.open(inputs.run_toml, n_threads=self.threads, overrides=ov)
                ds.session = session
                ds.tissue = session.tissue  # the same data; the perturbation engine works on this copy
            if not self._publish(gen, stage="network", percent=90, label="indexing the prior network"):
                return
            ds.load_network()
            self._publish(gen, state="ready", stage="done", percent=100, label="ready", t1=time.perf_counter())
        except SpaceTravLRError as e:
            self._publish(gen, state="error", error=str(e), label="failed", t1=time.perf_counter())
        except Exception as e:  # a bug or an unreadable file: keep serving, say what happened
            log.exception("dataset load failed")
            self._publish(gen, state="error", error=f"{type(e).__name__}: {e}", label="failed",
                          t1=time.perf_counter())
        finally:
            with self._lock:
                if gen == self.generation:
                    done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # -- access for the routes -----------------------------------------------------------------

    def require_dataset(self) -> Dataset:
        """The loaded dataset, or ApiError 503 (loading) / 409 (none, failed, cancelled)."""
        ds = self.dataset
        if ds is not None:
            return ds
        st = self.status
        if st.state == "loading":
            raise ApiError(503, f"the dataset is loading ({st.label}); poll GET /api/meta", RETRY)
        if st.state == "error":
            raise ApiError(409, f"the dataset failed to load: {st.error}")
        raise ApiError(409, "no dataset loaded; POST /api/session/configure or start the viewer with "
                            "--h5ad / --run-toml")

    def require_run(self) -> tuple[Dataset, RunSession]:
        """The dataset and its RunSession, or ApiError 503 (loading) / 409 (no run, failed)."""
        ds = self.require_dataset()
        if ds.session is not None:
            return ds, ds.session
        st = self.status
        if ds.run_toml is None:
            raise ApiError(409, "betadata and perturbation need a training run: start the viewer with --run-toml "
                                "or configure run_toml")
        if st.state == "loading":
            raise ApiError(503, f"the run is loading ({st.label}); poll GET /api/meta", RETRY)
        if st.state == "error":
            raise ApiError(409, f"the run failed to load: {st.error}")
        raise ApiError(409, "the run load was cancelled; configure it again")

    def require_gene(self, ds: Dataset, gene: str, what: str = "gene") -> None:
        """ApiError 400 with close matches unless ``gene`` is a gene of the dataset's panel (loaded or not)."""
        from ..errors import near_matches

        if not ds.tissue.has_gene(gene):
            shown = gene if len(gene) <= 80 else gene[:80] + "…"
            raise ApiError(400, f"{what} '{shown}' is not a gene of the dataset"
                                f"{near_matches(gene, ds.tissue.all_genes) if len(gene) <= 80 else ''}")

    def meta(self) -> dict[str, Any]:
        from .. import __version__
        from .meta import meta_payload

        return meta_payload(self, __version__)

    def shutdown(self) -> None:
        self.jobs.shutdown()
        with self._lock:
            self.generation += 1


EAGER_LOAD_BYTES = 512 << 20
"""A dataset whose whole layer fits in this many bytes is loaded whole; a wider one loads the panel's
gene list only and reads columns on demand (:meth:`Dataset.expression_of`)."""


def env_flag(name: str) -> bool:
    """True when the environment variable is ``1``/``true``/``yes``."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")
