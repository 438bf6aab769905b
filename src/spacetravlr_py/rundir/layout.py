"""Every path of a run folder, scanning it, and cleaning what killed processes left behind.

A run folder holds (SPEC §5.3)::

    {gene}_betadata.feather   one per trained gene (or .parquet / .csv written by other tools)
    {gene}.orphan             empty: nothing to fit, or every beta was zero
    {gene}.lock               while a process trains the gene (see :mod:`.locks`)
    log/{gene}.log            per-cluster fit statistics
    spacetravlr_run_repro.toml, spacetravlr_manifest.json
    .spacetravlr-ctx-{host}-{pid}-{random}/   scratch of a live multi-process run
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import _keys
from ..errors import InputError
from ..io.atomic import TMP_SUFFIX, temp_target, temporaries_of
from . import locks


class RunDir:
    """The files of one run folder.

    Parameters
    ----------
    root : path
        The folder (not created here; see :meth:`prepare`).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------------
    def betadata(self, gene: str) -> Path:
        return self.root / _keys.BETADATA_FEATHER.format(gene=gene)

    def orphan(self, gene: str) -> Path:
        return self.root / _keys.ORPHAN_FILE.format(gene=gene)

    def log(self, gene: str) -> Path:
        return self.log_dir / _keys.GENE_LOG.format(gene=gene)

    def lock(self, gene: str) -> Path:
        return locks.lock_path(self.root, gene)

    @property
    def log_dir(self) -> Path:
        return self.root / _keys.LOG_DIR

    @property
    def repro_toml(self) -> Path:
        return self.root / _keys.REPRO_TOML

    @property
    def manifest_json(self) -> Path:
        return self.root / _keys.MANIFEST_JSON

    def artifact(self, relative: str) -> Path:
        """A file a trainer asked for (e.g. CNN weights), inside the folder only."""
        p = (self.root / relative).resolve()
        if self.root.resolve() not in p.parents:
            raise InputError(f"artifact path {relative!r} leaves the run folder {self.root}")
        return p

    def gene_outputs(self, gene: str) -> tuple[Path, Path, Path]:
        """The files a finished gene may have: betadata, orphan marker, log."""
        return self.betadata(gene), self.orphan(gene), self.log(gene)

    # -- state -------------------------------------------------------------------------------------
    def is_finished(self, gene: str) -> bool:
        """A gene is finished when its betadata or orphan file exists (restarts skip it)."""
        return self.betadata(gene).exists() or self.orphan(gene).exists()

    def scan(self, genes: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(done, orphaned)`` among ``genes``, in queue order."""
        done = [g for g in genes if self.betadata(g).exists()]
        orph = [g for g in genes if self.orphan(g).exists()]
        return done, orph

    def betadata_files(self) -> dict[str, Path]:
        """``gene -> path`` of every betadata file (feather preferred over parquet over csv)."""
        from ..io.betadata import list_betadata

        return list_betadata(self.root)

    # -- creation ----------------------------------------------------------------------------------
    def check_writable(self) -> Path:
        """Explain in one line why the folder cannot hold a run, without creating anything."""
        p = self.root.expanduser().resolve()
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
        self.root = p
        return p

    def prepare(self) -> Path:
        """Create the folder and ``log/``, or explain in one line why it cannot be used."""
        p = self.check_writable()
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=p)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise InputError(f"output directory {p} cannot be created or written ({e.strerror or e}); "
                             "choose another --output-dir") from None
        return p

    def make_scratch(self) -> Path:
        """A private folder for this process's shared arrays (removed by the caller, or by
        :meth:`clean_leftovers` of a later run once this process is dead)."""
        return Path(tempfile.mkdtemp(prefix=f"{_keys.SCRATCH_PREFIX}{locks.HOST}-{os.getpid()}-", dir=self.root))

    # -- clean-up ----------------------------------------------------------------------------------
    def remove_temporaries(self, gene: str) -> None:
        """Temporary files of ``gene``'s outputs left by a dead process whose lock was taken over."""
        for dest in self.gene_outputs(gene):
            for f in temporaries_of(dest):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()

    def remove_dead_locks(self) -> None:
        """Locks of finished genes whose owner died between writing the gene and unlocking it."""
        for p in self.root.glob(f"*{Path(_keys.LOCK_FILE).suffix}"):
            gene = p.name[: -len(p.suffix)]
            if self.is_finished(gene):
                locks.remove_if_stale(self.root, gene)

    def clean_leftovers(self) -> None:
        """Remove what a killed process of this host left behind: scratch folders of dead runs, and
        temporary files of genes that nobody is training any more (a live lock protects a gene's files)."""
        for d in self.root.glob(f"{_keys.SCRATCH_PREFIX}*"):
            parts = d.name[len(_keys.SCRATCH_PREFIX):].split("-")
            # {host}-{pid}-{random}; host names may hold dashes
            if len(parts) < 3 or not parts[-2].isdigit():
                continue
            host, pid = "-".join(parts[:-2]), int(parts[-2])
            if host == locks.HOST and not locks.pid_alive(pid):
                shutil.rmtree(d, ignore_errors=True)
        self.remove_dead_locks()
        for f in _temporaries_in((self.root, self.log_dir)):
            dest = temp_target(f)
            assert dest is not None
            if dest.suffix == Path(_keys.LOCK_FILE).suffix:  # a lock being created lives µs
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - f.stat().st_mtime > locks.UNREADABLE_GRACE_SECS:
                        f.unlink()
                continue
            gene = _gene_of_output(dest)
            if gene is None:
                continue
            lp = self.lock(gene)
            if not lp.exists() or locks.is_stale(lp, 0.0):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()


def _temporaries_in(folders: Iterable[Path]) -> list[Path]:
    return [f for folder in folders for f in folder.glob(f".*{TMP_SUFFIX}") if temp_target(f) is not None]


def _gene_of_output(dest: Path) -> str | None:
    """The gene whose betadata / orphan / log file ``dest`` is (None for other files)."""
    name = dest.name
    for pattern in (_keys.BETADATA_FEATHER, _keys.ORPHAN_FILE, _keys.GENE_LOG):
        head, tail = pattern.split("{gene}")
        if name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail):
            return name[len(head): len(name) - len(tail)]
    return None
