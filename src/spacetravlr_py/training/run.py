"""The training run (``spacetravlr``): queue, workers, locks, outputs, manifest (SPEC §5.3).

>>> from spacetravlr_py import SpaceshipConfig
>>> from spacetravlr_py.training import train
>>> cfg = SpaceshipConfig().with_overrides({"data.adata_path": "tissue.h5ad",
...                                         "execution.output_dir": "run1"})  # doctest: +SKIP
>>> result = train(cfg)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import _keys
from ..config import SpaceshipConfig
from ..errors import ConfigError, InputError, near_matches, short_list
from ..io.anndata import Tissue
from ..io.atomic import atomic_write_text
from . import locks
from .context import TrainingContext, build_context
from .gene import BUSY, DONE, FAILED, ORPHAN, SKIPPED, GeneOutcome, is_finished, orphan_path, train_gene
from .progress import Progress

log = logging.getLogger("spacetravlr_py.training")

#: sections/keys whose values change the fitted betas: a run folder never mixes two settings of them
RESULT_KEYS = ("data.adata_path", "data.layer", "data.cluster_annot", "data.species", "spatial", "grn",
               "lasso", "training.mode", "training.epochs", "training.learning_rate",
               "training.score_threshold", "cnn", "perturbation.ligand_grid_factor")


@dataclass
class RunResult:
    """Summary of a training run."""

    out_dir: Path
    counts: dict[str, int]
    outcomes: list[GeneOutcome] = field(default_factory=list)
    interrupted: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)


def _versions() -> dict[str, str]:
    import importlib.metadata

    import numba
    import pandas
    import scipy

    from .. import __version__

    return {"spacetravlr": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "numba": numba.__version__, "pandas": pandas.__version__,
            "anndata": importlib.metadata.version("anndata")}


def dataset_fingerprint(tissue: Tissue) -> dict[str, Any]:
    """Shape, a hash of cell and gene names and a hash of the data (coordinates, layer, clusters).

    Detects a run folder of another dataset, including a same-shaped one.
    """
    h = hashlib.sha1()
    h.update("\n".join(map(str, tissue.obs_names)).encode())
    h.update(b"\0")
    h.update("\n".join(tissue.var_names).encode())
    d = hashlib.sha1()
    d.update(np.ascontiguousarray(tissue.coords, dtype=np.float64).tobytes())
    d.update(np.ascontiguousarray(tissue.expression, dtype=np.float64).tobytes())
    d.update(np.ascontiguousarray(tissue.clusters, dtype=np.int64).tobytes())
    return {"path": str(tissue.path) if tissue.path else None, "n_obs": tissue.n_cells,
            "n_vars": tissue.n_genes, "names_sha1": h.hexdigest(), "data_sha1": d.hexdigest()}


def _result_settings(cfg: SpaceshipConfig) -> dict[str, Any]:
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


def default_output_dir(cfg: SpaceshipConfig) -> Path:
    """``./{h5ad_stem}_{YYYY-MM-DD}`` when ``[execution].output_dir`` is empty."""
    stem = Path(cfg.data.adata_path).stem or "spacetravlr"
    return Path.cwd() / f"{stem}_{_dt.date.today().isoformat()}"


def check_output_dir(path: Path) -> Path:
    """Explain in one line why ``path`` cannot hold a run, without creating anything."""
    p = path.expanduser().resolve()
    if p.exists() and not p.is_dir():
        raise InputError(f"output directory {p} is a file; choose another --output-dir")
    probe = p
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"output directory {p}: {probe} is a file, so the folder cannot be created; "
                         "choose another --output-dir")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == p else f"cannot be created ({probe} is not writable)"
        raise InputError(f"output directory {p} {what}; choose another --output-dir or fix its permissions")
    return p


def prepare_output_dir(path: Path) -> Path:
    """Create ``path`` (and ``log/``) or explain in one line why it cannot be used."""
    p = check_output_dir(path)
    try:
        (p / _keys.LOG_DIR).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"output directory {p} cannot be created or written ({e.strerror or e}); "
                         "choose another --output-dir") from None
    return p


def select_genes(tissue: Tissue, genes: Sequence[str], max_genes: int | None) -> list[str]:
    """The work queue: ``genes`` (validated) or every gene, capped at ``max_genes``."""
    if genes:
        index = tissue.gene_index
        missing = [g for g in genes if g not in index]
        if missing:
            g = missing[0]
            more = f" ({len(missing) - 1} more missing: {short_list(missing[1:], 5)})" if len(missing) > 1 else ""
            raise InputError(f"--genes: '{g}' is not a gene of {tissue.path or 'the dataset'}"
                             f"{near_matches(g, tissue.var_names)}{more}")
        queue = list(dict.fromkeys(genes))
    else:
        queue = list(tissue.var_names)
    return queue[:max_genes] if max_genes is not None else queue


def check_clusters(tissue: Tissue) -> list[str]:
    """One warning line per cluster with fewer than 2 cells (its model cannot be fitted: zero betas)."""
    sizes = tissue.cluster_sizes()
    return [f"warning: obs['{tissue.cluster_annot}']: cluster '{lab}' has {int(n)} cell; its model cannot be "
            "fitted and its betas are zero (merge it into another cell type or drop its cells to model it)"
            for lab, n in zip(tissue.cluster_labels, sizes) if n < 2]


def _check_modulator_inputs(cfg: SpaceshipConfig) -> None:
    """Read the ``extra_*`` files and parse every extra LR pair now, before anything is written."""
    from ..modulators import parse_lr, read_list_file

    g = cfg.grn
    extra_lr = list(g.extra_lr)
    if g.extra_lr_file:
        extra_lr += read_list_file(g.extra_lr_file, what="extra_lr")
        parse_lr(extra_lr[len(g.extra_lr):], source=f"[grn].extra_lr_file {g.extra_lr_file}")
    parse_lr(g.extra_lr, source="[grn].extra_lr (--extra-lr)")
    if g.extra_modulators_file:
        read_list_file(g.extra_modulators_file, what="extra_modulators")


def load_run_network(cfg: SpaceshipConfig, tissue: Tissue) -> tuple[Any, str, Path]:
    """Find and load ``{species}_network.parquet`` (SPEC §2.2 resolution order)."""
    from ..io.network import infer_species, load_network, resolve_network_dir

    species = cfg.data.species or infer_species(tissue.var_names)
    directory = resolve_network_dir(cfg.grn.network_data_dir, species)
    path = directory / _keys.NETWORK_FILE.format(species=species)
    return load_network(path), species, path


def _ignore_signal(signum: int, frame: object) -> None:
    """A Python-level no-op (not SIG_IGN: a signal already pending when the handler changes would then
    be reported as 'ignored due to race condition')."""


def _interrupt_once(signum: int, frame: object) -> None:
    """First Ctrl-C or SIGTERM: ignore further ones, so that the clean-up they start (removing a
    temporary file, releasing a lock) cannot itself be cut short, then unwind like Ctrl-C."""
    signal.signal(signal.SIGINT, _ignore_signal)
    signal.signal(signal.SIGTERM, _ignore_signal)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _graceful_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, and the first of them as the only one, while genes are trained."""
    try:
        old = {s: signal.signal(s, _interrupt_once) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not in the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


_CTX_PREFIX = ".spacetravlr-ctx-"
_GENE_TMP = re.compile(r"^\.(?P<gene>.+?)(?:_betadata\.feather|\.orphan|\.log)\.[A-Za-z0-9_]+\.tmp$")


def _remove_dead_locks(out_dir: Path) -> None:
    """Locks of finished genes whose owner died between writing the gene and unlocking it."""
    for p in out_dir.glob(f"*{Path(_keys.LOCK_FILE).suffix}"):
        gene = p.name[: -len(p.suffix)]
        if is_finished(out_dir, gene):
            locks.remove_if_stale(out_dir, gene)


def _clean_leftovers(out_dir: Path) -> None:
    """Remove what a killed process of this host left behind: shared-array folders of dead runs, and
    temporary files of genes that nobody is training any more (a live lock protects a gene's files)."""
    for d in out_dir.glob(f"{_CTX_PREFIX}*"):
        parts = d.name[len(_CTX_PREFIX):].split("-")
        # .spacetravlr-ctx-{host}-{pid}-{random}; host names may hold dashes
        if len(parts) < 3 or not parts[-2].isdigit():
            continue
        host, pid = "-".join(parts[:-2]), int(parts[-2])
        if host == locks.HOST and not locks.pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
    _remove_dead_locks(out_dir)
    for f in out_dir.glob(f".*{_keys.LOCK_FILE.format(gene='')}.*.tmp"):  # a lock being created lives µs
        with contextlib.suppress(FileNotFoundError):
            if time.time() - f.stat().st_mtime > locks.UNREADABLE_GRACE_SECS:
                f.unlink()
    for folder in (out_dir, out_dir / _keys.LOG_DIR):
        for f in folder.glob(".*.tmp"):
            m = _GENE_TMP.match(f.name)
            if m is None:
                continue
            lp = locks.lock_path(out_dir, m.group("gene"))
            if not lp.exists() or locks.is_stale(lp, 0.0):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()


def _worker_main(ctx_dir: str, genes: list[str], worker: int, conn: Any) -> None:
    """Worker process: memory-map the context, train genes until the queue is exhausted.

    Outcomes go back through this worker's own pipe (``None`` at the end): no lock is shared between
    workers, so a worker killed mid-message cannot block the others.
    """
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    try:
        from .._threads import thread_limit

        parent = os.getppid()
        ctx = TrainingContext.load(Path(ctx_dir))
        with thread_limit(1):
            for g in genes:
                if os.getppid() != parent:  # the run was killed (kill -9): stop after the current gene
                    break
                o = train_gene(ctx, g, worker)
                if o.status not in (SKIPPED, BUSY):  # each worker sees every gene; report each once
                    conn.send(o)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            conn.send(None)
        conn.close()


def _run_parallel(ctx: TrainingContext, queue: list[str], n_workers: int, progress: Progress,
                  outcomes: list[GeneOutcome]) -> None:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    mpctx = mp.get_context("spawn")
    ctx_dir = Path(tempfile.mkdtemp(prefix=f"{_CTX_PREFIX}{locks.HOST}-{os.getpid()}-", dir=ctx.out_dir))
    procs: list[Any] = []
    readers: dict[Any, int] = {}
    clean_exit = False
    try:
        ctx.save(ctx_dir)
        for w in range(n_workers):
            # each worker starts at a different point of the queue to avoid contending for locks
            k = (w * len(queue)) // n_workers
            order = queue[k:] + queue[:k]
            r, s = mpctx.Pipe(duplex=False)
            p = mpctx.Process(target=_worker_main, args=(str(ctx_dir), order, w, s), daemon=True)
            p.start()
            s.close()  # the worker holds the only write end: its exit shows as end-of-file here
            procs.append(p)
            readers[r] = w
        while readers:
            ready: list[Any] = wait(list(readers), timeout=0.5)
            for conn in ready:
                w = readers[conn]
                try:
                    item = conn.recv()
                except (EOFError, OSError):  # the worker ended without saying so: it died
                    procs[w].join(timeout=5)
                    progress.message(f"worker {w} died (exit code {procs[w].exitcode}); the genes it "
                                     "did not finish are trained by the others")
                    item = None
                if item is None:
                    del readers[conn]
                    conn.close()
                    continue
                outcomes.append(item)
                progress.update(item)
        clean_exit = True
    finally:
        for r in readers:
            r.close()  # a worker still sending gets a broken pipe instead of blocking
        if not clean_exit:
            # interrupted (Ctrl-C, SIGTERM) or failed: stop the workers now; SIGTERM makes each one
            # finish like Ctrl-C (its temporary file and lock removed)
            for p in procs:
                if p.is_alive():
                    p.terminate()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        shutil.rmtree(ctx_dir, ignore_errors=True)


def _scan(out_dir: Path, genes: Sequence[str]) -> tuple[list[str], list[str]]:
    from ..io.betadata import betadata_path

    done = [g for g in genes if betadata_path(out_dir, g).exists()]
    orph = [g for g in genes if orphan_path(out_dir, g).exists()]
    return done, orph


def _check_existing_run(out_dir: Path, cfg: SpaceshipConfig, tissue: Tissue) -> None:
    """A folder holds one run: same dataset, same result-affecting settings."""
    repro = out_dir / _keys.REPRO_TOML
    if repro.exists():
        old = SpaceshipConfig.from_toml(repro)
        if old.data.adata_path and cfg.data.adata_path and \
                Path(old.data.adata_path).resolve() != Path(cfg.data.adata_path).resolve():
            raise InputError(f"{repro}: this folder holds a run of a different dataset ({old.data.adata_path}); "
                             "choose a new --output-dir")
        a, b = _result_settings(old), _result_settings(cfg)
        diff = [k for k in a if a[k] != b.get(k)]
        if diff:
            k = diff[0]
            raise ConfigError(f"{repro}: the run in this folder used {k} = {a[k]!r}, now {b.get(k)!r}; "
                              "use the same settings to continue it, or choose a new --output-dir")
    man = out_dir / _keys.MANIFEST_JSON
    if man.exists():
        try:
            fp = json.loads(man.read_text(encoding="utf-8")).get("dataset", {})
        except (OSError, ValueError):
            fp = {}
        now = dataset_fingerprint(tissue)
        if any(fp.get(k) and fp[k] != now[k] for k in ("names_sha1", "data_sha1")):
            raise InputError(f"{man}: the run in this folder was trained on a different dataset "
                             f"({fp.get('n_obs')} cells × {fp.get('n_vars')} genes, now {now['n_obs']} × "
                             f"{now['n_vars']}); choose a new --output-dir")


def train(cfg: SpaceshipConfig, *, plain: bool = True, quiet: bool = False, stream: IO[str] | None = None,
          tissue: Tissue | None = None, network: Any = None) -> RunResult:
    """Train every gene of the queue and write betadata (SPEC §5.3).

    Parameters
    ----------
    cfg : SpaceshipConfig
        The validated configuration (``[data]``, ``[grn]``, ``[lasso]``, ``[training]``, ``[execution]``...).
    plain, quiet, stream
        Progress reporting.
    tissue, network
        Already loaded inputs (otherwise read from ``cfg``).

    Returns
    -------
    RunResult
    """
    from ..io.anndata import tissue_from_config

    if cfg.training.mode == "full":
        raise ConfigError("[training].mode = \"full\" (per-cell CNN betas) is not available in this version "
                          "yet; use --training-mode seed")
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    t_start = time.perf_counter()
    out_dir = Path(cfg.execution.output_dir) if cfg.execution.output_dir else default_output_dir(cfg)
    # every input is validated before anything is written: a bad input leaves no output behind
    out_dir = check_output_dir(out_dir)
    if cfg.data.adata_path:
        cfg = cfg.with_overrides({"data.adata_path": str(Path(cfg.data.adata_path).expanduser().resolve())},
                                 source="dataset path")
    if tissue is None:
        tissue = tissue_from_config(cfg)
    cluster_warnings = check_clusters(tissue)
    queue = select_genes(tissue, cfg.training.genes, cfg.training.max_genes)
    if network is None:
        network, species, net_path = load_run_network(cfg, tissue)
    else:
        species, net_path = cfg.data.species or "", None
    _check_modulator_inputs(cfg)
    cfg = cfg.with_overrides({"execution.output_dir": str(out_dir)}, source="output directory")
    _check_existing_run(out_dir, cfg, tissue)
    out_dir = prepare_output_dir(out_dir)
    _clean_leftovers(out_dir)
    repro = out_dir / _keys.REPRO_TOML
    if not repro.exists():
        cfg.dump_toml(repro)
    manifest_path = out_dir / _keys.MANIFEST_JSON
    if not manifest_path.exists():
        # written at once so that a killed first run still records which dataset the folder belongs to
        atomic_write_text(manifest_path, json.dumps({"status": "running", "started": started,
                                                     "dataset": dataset_fingerprint(tissue)}, indent=1))
    t_loaded = time.perf_counter()

    outcomes: list[GeneOutcome] = []
    interrupted = False
    progress = Progress(len(queue), plain=plain, quiet=quiet, stream=stream)
    with progress, _graceful_interrupts():
        progress.message(f"dataset: {tissue.path or 'in memory'} ({tissue.n_cells} cells × {tissue.n_genes} genes, "
                         f"{tissue.n_clusters} clusters from obs['{tissue.cluster_annot}'], layer "
                         f"'{tissue.layer or 'X'}')")
        if net_path is not None:
            progress.message(f"network: {net_path} ({species})")
        for w in cluster_warnings:
            print(w, file=sys.stderr, flush=True)
        progress.message(f"output:  {out_dir}")
        pending = [g for g in queue if not is_finished(out_dir, g)]
        pending_set = set(pending)
        for g in queue:
            if g not in pending_set:
                progress.update(GeneOutcome(g, SKIPPED))
        ctx: TrainingContext | None = None
        t_ctx = time.perf_counter()
        try:
            if pending:
                ctx = build_context(cfg, tissue, network, pending, out_dir)
                for line in ctx.received_info:
                    progress.message(line)
            t_ctx = time.perf_counter()
            n_workers = min(cfg.execution.n_parallel, len(pending))
            if ctx is not None and n_workers > 1:
                progress.message(f"training {len(pending)} genes with {n_workers} worker processes")
                _run_parallel(ctx, pending, n_workers, progress, outcomes)
                # a worker that died (killed, out of memory) leaves its gene unfinished with a stale
                # lock: train what is left here, skipping genes that live processes hold
                reported = {o.gene for o in outcomes}
                pending = [g for g in pending if g not in reported and not is_finished(out_dir, g)]
            if ctx is not None and pending:
                if n_workers <= 1:
                    progress.message(f"training {len(pending)} genes")
                for g in pending:
                    o = train_gene(ctx, g)
                    if o.status in (SKIPPED, BUSY):
                        if o.status == SKIPPED:
                            progress.update(o)
                        continue
                    outcomes.append(o)
                    progress.update(o)
        except KeyboardInterrupt:
            interrupted = True
            progress.message("interrupted: finished genes are kept; run the same command again to continue")
    _remove_dead_locks(out_dir)
    finished = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    done, orph = _scan(out_dir, queue)
    failed = {o.gene: o.reason for o in outcomes if o.status == FAILED}
    accounted = set(done) | set(orph) | set(failed)
    elsewhere = [g for g in queue if g not in accounted]
    manifest = {
        "status": "interrupted" if interrupted else ("partial" if elsewhere else
                                                     ("complete_with_failures" if failed else "complete")),
        "started": started, "finished": finished,
        "dataset": dataset_fingerprint(tissue),
        "network": str(net_path) if net_path else None, "species": species,
        "output_dir": str(out_dir),
        "genes": {"queued": len(queue), "done": done, "orphaned": orph, "failed": failed,
                  "unfinished": elsewhere},
        "counts": {"done": len(done), "orphaned": len(orph), "failed": len(failed),
                   "unfinished": len(elsewhere)},
        "timings": {"load_s": round(t_loaded - t_start, 4), "received_ligands_s": round(t_ctx - t_loaded, 4),
                    "train_s": round(time.perf_counter() - t_ctx, 4),
                    "total_s": round(time.perf_counter() - t_start, 4),
                    "per_gene_s": {o.gene: round(o.seconds, 5) for o in outcomes}},
        "received_ligands": ctx.received_info if ctx is not None else [],
        "n_parallel": cfg.execution.n_parallel,
        "versions": _versions(),
    }
    atomic_write_text(out_dir / _keys.MANIFEST_JSON, json.dumps(manifest, indent=1))
    cfg.dump_toml(repro)
    line = progress.summary()
    if elsewhere and not interrupted:
        line += f"; {len(elsewhere)} still locked by other processes"
    if interrupted:  # a gene whose file was written as the interrupt arrived is on disk but not reported
        seen = {o.gene for o in outcomes} | (set(queue) - pending_set)
        late = sum(1 for g in (*done, *orph) if g not in seen)
        if late:
            line += f"; {late} more written while stopping (on disk: {len(done)} done, {len(orph)} orphaned)"
    print(line, file=stream or sys.stdout, flush=True)
    counts = {DONE: len(done), ORPHAN: len(orph), FAILED: len(failed), "unfinished": len(elsewhere)}
    return RunResult(out_dir=out_dir, counts=counts, outcomes=outcomes, interrupted=interrupted,
                     manifest=manifest)


def _join_config(join_dir: Path, overrides: dict[str, Any]) -> tuple[SpaceshipConfig, list[str]]:
    """The joined run's configuration; flags may only change how this process executes."""
    repro = join_dir / _keys.REPRO_TOML
    if not join_dir.is_dir():
        raise InputError(f"--join-output-dir {join_dir}: not a directory")
    if not repro.exists():
        raise InputError(f"--join-output-dir {join_dir}: no {_keys.REPRO_TOML} there; start the run in that "
                         "folder first (without --join-output-dir)")
    cfg = SpaceshipConfig.from_toml(repro)
    warnings: list[str] = []
    allowed = {"execution.n_parallel", "execution.stale_lock_secs"}
    ignored = {"training.genes", "training.max_genes"}
    # the folder may be mounted elsewhere on this host than where the run started
    apply: dict[str, Any] = {"execution.output_dir": str(join_dir)}
    for k, v in overrides.items():
        if v is None:
            continue
        if k in allowed:
            apply[k] = v
        elif k == "execution.output_dir":
            if Path(v).expanduser().resolve() != join_dir:
                raise InputError(f"--output-dir {v} and --join-output-dir {join_dir} name different folders; "
                                 "drop --output-dir to join")
        elif k in ignored:
            warnings.append(f"note: --{k.split('.')[1].replace('_', '-')} is ignored when joining: the queue "
                            f"comes from {repro}")
        elif k == "data.adata_path":
            if Path(v).resolve() != Path(cfg.data.adata_path).resolve():
                raise InputError(f"--h5ad {v}: the run in {join_dir} trains {cfg.data.adata_path}; "
                                 "drop --h5ad to join it")
        elif cfg.get(k) != SpaceshipConfig().with_overrides({k: v}).get(k):
            raise ConfigError(f"--join-output-dir: {k} = {v!r} conflicts with the joined run's "
                              f"{k} = {cfg.get(k)!r}; drop the flag to join")
    cfg = cfg.with_overrides(apply, source="command line")
    return cfg, warnings


def config_from_cli(args: Any, overrides: dict[str, Any]) -> tuple[SpaceshipConfig, list[str]]:
    """Config file (``-c``) or joined run, then CLI flags."""
    if args.join_output_dir:
        cfg, notes = _join_config(Path(args.join_output_dir).expanduser().resolve(), overrides)
        if args.config:
            notes.insert(0, f"note: -c {args.config} is ignored when joining: the configuration comes from "
                         f"{Path(args.join_output_dir) / _keys.REPRO_TOML}")
        return cfg, notes
    cfg = SpaceshipConfig.from_toml(args.config) if args.config else SpaceshipConfig()
    return cfg.with_overrides(overrides, source="command line"), []


def train_from_cli(args: Any, overrides: dict[str, Any]) -> int:
    """``spacetravlr`` main action; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    cfg, notes = config_from_cli(args, overrides)
    for n in notes:
        print(n, file=sys.stderr)
    if not cfg.data.adata_path:
        raise InputError("no dataset: pass --h5ad PATH or -c spaceship_config.toml with [data].adata_path "
                         "(try `spacetravlr demo` for a synthetic example)")
    res = train(cfg, plain=args.plain, quiet=args.quiet)
    if res.interrupted:
        return 130
    return 1 if res.counts[FAILED] else 0
