"""The Python reference (PyPI ``SpaceTravLR`` 0.1.18) as a baseline: locate it, run its harness, and
write inputs in the formats the harness reads.

The reference lives in its own virtual environment (``../shared/tools/setup_reference.sh`` builds it at
``$HOME/.cache/spacetravlr-reference/venv``; env ``SPACETRAVLR_REFERENCE_VENV`` overrides) and is only
ever run as a subprocess of that venv's python, through the harness
``../shared/tools/reference/harness.py`` (env ``SPACETRAVLR_REFERENCE_HARNESS`` overrides). See the
harness README for every numerical quirk the inputs below account for.

Two ways to run it:

* :func:`run_harness_once` — a fresh process per call (pays numba JIT every time; gives the peak RSS of
  exactly that call through ``wait4``);
* :class:`ReferenceSession` — one persistent process that runs many harness subcommands (JIT once);
  used by the parity tests and for interleaved A/B timing.

Semantics under which ours equals the reference (``[compat] mode = "python-reference"``): kernel
``"truncated"``, per-ligand radius from the CellChat table among the dataset's genes (secreted →
``radius``, everything else → ``contact_distance``), ``clip="observed_range"``, the TF–ligand input of
splash fixed at baseline, targets pinned only where ``δ_in ≠ 0``. Inputs written here make the
reference's thresholds masking a no-op (``uns['cell_thresholds']`` all ones for every gene).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared").resolve()
VENV_ENV = "SPACETRAVLR_REFERENCE_VENV"
HARNESS_ENV = "SPACETRAVLR_REFERENCE_HARNESS"
DEFAULT_VENV = Path.home() / ".cache" / "spacetravlr-reference" / "venv"
REF_ANNOT = "cell_type_int"
"""obs column holding integer cluster ids 0..K-1 (the reference uses them as channel indices)."""
_MARK = "@@REFSESSION@@ "
_DRIVER = Path(__file__).resolve().parent / "_ref_driver.py"


# --------------------------------------------------------------------------------------------------
# locating the reference
# --------------------------------------------------------------------------------------------------


def reference_venv() -> Path:
    return Path(os.environ.get(VENV_ENV) or DEFAULT_VENV).expanduser()


def reference_python() -> Path:
    return reference_venv() / "bin" / "python"


def harness_path() -> Path:
    env = os.environ.get(HARNESS_ENV)
    return Path(env).expanduser() if env else SHARED / "tools" / "reference" / "harness.py"


def reference_status() -> tuple[bool, str]:
    """(available, reason): whether the reference venv and the harness exist."""
    py, h = reference_python(), harness_path()
    if not py.exists():
        return False, (f"reference venv not found ({py}); build it with `bash ../shared/tools/setup_reference.sh` "
                       f"or set {VENV_ENV}")
    if not h.exists():
        return False, f"reference harness not found ({h}); set {HARNESS_ENV}"
    return True, f"reference venv {reference_venv()}, harness {h}"


def cellchat_csv(species: str = "mouse") -> Path:
    """The real CellChat table (byte-identical to the reference's packaged one)."""
    return SHARED / "data" / "lr" / f"cellchat_{species}.csv"


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "NUMBA_CACHE_DIR"):
        env.pop(k, None)
    if threads:
        for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[v] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


# --------------------------------------------------------------------------------------------------
# running the harness
# --------------------------------------------------------------------------------------------------


class ReferenceError(RuntimeError):
    """The reference harness failed."""


def _argv(args: Sequence[Any]) -> list[str]:
    return [str(a) for a in args]


def clean_rss_command(cmd: Sequence[str]) -> list[str]:
    """Wrap ``cmd`` so that it runs as a child of a small ``sh`` process.

    Linux keeps a process's peak-RSS high-water mark across ``fork`` + ``exec``: a worker started
    directly by a large benchmark process would report the parent's peak as its own. Started by
    ``sh`` (which forks it, because another command follows), it reports only its own.
    """
    return ["/bin/sh", "-c", '"$@"; exit $?', "sh", *[str(c) for c in cmd]]


def run_harness_once(args: Sequence[Any], *, threads: int | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
    """Run ``harness.py ARGS`` in a fresh reference process (numba JIT included in ``_wall_s``).

    Returns the harness's JSON record plus ``_wall_s`` and ``_maxrss_kb`` (peak RSS of that process).
    """
    with ReferenceSession(threads=threads) as s:
        return s.run(*args, timeout=timeout)


class ReferenceSession:
    """One long-lived reference process running harness subcommands on request.

    >>> with ReferenceSession() as ref:                                   # doctest: +SKIP
    ...     rec = ref.run("received", "--xy", "xy.npy", "--lig", "lig.npy", "--out", "r.npy")

    Each record gets ``_wall_s`` (wall time of the harness call inside the process, JIT warm-up of
    that call included) and ``_maxrss_kb`` (the process's peak RSS so far: a high-water mark).
    """

    def __init__(self, *, threads: int | None = None, startup_timeout: float = 600.0) -> None:
        ok, why = reference_status()
        if not ok:
            raise ReferenceError(why)
        self._log = tempfile.TemporaryFile("w+")
        cmd = clean_rss_command([str(reference_python()), str(_DRIVER), str(harness_path().parent)])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env=_env(threads), cwd=str(ROOT), text=True, bufsize=1)
        self._lock = threading.Lock()
        self.shared = False
        """True when several workloads share this process (its peak RSS is then theirs together)."""
        self.pid: int | None = None
        self.startup = self._read(startup_timeout)
        self.pid = int(self.startup.get("pid", 0)) or None

    def _read(self, timeout: float | None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        result: dict[str, Any] = {}

        def reader() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith(_MARK):
                    result.update(json.loads(line[len(_MARK):]))
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive() or not result:
            self._kill()
            self._log.seek(0)
            log = self._log.read()[-3000:]
            self.close()
            raise ReferenceError(f"reference session did not answer (timeout {timeout}s):\n{log}")
        return result

    def run(self, *args: Any, timeout: float | None = None) -> dict[str, Any]:
        """Run ``harness.py ARGS``; returns its JSON record (raises :class:`ReferenceError` on failure)."""
        with self._lock:
            if self.proc.poll() is not None:
                raise ReferenceError("reference session has exited")
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"argv": _argv(args)}) + "\n")
            self.proc.stdin.flush()
            resp = self._read(timeout)
        if not resp.get("ok"):
            raise ReferenceError(f"reference harness failed: {' '.join(_argv(args))}\n{resp.get('error')}\n"
                                 f"{resp.get('stdout', '')[-1500:]}")
        rec = dict(resp["record"])
        rec["_wall_s"] = resp["wall_s"]
        rec["_maxrss_kb"] = resp["maxrss_kb"]
        return rec

    def _kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass
        self.proc.kill()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> ReferenceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# python-reference semantics on our side
# --------------------------------------------------------------------------------------------------


def cellchat_network(species: str = "mouse") -> Any:
    """Our :class:`~spacetravlr_py.io.network.Network` of the real CellChat table (``lr`` edges only).

    Used for the reference's per-ligand radius rule (first CellChat row per ligand among the genes).
    """
    from spacetravlr_py import _keys
    from spacetravlr_py.io.network import Network
    from spacetravlr_py.io.network_build import read_lr_table

    lr = read_lr_table(cellchat_csv(species))
    df = pd.DataFrame({"source": lr["ligand"], "target": lr["receptor"], "edge_type": _keys.EDGE_LR,
                       "weight": 1.0, "signaling": lr["signaling"]})
    return Network.from_frame(df, species=species)


def ligand_signaling(var_names: Sequence[str], species: str = "mouse") -> dict[str, str | None]:
    """``{ligand: signaling}`` as the reference picks it: first expanded CellChat row among ``var_names``."""
    return cellchat_network(species).ligand_signaling_among(set(var_names))


def ligand_radii(ligands: Sequence[str], var_names: Sequence[str], radius: float, contact_distance: float,
                 species: str = "mouse") -> dict[str, float]:
    """Per-ligand radius of the reference (secreted → ``radius``, else ``contact_distance``).

    Ligands without a CellChat row among ``var_names`` are absent (the reference gives them 0).
    """
    from spacetravlr_py import _keys

    sig = ligand_signaling(var_names, species)
    return {g: (float(radius) if sig[g] == _keys.SECRETED else float(contact_distance))
            for g in ligands if g in sig}


def perturb_settings(radius: float, contact_distance: float, *, n_propagation: int = 4,
                     scale: float = 1.0) -> Any:
    """Our :class:`PerturbSettings` under ``[compat] mode = "python-reference"``."""
    from spacetravlr_py.perturb import PerturbSettings

    return PerturbSettings(radius=float(radius), contact_distance=float(contact_distance), per_ligand_radius=True,
                           kernel="truncated", clip="observed_range", reference_compat=True, scale=scale,
                           n_propagation=n_propagation, received_method="exact")


# --------------------------------------------------------------------------------------------------
# writing inputs in the harness formats
# --------------------------------------------------------------------------------------------------


def write_frame(path: str | os.PathLike[str], values: np.ndarray, index: Sequence[str],
                columns: Sequence[str]) -> Path:
    """cells × names parquet (float64)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(np.asarray(values, dtype=np.float64), index=pd.Index([str(i) for i in index]),
                 columns=[str(c) for c in columns]).to_parquet(p)
    return p


def write_reference_h5ad(path: str | os.PathLike[str], adata: Any, *, cluster_col: str = "cell_type",
                         threshold: float = 1.0) -> Path:
    """An h5ad the reference ``perturb`` accepts (and that our loader reads too).

    Keeps ``layers['imputed_count']`` and ``layers['normalized_count']``, ``obsm['spatial']``, the
    cluster column and adds ``obs['cell_type_int']`` (sorted-label ids, as our loader numbers them) and
    ``uns['cell_thresholds']`` = ``threshold`` for every cell × gene (all ones: the reference's masking
    is a no-op). No received-ligand tables in ``uns``.
    """
    import anndata as ad

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    labels = adata.obs[cluster_col].astype(str)
    uniq = sorted(pd.unique(labels))
    obs = pd.DataFrame({cluster_col: pd.Categorical(labels, categories=uniq),
                        REF_ANNOT: labels.map({u: i for i, u in enumerate(uniq)}).to_numpy(dtype=np.int64)},
                       index=adata.obs_names.astype(str))
    X = np.asarray(adata.layers["imputed_count"], dtype=np.float64)
    out = ad.AnnData(X=X.copy(), obs=obs, var=pd.DataFrame(index=adata.var_names.astype(str)))
    out.layers["imputed_count"] = X
    norm = adata.layers["normalized_count"] if "normalized_count" in adata.layers else X
    out.layers["normalized_count"] = np.asarray(norm, dtype=np.float64)
    out.obsm["spatial"] = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    out.uns["cell_thresholds"] = pd.DataFrame(np.full(X.shape, float(threshold)), index=out.obs_names,
                                              columns=out.var_names)
    out.write_h5ad(p)
    return p


def write_reference_betadata(directory: str | os.PathLike[str], gene: str, coefs_per_cell: np.ndarray,
                             intercept_per_cell: np.ndarray, modulators: Sequence[str],
                             obs_names: Sequence[str]) -> Path:
    """``DIR/<gene>_betadata.parquet`` in the reference format: index = obs names, ``beta0``,
    ``beta_<modulator>`` columns, float32 (as ``SpaceTravLR.run`` writes them)."""
    if "_" in gene:
        raise ValueError(f"gene {gene!r} contains '_': the reference names genes by basename.split('_')[0]")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cols = {"beta0": np.asarray(intercept_per_cell, dtype=np.float32)}
    for j, m in enumerate(modulators):
        cols["beta_" + m] = np.asarray(coefs_per_cell[:, j], dtype=np.float32)
    df = pd.DataFrame(cols, index=pd.Index([str(o) for o in obs_names]))
    p = d / f"{gene}_betadata.parquet"
    df.to_parquet(p)
    return p


def write_betaframes_for_reference(directory: str | os.PathLike[str], frames: Mapping[str, Any],
                                   obs_names: Sequence[str], cluster_labels_per_cell: Sequence[str]) -> list[Path]:
    """Expand cluster-row :class:`~spacetravlr_py.io.betadata.BetaFrame` s to per-cell reference parquet files."""
    labels = np.asarray([str(c) for c in cluster_labels_per_cell])
    paths = []
    for gene, f in frames.items():
        rows = {str(r): i for i, r in enumerate(f.row_ids)}
        idx = np.array([rows[c] for c in labels], dtype=np.int64)
        paths.append(write_reference_betadata(directory, gene, f.coefs[idx], f.intercept[idx], f.modulators,
                                              obs_names))
    return paths


def write_run_params(directory: str | os.PathLike[str], *, radius: float, contact_distance: float,
                     scale_factor: float = 1.0, annot: str = REF_ANNOT) -> Path:
    """``run_params.json`` as ``GeneFactory.from_json`` reads it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p = d / "run_params.json"
    p.write_text(json.dumps({"save_dir": str(d), "annot": annot, "radius": float(radius),
                             "contact_distance": float(contact_distance), "scale_factor": float(scale_factor)},
                            indent=1))
    return p


def read_received(path_npy: str | os.PathLike[str]) -> np.ndarray:
    return np.load(path_npy)


def max_rel_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max|ours − ref| / max|ref|`` (over the whole array; 0 when both are 0)."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a - b).max()) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def python() -> str:
    """Our interpreter (for worker subprocesses)."""
    return sys.executable
